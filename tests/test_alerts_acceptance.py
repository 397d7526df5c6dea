"""Issue #13, acceptance 1 and 2: alerts on stub runs, through a crash and an outage.

Stub runs of `oca_outage`, `bad_app_release` and `normal` (three seeds each) go through the
streams logic in process (`streams.replay`, as tests/test_streams_scenarios.py does), four
weeks apart so that one warehouse and one set of topics hold them all.

1. Their rollups and incidents are written to (this session's) Kafka topics and the real
   notifier (`streamwatch alerts run`, a child process) runs the shipped rules against a
   recording HTTP receiver (webhook, Slack and PagerDuty bodies) and a real Alertmanager.
   The receiver is down from the start for 60 s; meanwhile the notifier is killed with
   SIGKILL once it has written every notification and failed to deliver some. After both
   are back, every notification arrives exactly once at the recording receiver (down at the
   kill) and at least once at Alertmanager (up throughout; it keys alerts by their labels,
   so a repeat is harmless); the right rule fired once per fault,
   named the ground-truth value and resolved after the fault; `normal` sent nothing.
2. The same rollups in a warehouse: `streamwatch alerts backtest` of the shipped rules
   prints, per rule, hits, misses, false alarms and time to fire.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from alerts import actions
from alerts.records import FINAL_OUTCOMES, Notification
from alerts.rules import SHIPPED_RULES, load_rules
from infra.alertmanager_server import AlertmanagerServer
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from tests.alerts_helpers import (
    RecordingReceiver,
    ReplayedRun,
    free_port,
    notification_id_of,
    receivers_toml,
    replayed_run,
    write_rollups_to_warehouse,
    write_truth,
)
from tests.process_pool import spawned_pool

SCENARIOS = ("oca_outage", "bad_app_release", "normal")
SEEDS = (1, 2, 3)
THRESHOLD_RULE = {
    "oca_outage": "oca-playback-failures",
    "bad_app_release": "app-version-playback-failures",
}
INCIDENT_RULE = "qoe-anomaly"
OUTAGE_S = 60.0
# Per transition: the "page" route (pagerduty, alertmanager, webhook) continues to "chat"
# (slack). Six fault runs x two rules x (firing, resolved).
RECEIVERS_PER_TRANSITION = 4
TRANSITIONS = 6 * 2 * 2
EXPECTED_NOTIFICATIONS = TRANSITIONS * RECEIVERS_PER_TRANSITION
RECEIVER_PATHS = ("/webhook", "/slack", "/pagerduty")


@pytest.fixture(scope="module")
def runs() -> list[ReplayedRun]:
    keys = [(sc, seed, shift) for shift, sc in enumerate(SCENARIOS) for seed in SEEDS]
    with spawned_pool() as pool:
        return list(pool.map(replayed_run, *zip(*keys, strict=True)))


@pytest.fixture(scope="module")
def alertmanager(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AlertmanagerServer]:
    """A private Alertmanager (own port and data): its counters are this test's alone."""
    own = stack_settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("am"), "alertmanager_port": free_port()}
    )
    server = AlertmanagerServer(own)
    server.up()
    yield server
    server.down()


def _window(run: ReplayedRun) -> tuple[datetime, datetime]:
    t = run.truth
    if t.start_ms is None or t.end_ms is None:  # normal: the whole run
        starts = [r.window_start for r in run.rollups]
        return min(starts), max(starts) + timedelta(minutes=1)
    return (
        datetime.fromtimestamp(t.start_ms / 1000, UTC),
        datetime.fromtimestamp(t.end_ms / 1000, UTC),
    )


def _run_span(run: ReplayedRun) -> tuple[datetime, datetime]:
    starts = [r.window_start for r in run.rollups]
    return min(starts), max(starts) + timedelta(minutes=30)


async def _produce(settings: Settings, runs: list[ReplayedRun]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20
    )
    await producer.start()
    try:
        for run in runs:
            for r in run.rollups:
                await producer.send(
                    settings.topic(topics.MINUTE),
                    key=r.key.encode(),
                    value=r.model_dump_json().encode(),
                )
            for inc in run.incidents:
                await producer.send(
                    settings.topic(topics.INCIDENTS),
                    key=inc.incident_id.encode(),
                    value=inc.model_dump_json().encode(),
                )
        await producer.flush()
    finally:
        await producer.stop()


def _notifier(settings: Settings, receivers: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "STREAMWATCH_DATA_DIR": str(log.parent),
        "STREAMWATCH_ALERTS_RETRY_INITIAL_S": "0.5",
        "STREAMWATCH_ALERTS_RETRY_MAX_S": "2",
        # The topics hold a backlog written before the notifier starts: alert on all of it.
        "STREAMWATCH_ALERTS_CATCH_UP_MAX_AGE_MIN": str(10**7),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "streamwatch.cli", "alerts", "run", "--receivers", str(receivers)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait(
    what: str, check: Callable[[], bool], timeout_s: float, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, f"notifier exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; notifier log:\n{log.read_text()[-3000:]}")


def _am_received(am: AlertmanagerServer) -> Counter[str]:
    with urllib.request.urlopen(f"{am.address}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Counter[str] = Counter()
    for m in re.finditer(r"^alertmanager_alerts_received_total\{([^}]*)\} (\S+)$", text, re.M):
        status = re.search(r'status="(\w+)"', m.group(1))
        if status:
            out[status.group(1)] += int(float(m.group(2)))
    return out


def _alertmanager_in_doubt(settings: Settings) -> Counter[str]:
    """Alertmanager notifications with no final delivery entry yet, by alert status."""
    notes, deliveries = actions.read_log(settings)
    final = {d.notification_id for d in deliveries if d.outcome in FINAL_OUTCOMES}
    return Counter(
        n.alert.status
        for n in notes
        if n.receiver == "alertmanager" and n.notification_id not in final
    )


def _am_active(am: AlertmanagerServer) -> list[object]:
    with urllib.request.urlopen(f"{am.address}/api/v2/alerts", timeout=10) as resp:
        found: list[object] = json.load(resp)
    return found


def test_alerts_reach_every_receiver_once_through_a_crash_and_an_outage(
    runs: list[ReplayedRun],
    settings: Settings,
    alertmanager: AlertmanagerServer,
    tmp_path: Path,
) -> None:
    # Topics of its own (under the session's prefix, so they are cleaned up with it).
    settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}accept."})
    asyncio.run(create_topics(settings))
    receiver = RecordingReceiver(free_port())
    receivers = tmp_path / "receivers.toml"
    receivers.write_text(receivers_toml(receiver.url, alertmanager.address))
    log = tmp_path / "notifier.log"
    asyncio.run(_produce(settings, runs))
    down_since = time.monotonic()  # the receiver has not been up at all yet
    proc = _notifier(settings, receivers, log)
    try:

        def written_and_failing() -> bool:
            notes, deliveries = actions.read_log(settings)
            failing = {d.receiver for d in deliveries if d.outcome == "failed"}
            return len(notes) >= EXPECTED_NOTIFICATIONS and failing >= {
                "webhook",
                "slack",
                "pagerduty",
            }

        _wait("the outbox and failed attempts", written_and_failing, 120, proc, log)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        in_doubt = _alertmanager_in_doubt(settings)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))
        receiver.up()
        proc = _notifier(settings, receivers, log)

        def all_delivered() -> bool:
            _, deliveries = actions.read_log(settings)
            return sum(d.outcome == "delivered" for d in deliveries) >= EXPECTED_NOTIFICATIONS

        _wait("every notification delivered", all_delivered, 120, proc, log)
        time.sleep(1.0)  # anything extra (a duplicate) would show up now
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        receiver.close()

    notes, deliveries = actions.read_log(settings)
    by_id = {n.notification_id: n for n in notes}
    assert len(by_id) == len(notes) == EXPECTED_NOTIFICATIONS, "the outbox has no duplicates"
    delivered = Counter(d.notification_id for d in deliveries if d.outcome == "delivered")
    assert set(delivered) == set(by_id) and set(delivered.values()) == {1}
    assert any(d.outcome == "failed" and d.http_status is None for d in deliveries)

    # Every notification arrived exactly once at the recording receiver...
    got = [r for path in RECEIVER_PATHS for r in receiver.got(path)]
    ids = Counter(notification_id_of(r) for r in got)
    assert ids and max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    expected_ids: set[str] = set()
    for n in notes:
        if n.receiver == "pagerduty":
            expected_ids.add(
                f"{n.alert.episode}|{'trigger' if n.alert.status == 'firing' else 'resolve'}"
            )
        elif n.receiver != "alertmanager":
            expected_ids.add(n.notification_id)
    assert set(ids) == expected_ids
    # ... and at the real Alertmanager, which ends with nothing active.
    # Alertmanager is up throughout, so a post it answered just before the SIGKILL, whose
    # "delivered" entry was never written, is posted again after the restart: at least once,
    # at most once more for each Alertmanager notification in doubt at the kill. Alertmanager
    # keys alerts by their labels, so a repeat changes nothing (nothing stays active).
    am_notes = [n for n in notes if n.receiver == "alertmanager"]
    received = _am_received(alertmanager)
    for status in ("firing", "resolved"):
        sent = sum(n.alert.status == status for n in am_notes)
        assert sent <= received[status] <= sent + in_doubt[status], (status, received, in_doubt)
    assert _am_active(alertmanager) == []

    _check_against_ground_truth(runs, [n for n in notes if n.receiver == "webhook"])


def _check_against_ground_truth(runs: list[ReplayedRun], notes: list[Notification]) -> None:
    for run in runs:
        lo, hi = _run_span(run)
        mine = [n.alert for n in notes if lo <= n.alert.started_at < hi]
        label = f"{run.scenario} seed {run.seed}"
        if run.scenario == "normal":
            assert mine == [], f"{label} sent {[(a.rule, a.key) for a in mine]}"
            continue
        truth = run.truth
        dimension = (truth.dimension or "").rsplit(".", 1)[-1]
        start, end = _window(run)
        expected = {THRESHOLD_RULE[run.scenario], INCIDENT_RULE}
        assert Counter((a.rule, a.status) for a in mine) == Counter(
            {(r, s): 1 for r in expected for s in ("firing", "resolved")}
        ), f"{label}: {[(a.rule, a.status, a.key) for a in mine]}"
        for a in mine:
            assert (a.dimension, a.value) == (dimension, truth.value), f"{label}: {a.key}"
            if a.status == "firing":
                assert start - timedelta(minutes=1) <= a.started_at <= end, (label, a)
                assert a.fired_at <= end + timedelta(minutes=3), (label, a)
            else:
                assert a.resolved_at is not None and a.resolved_at >= end, (label, a)


def _seconds(minutes: str, seconds: str) -> int:
    m = int(minutes)
    return m * 60 + (-1 if minutes.startswith("-") else 1) * int(seconds)


def test_backtest_prints_hits_misses_false_alarms_and_time_to_fire(
    runs: list[ReplayedRun], tmp_path: Path
) -> None:
    root = tmp_path / "warehouse"
    truth_args: list[str] = []
    for run in runs:
        write_rollups_to_warehouse(root, run.rollups)
        path = write_truth(run.truth, tmp_path / f"{run.scenario}-{run.seed}.json")
        truth_args += ["--truth", str(path)]
    env = {
        **os.environ,
        "STREAMWATCH_WAREHOUSE_DIR": str(root),
        "STREAMWATCH_DATA_DIR": str(tmp_path),
    }
    args = [sys.executable, "-m", "streamwatch.cli", "alerts", "backtest", str(SHIPPED_RULES)]
    args += ["--since", "2026-01-01T00:00Z", *truth_args]
    text = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=True)
    rows = re.finditer(
        r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(-|(-?\d+)m(\d\d)s / (-?\d+)m(\d\d)s)$",
        text.stdout,
        re.M,
    )
    table: dict[str, tuple[int, int, int, int]] = {}
    time_to_fire: dict[str, tuple[int, int] | None] = {}
    for m in rows:
        fired, hits, misses, false = (int(x) for x in m.group(2, 3, 4, 5))
        table[m.group(1)] = (fired, hits, misses, false)
        time_to_fire[m.group(1)] = (
            None
            if m.group(6) == "-"
            else (
                _seconds(m.group(7), m.group(8)),
                _seconds(m.group(9), m.group(10)),
            )
        )
    assert set(table) == {r.name for r in load_rules(SHIPPED_RULES).rules}, text.stdout
    # rule: (fired, hits, misses, false alarms)
    assert table["oca-playback-failures"] == (3, 3, 0, 0), text.stdout
    assert table["app-version-playback-failures"] == (3, 3, 0, 0), text.stdout
    assert table["qoe-anomaly"] == (6, 6, 0, 0), text.stdout
    assert table["region-startup-p95"] == (0, 0, 0, 0), text.stdout
    assert table["concurrent-viewers-drop-wow"] == (0, 0, 0, 0), text.stdout
    for rule in ("oca-playback-failures", "app-version-playback-failures", "qoe-anomaly"):
        ttf = time_to_fire[rule]
        assert ttf is not None, text.stdout
        mean, longest = ttf
        # Fired within minutes of the fault's start (the minute holding it may show it).
        assert -60 <= mean <= longest <= 300, (rule, ttf)
    assert time_to_fire["region-startup-p95"] is None
    for run in runs:
        if run.truth.value is not None:
            assert run.truth.value in text.stdout  # "would have fired" names the value
