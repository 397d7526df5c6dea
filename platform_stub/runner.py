"""A stub run end to end: generate, pace, send to a sink, keep the ledger, write the truth.

Output directory (`<data_dir>/stub/<run name>/`):

- `events.jsonl`  the events (file target only);
- `spans.jsonl`    the control plane's spans (file target only; else `telemetry.spans.v1`);
- `ledger.txt`     one event id per line for every event Kafka or the collector acknowledged
                   (not for file/null runs: `streamwatch reconcile` counts every ledger under
                   `<data_dir>/stub/` as produced into the pipeline);
- `scenario.json`  the scenario's ground truth (kind, window, dimension/value, affected ids);
- `truth.jsonl`    one record per session (with `--truth`);
- `members.jsonl`  the population's members (ids, emails, devices) for a member directory;
- `summary.json`   counts, rates and paths.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from platform_stub.generator import RunOptions, StubRun
from platform_stub.live_faults import FaultControl
from platform_stub.population import member_record
from platform_stub.sinks import Delivered, Sink
from platform_stub.truth import SessionTruth, write_truth

SinkFactory = Callable[[Path, Delivered], Sink]
PIPELINE_TARGETS = ("kafka", "http")


class Ledger:
    """Event ids the destination acknowledged: a count and an append-only file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._fh: IO[str] | None = path.open("w", encoding="utf-8") if path else None

    def add(self, lines: list[str]) -> None:
        """Record acknowledged event lines (the id sits at a fixed offset of each line)."""
        self.count += len(lines)
        if self._fh is not None and lines:
            self._fh.write("\n".join([line[13:49] for line in lines]))
            self._fh.write("\n")

    def close(self) -> None:
        """Flush and close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class RunSummary:
    """What a run did (also written as summary.json)."""

    run_dir: str
    target: str
    scenario: str
    seed: int
    events: int
    delivered: int
    sessions_started: int
    sessions_finished: int
    events_by_type: dict[str, int]
    elapsed_s: float
    events_per_s: float
    first_event_ms: int
    stopped_early: bool
    ledger_path: str | None
    scenario_path: str
    truth_path: str | None
    extra: dict[str, object] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        """Write as pretty JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Pacing:
    """How fast simulated time runs in wall time: `speed` x real time, 0 = as fast as possible."""

    speed: float = 0.0
    progress_every_s: float = 5.0


class SpanOutput:
    """The control plane's spans' destination, if any, and how many it acknowledged."""

    def __init__(self, factory: SinkFactory | None, run_dir: Path) -> None:
        self.acknowledged = 0
        self.sink = factory(run_dir, self._delivered) if factory is not None else None

    def _delivered(self, lines: list[str]) -> None:
        self.acknowledged += len(lines)

    async def start(self) -> None:
        """Connect."""
        if self.sink is not None:
            await self.sink.start()

    async def send(self, spans: list[str], keys: list[str]) -> None:
        """Hand over one batch of spans."""
        if self.sink is not None and spans:
            await self.sink.send(spans, keys)

    async def flush(self) -> None:
        """Wait for every span handed over."""
        if self.sink is not None:
            await self.sink.flush()

    async def stop(self) -> None:
        """Disconnect."""
        if self.sink is not None:
            await self.sink.stop()


class Pacer:
    """Holds a paced run to `speed` x real time from the simulated start on."""

    def __init__(self, speed: float, start_ms: int) -> None:
        self.speed = speed
        self.start_ms = start_ms
        self.origin: float | None = None  # wall time at which simulated time reached the start

    async def wait_for(self, last_ms: int) -> None:
        """Sleep until `last_ms` is due (warm-up events before the start go out unpaced)."""
        if self.speed <= 0 or last_ms <= self.start_ms:
            return
        if self.origin is None:
            self.origin = time.perf_counter()
        delay = self.origin + (last_ms - self.start_ms) / 1000.0 / self.speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


def _write_members(run: StubRun, run_dir: Path) -> None:
    # Written first so a long live run (the demo) can be looked up by email while it runs.
    with (run_dir / "members.jsonl").open("w", encoding="utf-8") as fh:
        for member in run.population.members:
            fh.write(json.dumps(member_record(member), separators=(",", ":")) + "\n")


async def run_async(
    options: RunOptions,
    sink_factory: SinkFactory,
    run_dir: Path,
    *,
    target: str,
    pacing: Pacing = Pacing(),
    truth: bool = False,
    progress: IO[str] | None = sys.stderr,
    span_sink_factory: SinkFactory | None = None,
) -> RunSummary:
    """Generate `options` into the sink made by `sink_factory` (and the control plane's
    spans into the one `span_sink_factory` makes); write the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # Truth records stream to disk as sessions end, so a long live run holds none in memory.
    truth_path = run_dir / "truth.jsonl" if truth else None
    truth_file = truth_path.open("w", encoding="utf-8") if truth_path else None

    def session_ended(record: SessionTruth) -> None:
        if truth_file is not None:
            truth_file.write(record.to_json())
            truth_file.write("\n")

    run = StubRun(options, keep_truths=False, on_session_end=session_ended)
    _write_members(run, run_dir)
    # Only runs that feed the pipeline leave a ledger for reconciliation to count.
    ledger_path = run_dir / "ledger.txt" if target in PIPELINE_TARGETS else None
    ledger = Ledger(ledger_path)
    sink = sink_factory(run_dir, ledger.add)
    spans = SpanOutput(span_sink_factory, run_dir)
    batch_events = options.config.batch_events
    # A paced run sends what is due every ~100 ms of wall time instead of big bursts.
    span_ms = int(100 * pacing.speed) if pacing.speed > 0 else None
    wall0 = time.perf_counter()
    last_report = wall0
    pacer = Pacer(pacing.speed, options.start)
    # A paced (live) run takes faults injected while it runs (`streamwatch demo fault`).
    faults = FaultControl(run_dir) if pacing.speed > 0 else None
    await sink.start()
    await spans.start()
    try:
        for batch in run.batches(batch_events, span_ms):
            await pacer.wait_for(batch.last_ms)
            await sink.send(batch.lines, batch.keys)
            await spans.send(batch.spans, batch.span_keys)
            if faults is not None and batch.last_ms > options.start:
                # Only once live: a fault starts at the simulated now, never in the warm-up.
                applied = faults.poll(run, batch.last_ms)
                if applied is not None and progress is not None:
                    progress.write(
                        f"stub: fault {applied.kind} on {applied.dimension} = {applied.value} "
                        f"from {applied.start} to {applied.end}\n"
                    )
            now = time.perf_counter()
            if progress is not None and now - last_report >= pacing.progress_every_s:
                last_report = now
                progress.write(
                    f"stub: {run.events:,} events, {run.events / (now - wall0):,.0f}/s, "
                    f"{run.sessions_started:,} sessions ({run.playing:,} in flight), "
                    f"acknowledged {ledger.count:,}\n"
                )
                progress.flush()
        await sink.flush()
        await spans.flush()
    finally:
        await sink.stop()
        await spans.stop()
        ledger.close()
        if truth_file is not None:
            # Sessions cut by --max-events or the window end, marked incomplete.
            write_truth(run.in_flight(), truth_file)
            truth_file.close()
    elapsed = time.perf_counter() - wall0

    scenario_path = run_dir / "scenario.json"
    run.scenario_truth().write(scenario_path)

    summary = RunSummary(
        run_dir=str(run_dir),
        target=target,
        scenario=options.scenario,
        seed=options.seed,
        events=run.events,
        delivered=ledger.count,
        sessions_started=run.sessions_started,
        sessions_finished=run.sessions_finished,
        events_by_type=dict(sorted(run.events_by_type.items(), key=lambda kv: -kv[1])),
        elapsed_s=round(elapsed, 3),
        events_per_s=round(run.events / elapsed, 1) if elapsed > 0 else 0.0,
        first_event_ms=options.start - int(options.warmup_s * 1000),
        stopped_early=run.stopped_early,
        ledger_path=str(ledger_path) if ledger_path else None,
        scenario_path=str(scenario_path),
        truth_path=str(truth_path) if truth_path else None,
        extra={
            "spans": run.spans,
            "spans_acknowledged": spans.acknowledged if spans.sink is not None else None,
            "spans_per_play": round(run.spans / max(1, run.sessions_started), 2),
        },
    )
    summary.write(run_dir / "summary.json")
    return summary


def run(
    options: RunOptions,
    sink_factory: SinkFactory,
    run_dir: Path,
    *,
    target: str,
    pacing: Pacing = Pacing(),
    truth: bool = False,
    progress: IO[str] | None = sys.stderr,
    span_sink_factory: SinkFactory | None = None,
) -> RunSummary:
    """Synchronous wrapper of `run_async`."""
    return asyncio.run(
        run_async(
            options,
            sink_factory,
            run_dir,
            target=target,
            pacing=pacing,
            truth=truth,
            progress=progress,
            span_sink_factory=span_sink_factory,
        )
    )
