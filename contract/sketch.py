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
_COUNT_TOTAL = ("count", "total")


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
        merged = self.clone()
        merged.merge_in(other)
        return merged

    def clone(self) -> LatencySketch:
        """`model_copy(deep=True)`, without the generic deepcopy (the detector copies
        hundreds of sketches a minute): the buckets are the one mutable field."""
        if type(self) is not LatencySketch:  # a subclass may have more of them
            return self.model_copy(deep=True)
        out = self.__copy__()  # fields and fields-set copied, as `model_copy` does
        out.__dict__["buckets"] = dict(self.buckets)
        return out

    def merge_in(self, other: LatencySketch) -> None:
        """Add `other`'s observations to this sketch."""
        buckets = self.buckets
        for b, n in other.buckets.items():
            buckets[b] = buckets.get(b, 0) + n
        # Plain numbers, no validation on assignment: what `self.count += ...` and the rest
        # do through pydantic's `__setattr__`, field values and fields-set alike.
        f, o, fields_set = self.__dict__, other.__dict__, self.__pydantic_fields_set__
        f["count"] += o["count"]
        f["total"] += o["total"]
        fields_set.update(_COUNT_TOTAL)
        if o["min"] is not None:
            f["min"] = o["min"] if f["min"] is None else min(f["min"], o["min"])
            fields_set.add("min")
        if o["max"] is not None:
            f["max"] = o["max"] if f["max"] is None else max(f["max"], o["max"])
            fields_set.add("max")

    def minus(self, other: LatencySketch) -> LatencySketch:
        """This sketch without `other`'s observations (`other` must be a part of it).

        Used for "the aggregate without this dimension value". min/max cannot be
        un-merged, so they stay as bounds of the whole.
        """
        out = self.clone()
        buckets = out.buckets
        for b, n in other.buckets.items():
            left = buckets.get(b, 0) - n
            if left > 0:
                buckets[b] = left
            else:
                buckets.pop(b, None)
        f = out.__dict__
        f["count"] = max(0, self.count - other.count)
        f["total"] = self.total - other.total
        out.__pydantic_fields_set__.update(_COUNT_TOTAL)
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
