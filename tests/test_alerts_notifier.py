"""The notifier against real Kafka: silences, acknowledgements, a receiver that rejects,
the delivery log and the audit trail (`streamwatch alerts log --audit`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts import actions, kafka_io
from alerts.receivers import WebhookReceiver
from alerts.rules import parse_rules
from alerts.service import Notifier
from contract.records import Incident
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from tests.alerts_helpers import RecordingReceiver, free_port

T0 = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
RULES = """
version = 1

[[rules]]
name = "qoe"
kind = "incident"
severity = "critical"
runbook = "docs/runbooks.md#qoe-anomaly"

[[routes]]
name = "all"
receivers = ["webhook", "strict"]
"""


def _incident(dimension: str, value: str, status: str, revision: int) -> Incident:
    return Incident(
        incident_id=f"inc-{value}",
        status=status,  # type: ignore[arg-type]
        revision=revision,
        metric="playback_failure_pct",
        dimension=dimension,
        value=value,
        started_at=T0,
        detected_at=T0 + timedelta(minutes=1),
        last_anomalous_at=T0 + timedelta(minutes=4),
        resolved_at=T0 + timedelta(minutes=7) if status == "resolved" else None,
        observed=9.0,
        expected=0.5,
        affected_sessions=40,
        severity="critical",
        explanation=f"playback_failure_pct 9.0 vs 0.5 expected for {dimension}={value}",
    )


async def _notify_until_settled(settings: Settings, receiver: RecordingReceiver) -> Notifier:
    receivers = {
        "webhook": WebhookReceiver(kind="webhook", url=f"{receiver.url}/webhook"),
        "strict": WebhookReceiver(kind="webhook", url=f"{receiver.url}/strict"),
    }
    notifier = Notifier(settings, parse_rules(RULES), receivers)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        for _ in range(240):
            await asyncio.sleep(0.5)
            assert not task.done(), task.exception()
            if notifier.counts.get("notifications", 0) == 12 and not notifier.queue.pending():
                break
        else:
            raise AssertionError(f"not settled: {notifier.counts}, {notifier.queue.pending()}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return notifier


def test_silences_acks_and_rejections_are_logged_and_audited(settings: Settings) -> None:
    # Topics of its own (under the session's prefix, so they are cleaned up with it).
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}notifier.",
            "alerts_retry_initial_s": 0.2,
            "alerts_retry_max_s": 1.0,
        }
    )
    asyncio.run(create_topics(own))
    records = []
    for dimension, value in (("oca_id", "oca-1"), ("oca_id", "oca-2"), ("app_version", "9.9")):
        for status, revision in (("open", 0), ("resolved", 1)):
            inc = _incident(dimension, value, status, revision)
            records.append((inc.incident_id.encode(), inc.model_dump_json().encode()))
    records.insert(1, (b"garbage", b'{"not": "an incident"}'))  # skipped and counted
    asyncio.run(kafka_io.write(own, topics.INCIDENTS, records))
    actions.record_action(
        own,
        actions.new_silence(
            by="ana", duration=timedelta(hours=1), value="oca-2", comment="maintenance"
        ),
    )
    actions.record_action(own, actions.new_ack("qoe|app_version=9.9", "bo", "rolling back"))

    receiver = RecordingReceiver(free_port(), status_by_path={"/strict": 400})
    receiver.up()
    try:
        notifier = asyncio.run(_notify_until_settled(own, receiver))
    finally:
        receiver.close()
    assert notifier.counts[f"invalid.{topics.INCIDENTS}"] == 1

    hooks = [(r.body["alert"]["value"], r.body["status"]) for r in receiver.got("/webhook")]
    assert sorted(hooks) == [("9.9", "resolved"), ("oca-1", "firing"), ("oca-1", "resolved")]

    notes, deliveries = actions.read_log(own)
    assert len(notes) == 12
    final = {
        (d.receiver, d.alert_key.split("=")[1], d.status): (d.outcome, d.http_status)
        for d in deliveries
    }
    assert final[("webhook", "oca-2", "firing")] == ("silenced", None)
    assert final[("webhook", "oca-2", "resolved")] == ("silenced", None)
    assert final[("webhook", "9.9", "firing")] == ("acknowledged", None)
    assert final[("webhook", "9.9", "resolved")] == ("delivered", 200)
    assert final[("strict", "oca-1", "firing")] == ("rejected", 400)
    strict = [d for d in deliveries if d.receiver == "strict" and d.outcome == "rejected"]
    # oca-1 firing and resolved, 9.9 resolved (oca-2 is silenced, the 9.9 firing acknowledged)
    assert len(strict) == 3 and all(d.attempt == 0 for d in strict)  # final, not retried
    assert all("invalid payload" in d.answer for d in strict)

    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": own.topic_prefix,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": own.bootstrap_servers,
    }
    log = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "alerts", "log", "--audit"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "12 notifications, 0 not delivered yet" in log.stdout
    assert "rejected" in log.stdout and "invalid payload" in log.stdout
    assert "silence" in log.stdout and "by ana" in log.stdout and "maintenance" in log.stdout
    assert "qoe|app_version=9.9 by bo rolling back" in log.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "alerts", "silence", "--list"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "value=oca-2" in listed.stdout and "by ana" in listed.stdout


def test_the_notifier_without_kafka_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "STREAMWATCH_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "alerts", "run"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Kafka unreachable" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_receivers_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "alerts", "run", "--receivers",
         str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "cannot read receivers file" in proc.stderr


def test_a_silence_without_a_name_or_matcher_is_refused() -> None:
    for args, message in (
        (["--value", "oca-1"], "needs the name of who sets it"),
        (["--by", "ana"], "needs a matcher"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "streamwatch.cli", "alerts", "silence", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
