"""The demo's operations (issue 11): pacing from Settings, live faults in the stub (asked,
taken, confirmed or withdrawn), quiet collector request logs. Pure logic and one CLI call;
the whole live demo in Chromium is tests/test_demo_live.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.collector import _request_log_level
from ops.demo import stub_command
from platform_stub.generator import Batch, RunOptions, StubRun, seed_epoch_ms
from platform_stub.live_faults import (
    APPLIED_FILE,
    REQUEST_FILE,
    FaultControl,
    applied_faults,
    request_fault,
    wait_applied,
    withdraw_fault,
)
from streamwatch.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_demo_stub_is_paced_by_settings() -> None:
    cmd = stub_command(
        Settings(demo_rate=150, demo_speed=1, demo_warmup_s=300, demo_members=2000),
        "http://127.0.0.1:8088/v1/events",
    )
    pairs = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert pairs["--rate"] == "150" and pairs["--speed"] == "1"
    assert pairs["--warmup"] == "300" and pairs["--members"] == "2000"
    assert "--start" not in cmd  # live: now
    pinned = stub_command(Settings(demo_start="2026-01-01T21:00:00+00:00"), "http://x")
    assert pinned[-2:] == ("--start", "2026-01-01T21:00:00+00:00")


def test_each_demo_start_draws_a_new_stub_seed_unless_one_is_pinned() -> None:
    # A restarted demo on the same Kafka data must not send the last run's event ids again
    # (the worker would drop them all as duplicates).
    def seed(settings: Settings) -> str:
        cmd = stub_command(settings, "http://x")
        return cmd[cmd.index("--seed") + 1]

    assert len({seed(Settings()) for _ in range(5)}) > 1
    assert {seed(Settings(demo_stub_seed=7)) for _ in range(3)} == {"7"}


def _live_stub() -> tuple[StubRun, Iterator[Batch], int]:
    """A stub run past its warm-up: the run, its remaining batches, its simulated now."""
    start = seed_epoch_ms(3) + 6 * 3600_000
    run = StubRun(
        RunOptions(seed=3, members=800, rate=60.0, duration_s=900, scenario="normal",
                   start_ms=start, warmup_s=120, drain=False)
    )  # fmt: skip
    batches = run.batches(2_000, 10_000)
    sim_now = next(b for b in batches if b.last_ms > start).last_ms
    return run, batches, sim_now


def test_a_live_fault_starts_at_the_stubs_simulated_now(tmp_path: Path) -> None:
    run, batches, sim_now = _live_stub()
    control = FaultControl(tmp_path, every_s=0)
    assert control.poll(run, sim_now) is None  # nothing asked

    request = request_fault(tmp_path, "oca_outage", minutes=5)
    applied = control.poll(run, sim_now)

    assert applied is not None and applied.request_id == request.request_id
    assert (applied.start_ms, applied.end_ms) == (sim_now, sim_now + 5 * 60_000)
    assert run.fault is not None and run.world.fault is run.fault
    assert run.fault.value == applied.value and applied.dimension == "network.oca_id"
    assert not (tmp_path / REQUEST_FILE).exists()
    assert applied_faults(tmp_path) == [applied]
    assert json.loads((tmp_path / APPLIED_FILE).read_text())["kind"] == "oca_outage"
    # Sessions starting from now on that use the OCA fail: the fault is real traffic.
    for batch in batches:
        if batch.last_ms > sim_now + 5 * 60_000:
            break
    truth = run.scenario_truth()
    assert truth.kind == "oca_outage" and truth.value == applied.value
    assert truth.affected_session_ids, "no session hit the injected outage"


def test_a_fault_the_stub_takes_late_is_confirmed_after_a_waiting_notice(
    tmp_path: Path,
) -> None:
    # Right after `make demo` the stub is still sending its warm-up: it takes the request
    # seconds later, and the requester must wait for it rather than report a failure.
    run, _, sim_now = _live_stub()
    control = FaultControl(tmp_path, every_s=0)
    request = request_fault(tmp_path, "oca_outage", minutes=5)
    taken: list[object] = []
    stub = threading.Timer(1.0, lambda: taken.append(control.poll(run, sim_now)))
    notices: list[float] = []
    t0 = time.monotonic()
    stub.start()
    try:
        applied = wait_applied(
            tmp_path,
            request,
            timeout_s=30,
            every_s=0.05,
            quiet_s=0.2,
            on_wait=lambda: notices.append(time.monotonic() - t0),
        )
    finally:
        stub.join()
    assert taken == [applied] and applied.request_id == request.request_id
    assert len(notices) == 1 and notices[0] < 1.0, "the notice comes before the stub takes it"
    assert applied_faults(tmp_path) == [applied]
    assert sorted(p.name for p in tmp_path.iterdir()) == [APPLIED_FILE]


def test_a_fault_the_stub_never_takes_is_withdrawn_and_never_starts_later(
    tmp_path: Path,
) -> None:
    # The bug: the requester gave up but left the request, the stub applied it later, and
    # the user, told nothing had started, asked again: two faults on one OCA.
    run, _, sim_now = _live_stub()
    request = request_fault(tmp_path, "oca_outage", minutes=5)
    with pytest.raises(TimeoutError, match="withdrawn and nothing started"):
        wait_applied(tmp_path, request, timeout_s=0.3, every_s=0.05, quiet_s=0.1)
    assert list(tmp_path.iterdir()) == []
    assert FaultControl(tmp_path, every_s=0).poll(run, sim_now) is None
    assert run.fault is None and applied_faults(tmp_path) == []


def test_an_interrupted_wait_withdraws_the_request(tmp_path: Path) -> None:
    request = request_fault(tmp_path, "oca_outage", minutes=5)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wait_applied(tmp_path, request, timeout_s=30, every_s=0.05, quiet_s=0.1, on_wait=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_a_request_the_stub_has_taken_cannot_be_withdrawn(tmp_path: Path) -> None:
    run, _, sim_now = _live_stub()
    request = request_fault(tmp_path, "oca_outage", minutes=5)
    applied = FaultControl(tmp_path, every_s=0).poll(run, sim_now)
    assert applied is not None
    assert withdraw_fault(tmp_path, request) is False
    assert applied_faults(tmp_path) == [applied]


def test_withdrawing_a_replaced_request_leaves_the_newer_one(tmp_path: Path) -> None:
    older = request_fault(tmp_path, "oca_outage", minutes=5)
    newer = request_fault(tmp_path, "isp_congestion", minutes=5)
    assert withdraw_fault(tmp_path, older) is True
    pending = json.loads((tmp_path / REQUEST_FILE).read_text())
    assert pending["request_id"] == newer.request_id
    assert [p.name for p in tmp_path.iterdir()] == [REQUEST_FILE]


@pytest.mark.parametrize("scenario", ["normal", "no_such_fault"])
def test_only_fault_scenarios_are_injected(tmp_path: Path, scenario: str) -> None:
    with pytest.raises(ValueError, match="unknown fault scenario"):
        request_fault(tmp_path, scenario, 5)
    assert not (tmp_path / REQUEST_FILE).exists()


def test_demo_fault_without_a_running_stub_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "demo", "fault", "oca_outage"],
        env={**os.environ, "STREAMWATCH_DATA_DIR": str(tmp_path)},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "streamwatch: error: the demo's stub is not running: start it with `make demo`"
    )


@pytest.mark.parametrize(
    "status,level",
    [(200, logging.DEBUG), (207, logging.DEBUG), (400, logging.INFO), (413, logging.INFO),
     (503, logging.WARNING)],
)  # fmt: skip
def test_collector_logs_accepted_requests_at_debug_only(status: int, level: int) -> None:
    # One INFO line per accepted batch was 5.7 MB in 13 minutes of demo.
    assert _request_log_level(status) == level
