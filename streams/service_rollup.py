"""Per-minute rollups of control-plane spans: one `ServiceMinute` per (service, endpoint,
region) and minute, keyed by the span's start time.

A minute is published once the spans' watermark (the latest start time seen) has passed
its end by `grace_ms` (spans of a play arrive a few seconds ahead of it, a member's browse
requests up to a minute behind). A span later than that is not dropped: its minute is kept
for `keep_ms` and published again with the next `revision`, holding the full counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.sketch import LatencySketch
from contract.spans import GroupCounts, ServiceMinute, Span
from streams.sessionizer import from_ms

MINUTE_MS = 60_000


@dataclass(frozen=True)
class ServiceRollupPolicy:
    """When a minute closes and how long a closed one still takes late spans."""

    grace_ms: int = 90_000
    keep_ms: int = 15 * 60_000


class _Cell:
    """The running counts of one (minute, service, endpoint, region)."""

    __slots__ = ("errors", "fallbacks", "groups", "hits", "lookups", "requests", "sketch")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.fallbacks = 0
        self.lookups = 0
        self.hits = 0
        self.sketch = LatencySketch()
        self.groups: dict[str, list[int]] = {}

    def add(self, span: Span) -> None:
        self.requests += 1
        failed = span.status_code == "error"
        self.errors += failed
        self.fallbacks += span.fallback_used
        if span.cache_hit is not None:
            self.lookups += 1
            self.hits += span.cache_hit
        self.sketch.add(span.duration_ms)
        group = self.groups.setdefault(span.instance_group, [0, 0])
        group[0] += 1
        group[1] += failed


def _record(minute_ms: int, key: tuple[str, str, str], cell: _Cell, revision: int) -> ServiceMinute:
    service, endpoint, region = key
    return ServiceMinute(
        minute=from_ms(minute_ms),
        service=service,  # type: ignore[arg-type]
        endpoint=endpoint,
        region=region,
        requests=cell.requests,
        errors=cell.errors,
        fallbacks=cell.fallbacks,
        cache_lookups=cell.lookups,
        cache_hits=cell.hits,
        latency_p50_ms=cell.sketch.quantile(0.5),
        latency_p99_ms=cell.sketch.quantile(0.99),
        revision=revision,
        latency_buckets=dict(cell.sketch.buckets),
        instance_groups={g: GroupCounts(requests=n, errors=e) for g, (n, e) in cell.groups.items()},
    )


class ServiceRoller:
    """Spans in, closed `ServiceMinute`s out (see the module docstring)."""

    def __init__(self, policy: ServiceRollupPolicy | None = None) -> None:
        self.policy = policy or ServiceRollupPolicy()
        self.watermark_ms = -1
        self._open: dict[int, dict[tuple[str, str, str], _Cell]] = {}
        self._closed: dict[int, dict[tuple[str, str, str], tuple[_Cell, int]]] = {}
        self._revised: set[tuple[int, tuple[str, str, str]]] = set()
        self.dropped_late = 0  # older than keep_ms: counted, never silently lost

    def add(self, span: Span) -> None:
        """Count one span in its minute."""
        t = int(span.start_time.timestamp() * 1000)
        minute = t - t % MINUTE_MS
        key = (span.service, span.endpoint, span.region)
        self.watermark_ms = max(self.watermark_ms, t)
        closed = self._closed.get(minute)
        if closed is not None:
            cell, _ = closed.setdefault(key, (_Cell(), -1))
            cell.add(span)
            self._revised.add((minute, key))
            return
        if (
            minute not in self._open
            and minute + MINUTE_MS + self.policy.grace_ms <= self.watermark_ms
        ):
            self.dropped_late += 1
            return
        self._open.setdefault(minute, {}).setdefault(key, _Cell()).add(span)

    def advance(self, watermark_ms: int | None = None) -> list[ServiceMinute]:
        """Publish minutes due at `watermark_ms` (default: the spans' own) and revisions."""
        mark = self.watermark_ms if watermark_ms is None else watermark_ms
        out: list[ServiceMinute] = []
        for minute, key in sorted(self._revised):
            cell, revision = self._closed[minute][key]
            self._closed[minute][key] = (cell, revision + 1)
            out.append(_record(minute, key, cell, revision + 1))
        self._revised.clear()
        for minute in sorted(m for m in self._open if m + MINUTE_MS + self.policy.grace_ms <= mark):
            cells = self._open.pop(minute)
            self._closed[minute] = {k: (c, 0) for k, c in cells.items()}
            out.extend(_record(minute, k, c, 0) for k, c in sorted(cells.items()))
        for minute in [m for m in self._closed if m + self.policy.keep_ms < mark]:
            del self._closed[minute]
        return out
