"""The minute counts' copy, merge and subtraction agree with pydantic's generic ones.

`MinuteCounts.clone` / `LatencySketch.clone` stand for `model_copy(deep=True)`, and
`merge_in` / `minus` write the field values directly instead of through pydantic's
`__setattr__` (the detector runs them hundreds of times a minute). Compared here with
the generic operations, field values, their types and the fields-set alike, on counts
as the detector sees them (parsed from partials) and on hand-made edge cases.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import Field

from contract.records import _ADDITIVE, MinuteCounts
from contract.sketch import LatencySketch
from streams import detector
from streams.detector import finding
from streams.detector.model import Baseline


def _reference_merge_in(acc: MinuteCounts, other: MinuteCounts) -> None:
    """`MinuteCounts.merge_in` as it was, through pydantic's `__setattr__`."""
    for name in _ADDITIVE:
        setattr(acc, name, getattr(acc, name) + getattr(other, name))
    s, o = acc.startup, other.startup
    for b, n in o.buckets.items():
        s.buckets[b] = s.buckets.get(b, 0) + n
    s.count += o.count
    s.total += o.total
    if o.min is not None:
        s.min = o.min if s.min is None else min(s.min, o.min)
    if o.max is not None:
        s.max = o.max if s.max is None else max(s.max, o.max)
    for code, n in other.errors_by_code.items():
        acc.errors_by_code[code] = acc.errors_by_code.get(code, 0) + n


def _reference_sketch_minus(a: LatencySketch, b: LatencySketch) -> LatencySketch:
    out = a.model_copy(deep=True)
    for k, n in b.buckets.items():
        left = out.buckets.get(k, 0) - n
        if left > 0:
            out.buckets[k] = left
        else:
            out.buckets.pop(k, None)
    out.count = max(0, a.count - b.count)
    out.total = a.total - b.total
    return out


def _reference_minus(a: MinuteCounts, b: MinuteCounts) -> MinuteCounts:
    """`MinuteCounts.minus` as it was."""
    out = MinuteCounts()
    for name in _ADDITIVE:
        setattr(out, name, getattr(a, name) - getattr(b, name))
    out.startup = _reference_sketch_minus(a.startup, b.startup)
    return out


def _same(got: Any, want: Any) -> None:
    """Equal as models, field by field with the same types, fields-set and JSON."""
    assert type(got) is type(want)
    assert got == want
    assert got.model_dump_json() == want.model_dump_json()
    assert got.__pydantic_fields_set__ == want.__pydantic_fields_set__
    for name, value in want.__dict__.items():
        assert type(got.__dict__[name]) is type(value), name
        if isinstance(value, LatencySketch):
            _same(got.__dict__[name], value)
    assert list(got.__dict__) == list(want.__dict__)  # field order


def _random_counts(rng: random.Random, *, parsed: bool) -> MinuteCounts:
    """Counts as a partial carries them (parsed from JSON) or as made in memory."""
    c = MinuteCounts.model_validate({n: rng.randint(0, 50) for n in rng.sample(_ADDITIVE, 6)})
    for _ in range(rng.choice((0, 1, 5))):
        c.startup.add(rng.choice((0.5, 7, 1234, 2.5e4)))
    if rng.random() < 0.5:
        c.errors_by_code = {f"E{rng.randint(1, 4)}": rng.randint(1, 3) for _ in range(3)}
    if rng.random() < 0.3:
        c.bitrate_kbps_ms = rng.randint(0, 10**9)  # an int held in the float field
    return MinuteCounts.model_validate_json(c.model_dump_json()) if parsed else c


@pytest.mark.parametrize("parsed", [True, False])
def test_clone_is_a_deep_copy(parsed: bool) -> None:
    rng = random.Random(7)
    for _ in range(200):
        c = _random_counts(rng, parsed=parsed)
        want = c.model_copy(deep=True)
        got = c.clone()
        _same(got, want)
        _same(c.startup.clone(), c.startup.model_copy(deep=True))
        # Nothing shared that could change: a change to the copy leaves the original.
        before = c.model_dump_json()
        got.startup.add(99)
        got.errors_by_code["new"] = 1
        got.events += 1
        assert c.model_dump_json() == before


def test_clone_of_a_wider_counts_object_is_pydantics_deep_copy() -> None:
    class Wider(MinuteCounts):
        notes: list[str] = Field(default_factory=list)

    w = Wider(notes=["a"])
    copy = w.clone()
    assert type(copy) is Wider and copy == w
    copy.notes.append("b")
    assert w.notes == ["a"]


@pytest.mark.parametrize("parsed", [True, False])
def test_merge_in_and_minus_agree_with_the_generic_ones(parsed: bool) -> None:
    rng = random.Random(11)
    for _ in range(200):
        a, b = _random_counts(rng, parsed=parsed), _random_counts(rng, parsed=parsed)
        want, got = a.model_copy(deep=True), a.model_copy(deep=True)
        _reference_merge_in(want, b)
        got.merge_in(b)
        _same(got, want)
        # `minus` of a part, as the detector asks "everything but this value".
        _same(got.minus(b), _reference_minus(want, b))
        _same(got.startup.minus(b.startup), _reference_sketch_minus(want.startup, b.startup))
        merged = a.startup.merge(b.startup)
        ref = a.startup.model_copy(deep=True)
        _reference_merge_in_sketch(ref, b.startup)
        _same(merged, ref)


def _reference_merge_in_sketch(s: LatencySketch, o: LatencySketch) -> None:
    acc, other = MinuteCounts(startup=s), MinuteCounts(startup=o)
    _reference_merge_in(acc, other)


def test_merge_in_of_empty_sketches_keeps_min_and_max_unset() -> None:
    a, b = MinuteCounts(), MinuteCounts()
    want = a.model_copy(deep=True)
    _reference_merge_in(want, b)
    a.merge_in(b)
    _same(a, want)
    assert a.startup.min is None and "min" not in a.startup.__pydantic_fields_set__


def test_merge_partials_in_place_equals_merging_copies() -> None:
    rng = random.Random(3)
    dims = [("all", "all"), ("isp", "a"), ("isp", "b"), ("os", "x")]
    partials = [(rng.choice(dims), _random_counts(rng, parsed=True)) for _ in range(40)]
    jsons = [(d, c.model_dump_json()) for d, c in partials]
    copied = detector.merge_partials(partials)
    # The inputs are left alone when not owned ...
    assert [(d, c.model_dump_json()) for d, c in partials] == jsons
    owned = detector.merge_partials(
        [(d, MinuteCounts.model_validate_json(j)) for d, j in jsons], owned=True
    )
    assert list(owned) == list(copied)
    for dim, c in copied.items():
        _same(owned[dim], c)


def test_counts_of_equals_the_validating_constructor() -> None:
    for fields in ({}, {"plays": 3, "failed_starts": 1}, {"active_sessions": 0}):
        got = finding._counts_of(**fields)
        _same(got, MinuteCounts.model_validate(fields))  # `MinuteCounts(**fields)`
        assert got.startup is not finding._NO_COUNTS.startup
        assert got.errors_by_code is not finding._NO_COUNTS.errors_by_code


def test_baseline_update_agrees_with_pydantics_setattr() -> None:
    def reference(b: Baseline, x: float, alpha: float) -> None:
        if b.n == 0:
            b.mean, b.var = x, 0.0
        else:
            d = x - b.mean
            b.mean += alpha * d
            b.var = (1 - alpha) * (b.var + alpha * d * d)
        b.n += 1

    rng = random.Random(5)
    for start in (Baseline(), Baseline.model_validate_json('{"mean":2,"var":1,"n":3}')):
        got, want = start.model_copy(deep=True), start.model_copy(deep=True)
        for _ in range(50):
            x = rng.choice((0, 3, 12.5, rng.random() * 100))
            got.update(x, 0.2)
            reference(want, x, 0.2)
            _same(got, want)
