"""Run the whole streams logic in one process over a sequence of raw events.

The same pure steps the Faust agents run (sessionize, roll up, detect), without Kafka: for
replaying a stub run or a captured topic, for benchmarks, and for checking detector
thresholds against scenario ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ingest.events import EVENT_ADAPTER
from streams import detector, rollup
from streams.config import StreamsConfig
from streams.records import Incident, MinuteCounts, MinuteRollup, SessionSummary
from streams.rollup import MinuteRoller
from streams.sessionizer import Sessionizer, from_ms, to_ms


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


def replay(
    lines: Iterable[str | bytes],
    config: StreamsConfig | None = None,
    advance_every: int = 2_000,
    flush: bool = True,
) -> ReplayResult:
    """Feed raw event JSON through sessionizer, minute rollups and the detector."""
    cfg = config or StreamsConfig()
    sz = Sessionizer(cfg.session)
    roller = MinuteRoller("p0", cfg.rollup)
    state = detector.DetectorState()
    out = ReplayResult()
    pending: dict[int, list[MinuteRollup]] = {}

    def advance(watermark: int | None = None) -> None:
        for summary in sz.advance(watermark):
            out.summaries.append(summary)
            roller.add_end(summary)
        published = roller.advance(watermark)
        out.rollups.extend(published)
        for r in published:
            if r.revision == 0:
                pending.setdefault(to_ms(r.window_start), []).append(r)
        # One partial: a published window is complete, judge it now.
        for start in sorted(pending):
            values: dict[tuple[str, str], MinuteCounts] = {
                (r.dimension, r.value): r.counts for r in pending.pop(start)
            }
            out.incidents.extend(detector.evaluate(state, from_ms(start), values, cfg.detector))

    for n, line in enumerate(lines, 1):
        try:
            event = EVENT_ADAPTER.validate_json(line)
        except ValueError:
            out.invalid += 1
            continue
        applied = sz.feed(event)
        if applied.duplicate:
            continue
        roller.add(to_ms(event.event_time), sz.states[event.session_id].dims, applied)
        if applied.summary is not None:
            out.summaries.append(applied.summary)
        if n % advance_every == 0:
            advance()
    if flush:
        advance(sz.watermark_ms + cfg.session.inactivity_timeout_ms + 3 * rollup.WINDOW_MS)
    return out
