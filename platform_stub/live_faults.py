"""Faults injected into a running (paced) stub: `streamwatch demo fault SCENARIO`.

The request is a small JSON file in the run directory; the running stub polls for it between
batches, starts the scenario's fault at its current simulated time for the requested
minutes, records what it applied in `faults.jsonl` (the ground truth of a live fault) and
removes the request. A file keeps the stub free of any server or signal handling, and the
requester can wait for the stub to confirm, or withdraw a request the stub has not taken.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from platform_stub.encoding import iso_ms
from platform_stub.population import Population
from platform_stub.scenarios import SCENARIOS, Fault, choose_fault

REQUEST_FILE = "fault-request.json"
APPLIED_FILE = "faults.jsonl"


@dataclass(frozen=True)
class FaultRequest:
    """Which scenario to start, for how long (simulated minutes)."""

    request_id: str
    scenario: str
    minutes: float


@dataclass(frozen=True)
class AppliedFault:
    """A live fault as the stub applied it (one line of `faults.jsonl`)."""

    request_id: str
    kind: str
    dimension: str
    value: str
    metric: str
    start: str
    end: str
    start_ms: int
    end_ms: int


class FaultTarget(Protocol):
    """What a live fault changes: the run's fault, read by its players (`StubRun`)."""

    population: Population

    def set_fault(self, fault: Fault | None) -> None: ...


def request_fault(run_dir: Path, scenario: str, minutes: float) -> FaultRequest:
    """Ask the stub running in `run_dir` to start `scenario` for `minutes` (atomic write)."""
    if scenario not in SCENARIOS or scenario == "normal":
        faults = ", ".join(s for s in SCENARIOS if s != "normal")
        raise ValueError(f"unknown fault scenario {scenario!r}; choose one of {faults}")
    if minutes <= 0:
        raise ValueError("--minutes must be positive")
    request = FaultRequest(uuid.uuid4().hex, scenario, minutes)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{REQUEST_FILE}.{request.request_id}"
    tmp.write_text(json.dumps(asdict(request)), encoding="utf-8")
    os.replace(tmp, run_dir / REQUEST_FILE)
    return request


def applied_faults(run_dir: Path) -> list[AppliedFault]:
    """Every fault the stub in `run_dir` applied, oldest first."""
    path = run_dir / APPLIED_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [AppliedFault(**json.loads(line)) for line in lines if line.strip()]


def _applied(run_dir: Path, request: FaultRequest) -> AppliedFault | None:
    for applied in applied_faults(run_dir):
        if applied.request_id == request.request_id:
            return applied
    return None


def _poll_applied(
    run_dir: Path, request: FaultRequest, seconds: float, every_s: float
) -> AppliedFault | None:
    deadline = time.monotonic() + seconds
    while True:
        applied = _applied(run_dir, request)
        if applied is not None or time.monotonic() >= deadline:
            return applied
        time.sleep(every_s)


def withdraw_fault(run_dir: Path, request: FaultRequest) -> bool:
    """Take `request` back unless the stub has taken it; True if it will never be applied.

    The request is renamed away, as the stub claims it: only one of the two renames can
    succeed, so a fault is never both withdrawn and applied.
    """
    held = run_dir / f".{REQUEST_FILE}.{request.request_id}.withdrawn"
    try:
        os.rename(run_dir / REQUEST_FILE, held)
    except FileNotFoundError:
        return False  # the stub has it
    pending = json.loads(held.read_text(encoding="utf-8"))
    if pending["request_id"] != request.request_id:
        # A newer `demo fault` replaced ours; it stays asked.
        os.rename(held, run_dir / REQUEST_FILE)
        return True
    held.unlink()
    return True


def wait_applied(
    run_dir: Path,
    request: FaultRequest,
    timeout_s: float,
    *,
    every_s: float = 0.5,
    on_wait: Callable[[], None] | None = None,
    quiet_s: float = 3.0,
) -> AppliedFault:
    """The applied fault of `request`, waiting up to `timeout_s` for the stub to take it.

    The stub takes requests only once its warm-up is sent, which can be a minute or two
    after `make demo` returns; `on_wait` is called once if nothing happened in `quiet_s`.
    If the stub never takes the request, or the wait is interrupted, the request is
    withdrawn, so no fault starts later behind the user's back.
    """
    try:
        applied = _poll_applied(run_dir, request, min(quiet_s, timeout_s), every_s)
        if applied is None and on_wait is not None:
            on_wait()
        if applied is None:
            applied = _poll_applied(run_dir, request, max(timeout_s - quiet_s, 0), every_s)
    except BaseException:
        withdraw_fault(run_dir, request)
        raise
    if applied is not None:
        return applied
    if withdraw_fault(run_dir, request):
        raise TimeoutError(
            f"the stub did not take the fault request within {timeout_s:g} s, so it was "
            "withdrawn and nothing started; the stub takes faults once its warm-up is sent "
            "(see its log for 'stub:' lines), try again then"
        )
    # The stub renamed it just now: its confirmation follows at once.
    applied = _poll_applied(run_dir, request, 10.0, every_s)
    if applied is None:
        raise TimeoutError(
            f"the stub took fault request {request.request_id} but did not confirm it in "
            f"{run_dir / APPLIED_FILE}; see the stub's log"
        )
    return applied


class FaultControl:
    """Polls `run_dir` for a fault request at most every `every_s` wall seconds."""

    def __init__(self, run_dir: Path, every_s: float = 1.0) -> None:
        self.run_dir = run_dir
        self.every_s = every_s
        self._next_poll = 0.0

    def poll(self, target: FaultTarget, sim_now_ms: int) -> AppliedFault | None:
        """Apply a pending request to `target` starting at simulated `sim_now_ms`."""
        now = time.monotonic()
        if now < self._next_poll:
            return None
        self._next_poll = now + self.every_s
        claimed = self.run_dir / f".{REQUEST_FILE}.claimed"
        try:
            # A rename, like the requester's withdrawal: exactly one of them gets it.
            os.rename(self.run_dir / REQUEST_FILE, claimed)
        except FileNotFoundError:
            return None
        raw = json.loads(claimed.read_text(encoding="utf-8"))
        claimed.unlink()
        request = FaultRequest(str(raw["request_id"]), str(raw["scenario"]), float(raw["minutes"]))
        end_ms = sim_now_ms + int(request.minutes * 60_000)
        fault = choose_fault(request.scenario, target.population, sim_now_ms, end_ms)
        if fault is None:
            return None
        target.set_fault(fault)
        applied = AppliedFault(
            request_id=request.request_id,
            kind=fault.kind,
            dimension=fault.dimension,
            value=fault.value,
            metric=fault.metric,
            start=iso_ms(fault.start_ms),
            end=iso_ms(fault.end_ms),
            start_ms=fault.start_ms,
            end_ms=fault.end_ms,
        )
        with (self.run_dir / APPLIED_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(applied)) + "\n")
        return applied
