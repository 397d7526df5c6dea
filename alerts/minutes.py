"""Assemble complete minutes from `qoe.minute.v1` partials (one per source partition).

Partials of one minute arrive from every partition that had traffic, each possibly revised
by late events. A minute is judged once every topic partition that still has records to
give has delivered rollups `grace` minutes later (so a backlog read from the beginning,
where one partition runs ahead of another, is judged as it was written); a partition that
has nothing more right now does not hold minutes back. Partials arriving after their minute
was judged are counted, not re-judged: an alert is a decision made at a point in time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contract.records import MinuteCounts, MinuteRollup
from streams import detector

DimValue = tuple[str, str]


def merge(parts: list[tuple[DimValue, MinuteCounts]]) -> dict[DimValue, MinuteCounts]:
    """Sum the partials of one minute per dimension value.

    `streams.detector.merge_partials` copies every partial; most values have one partial
    (one partition saw them), which can be used as it is, so only values with several are
    handed to it.
    """
    seen: dict[DimValue, int] = {}
    for dim, _ in parts:
        seen[dim] = seen.get(dim, 0) + 1
    out = {dim: c for dim, c in parts if seen[dim] == 1}
    out.update(detector.merge_partials([(d, c) for d, c in parts if seen[d] > 1]))
    return out


class MinuteAssembler:
    """Collects partials; `ready()` returns complete minutes in order."""

    def __init__(self, grace_minutes: int) -> None:
        self.grace = timedelta(minutes=grace_minutes)
        self._minutes: dict[datetime, dict[tuple[str, str, str], MinuteRollup]] = {}
        self._newest: dict[int, datetime] = {}
        self.judged_upto: datetime | None = None
        self.too_late = 0

    def add(self, r: MinuteRollup, partition: int = 0) -> None:
        """Take one partial read from topic `partition` (a later revision replaces it)."""
        if self.judged_upto is not None and r.window_start <= self.judged_upto:
            self.too_late += 1
            return
        parts = self._minutes.setdefault(r.window_start, {})
        key = (r.dimension, r.value, r.partial)
        known = parts.get(key)
        if known is None or r.revision >= known.revision:
            parts[key] = r
        newest = self._newest.get(partition)
        if newest is None or r.window_start > newest:
            self._newest[partition] = r.window_start

    def ready(
        self, idle: frozenset[int] = frozenset(), flush: bool = False
    ) -> list[tuple[datetime, dict[DimValue, MinuteCounts]]]:
        """Minutes that may be judged now, oldest first.

        `idle`: partitions read to their end for now (they hold nothing back); `flush`
        judges everything.
        """
        if not self._newest:
            return []
        busy = [t for p, t in self._newest.items() if p not in idle]
        upto = min(busy) if busy else max(self._newest.values())
        out: list[tuple[datetime, dict[DimValue, MinuteCounts]]] = []
        for start in sorted(self._minutes):
            if not flush and start + self.grace > upto:
                break
            parts = self._minutes.pop(start)
            merged = merge([((r.dimension, r.value), r.counts) for r in parts.values()])
            out.append((start, merged))
            self.judged_upto = start
        return out
