"""A mergeable latency histogram with fixed log-scaled buckets.

Every sketch uses the same bucket boundaries, so two sketches merge by adding counts:
minutes merge into hours exactly (the merged sketch is identical to one built from all the
values). Buckets grow by `GAMMA` from 1 ms, so a quantile read from a bucket is within
about +-2.5 % of the true value; exact values below 1 ms fall in bucket 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

GAMMA = 1.05
_LOG_GAMMA = math.log(GAMMA)
MAX_BUCKET = 400  # GAMMA**400 ms is about 3 * 10**8 ms: far above any startup time


def bucket_of(value_ms: float) -> int:
    """The bucket index of a value (values are clamped into [0, MAX_BUCKET])."""
    if value_ms < 1.0:
        return 0
    return min(MAX_BUCKET, 1 + int(math.log(value_ms) / _LOG_GAMMA))


def bucket_value(index: int) -> float:
    """A representative value of bucket `index`: the geometric middle of its bounds."""
    if index == 0:
        return 0.0
    low = GAMMA ** (index - 1)
    return low * math.sqrt(GAMMA)


class LatencySketch(BaseModel):
    """Counts per log bucket plus exact count/sum/min/max; JSON-serializable."""

    model_config = ConfigDict(extra="forbid")

    buckets: dict[int, int] = Field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None

    def add(self, value_ms: float, n: int = 1) -> None:
        """Record `n` observations of `value_ms`."""
        b = bucket_of(value_ms)
        self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += n
        self.total += value_ms * n
        self.min = value_ms if self.min is None else min(self.min, value_ms)
        self.max = value_ms if self.max is None else max(self.max, value_ms)

    def extend(self, values: Iterable[float]) -> None:
        """Record every value."""
        for v in values:
            self.add(v)

    def merge(self, other: LatencySketch) -> LatencySketch:
        """A new sketch holding both sketches' observations."""
        merged = self.model_copy(deep=True)
        merged.merge_in(other)
        return merged

    def merge_in(self, other: LatencySketch) -> None:
        """Add `other`'s observations to this sketch."""
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)

    def minus(self, other: LatencySketch) -> LatencySketch:
        """This sketch without `other`'s observations (`other` must be a part of it).

        Used for "the aggregate without this dimension value". min/max cannot be
        un-merged, so they stay as bounds of the whole.
        """
        out = self.model_copy(deep=True)
        for b, n in other.buckets.items():
            left = out.buckets.get(b, 0) - n
            if left > 0:
                out.buckets[b] = left
            else:
                out.buckets.pop(b, None)
        out.count = max(0, self.count - other.count)
        out.total = self.total - other.total
        return out

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1), None when empty; clamped to the exact min/max."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)  # nearest-rank over 0-based positions
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen > rank:
                if b == MAX_BUCKET and self.max is not None:
                    return self.max  # the overflow bucket has no upper bound of its own
                v = bucket_value(b)
                if self.min is not None:
                    v = max(v, self.min)
                if self.max is not None:
                    v = min(v, self.max)
                return v
        return self.max

    @property
    def mean(self) -> float | None:
        """Exact mean of the observations."""
        return self.total / self.count if self.count else None
