"""Run the whole streams logic in one process over a sequence of raw events.

The same code the stream worker runs (`streams.partition.PartitionState`: sessionize, roll
up, close on the event-time scan), as one partition without Kafka, then the detector on
every closed minute: for replaying a stub run or a captured topic, for benchmarks, and for
checking detector thresholds against scenario ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from contract.fast_parse import parse_event_json
from streams import detector, minute_gate, rollup
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.partition import MemoryStore, PartitionState, Published
from streams.records import Incident, MinuteRollup, SessionSummary
from streams.rollup import WindowState
from streams.sessionizer import from_ms


@dataclass
class ReplayResult:
    """Everything the pipeline published, in publication order."""

    summaries: list[SessionSummary] = field(default_factory=list)
    rollups: list[MinuteRollup] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    invalid: int = 0

    def latest_summaries(self) -> dict[str, SessionSummary]:
        """The latest revision of each session's summary."""
        out: dict[str, SessionSummary] = {}
        for s in self.summaries:
            out[s.session_id] = s
        return out


@dataclass
class _Detect:
    """The detector of one partition: judges each minute when its partial is closed."""

    config: StreamsConfig
    state: detector.DetectorState = field(default_factory=detector.DetectorState)
    evaluated_upto_ms: int | None = None
    closed_upto_ms: int = -1
    late_partials: int = 0

    def feed(self, key: bytes, value: bytes, out: ReplayResult) -> None:
        if minute_gate.is_progress(key):
            progress = minute_gate.PartitionProgress.model_validate_json(value)
            self.closed_upto_ms = max(self.closed_upto_ms, progress.closed_upto_ms)
            return
        w = WindowState.model_validate_json(value)
        start = w.window_start_ms
        if (
            self.evaluated_upto_ms is not None and start <= self.evaluated_upto_ms
        ) or start <= self.closed_upto_ms:
            # As the worker's detector: a minute judged already, or a very late partial.
            self.late_partials += 1
            return
        values = detector.merge_partials([(rollup.split_key(k), c) for k, c in w.values.items()])
        out.incidents.extend(
            detector.evaluate(self.state, from_ms(start), values, self.config.detector)
        )
        self.evaluated_upto_ms = start


def replay(
    lines: Iterable[str | bytes],
    config: StreamsConfig | None = None,
    advance_every: int = 2_000,
    flush: bool = True,
) -> ReplayResult:
    """Feed raw event JSON through the worker's partition logic and the detector.

    `advance_every` is kept for callers and no longer used: sessions and windows close on
    the worker's own event-time cadence (`config.scan_step_ms`), so replay publishes what a
    worker publishes for the same input.
    """
    del advance_every
    cfg = config or StreamsConfig()
    part = PartitionState(0, Checkpoint(), cfg, MemoryStore())
    detect = _Detect(cfg)
    out = ReplayResult()
    published = Published()

    def collect() -> None:
        out.summaries.extend(published.summaries)
        out.rollups.extend(published.rollups)
        for key, value in published.partials:
            detect.feed(key, value, out)
        published.clear()

    for line in lines:
        try:
            event = parse_event_json(line)
        except ValueError:
            out.invalid += 1
            continue
        part.apply(event, None, published)
        part.done_with(None, published)
        collect()
    if flush:
        part.cp.watermark_ms += cfg.session.inactivity_timeout_ms + 3 * rollup.WINDOW_MS
        part.scan(published)
        collect()
    return out
