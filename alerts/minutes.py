"""Assemble complete minutes from `qoe.minute.v1` partials (one per source partition).

Partials of one minute arrive from every partition that had traffic, each possibly revised
by late events. A minute is judged once rollups of a minute `grace` minutes later have
arrived (the partitions have moved on); partials arriving after their minute was judged
are counted, not re-judged: an alert is a decision made at a point in time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams import detector
from streams.records import MinuteCounts, MinuteRollup

DimValue = tuple[str, str]


class MinuteAssembler:
    """Collects partials; `ready()` returns complete minutes in order."""

    def __init__(self, grace_minutes: int) -> None:
        self.grace = timedelta(minutes=grace_minutes)
        self._minutes: dict[datetime, dict[tuple[str, str, str], MinuteRollup]] = {}
        self._newest: datetime | None = None
        self.judged_upto: datetime | None = None
        self.too_late = 0

    def add(self, r: MinuteRollup) -> None:
        """Take one partial (a later revision of the same partial replaces it)."""
        if self.judged_upto is not None and r.window_start <= self.judged_upto:
            self.too_late += 1
            return
        parts = self._minutes.setdefault(r.window_start, {})
        key = (r.dimension, r.value, r.partial)
        known = parts.get(key)
        if known is None or r.revision >= known.revision:
            parts[key] = r
        if self._newest is None or r.window_start > self._newest:
            self._newest = r.window_start

    def ready(self, flush: bool = False) -> list[tuple[datetime, dict[DimValue, MinuteCounts]]]:
        """Minutes that may be judged now (all of them with `flush`), oldest first."""
        if self._newest is None:
            return []
        out: list[tuple[datetime, dict[DimValue, MinuteCounts]]] = []
        for start in sorted(self._minutes):
            if not flush and start + self.grace > self._newest:
                break
            parts = self._minutes.pop(start)
            merged = detector.merge_partials(
                [((r.dimension, r.value), r.counts) for r in parts.values()]
            )
            out.append((start, merged))
            self.judged_upto = start
        return out
