"""When the detector judges a minute (streams/minute_gate.py): pure logic, no servers."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.minute_gate import (
    PartitionProgress,
    closed_upto,
    is_progress,
    judgeable,
    progress_key,
)

M = 60_000
PARTS = ("p0", "p1", "p2")
SILENCE = 120_000


def _judge(
    pending: list[int],
    arrived: dict[int, list[str]],
    closed: dict[str, int],
    heard: dict[str, int] | None = None,
    clock: int = 0,
    since: int = 0,
) -> list[int]:
    return judgeable(pending, arrived, closed, heard or {}, since, clock, PARTS, SILENCE)


def test_closed_upto_is_the_newest_minute_past_its_lateness() -> None:
    # start + 60 s + 30 s <= watermark closes the window
    assert closed_upto(10 * M + 30_000, M, 30_000) == 9 * M
    assert closed_upto(10 * M + 29_999, M, 30_000) == 8 * M


def test_progress_records_are_told_apart_from_partials() -> None:
    key = progress_key("p3")
    assert is_progress(key)
    assert not is_progress(b"1700000000000")
    assert not is_progress(None)
    assert PartitionProgress.model_validate_json(
        PartitionProgress(partial="p3", closed_upto_ms=5).model_dump_json()
    ) == PartitionProgress(partial="p3", closed_upto_ms=5)


def test_a_minute_waits_for_a_partition_that_is_behind() -> None:
    # p2 has said nothing about minute 1 yet, however far p0 and p1 have gone.
    arrived = {M: ["p0", "p1"], 50 * M: ["p0", "p1"]}
    assert _judge([M, 50 * M], arrived, {"p0": 60 * M, "p1": 60 * M}) == []


def test_a_minute_is_judged_once_every_partition_is_done_with_it() -> None:
    # p2 had no traffic in minute 1 but has closed it; p0 and p1 sent partials.
    pending = [M, 2 * M, 3 * M]
    arrived = {M: ["p0", "p1"], 2 * M: ["p0", "p1", "p2"], 3 * M: ["p0"]}
    assert _judge(pending, arrived, {"p2": 2 * M}) == [M, 2 * M]


def test_minutes_are_judged_in_order() -> None:
    # Minute 2 is complete but minute 1 still waits for p1: nothing is judged.
    arrived = {M: ["p0", "p2"], 2 * M: list(PARTS)}
    assert _judge([M, 2 * M], arrived, {}) == []


def test_a_silent_partition_is_not_waited_for() -> None:
    arrived = {M: ["p0", "p1"]}
    heard = {"p0": 500_000, "p1": 500_000, "p2": 10_000}
    assert _judge([M], arrived, {}, heard, clock=10_000 + SILENCE - 1) == []
    assert _judge([M], arrived, {}, heard, clock=10_000 + SILENCE) == [M]


def test_a_partition_never_heard_counts_as_silent_from_the_first_record() -> None:
    arrived = {M: ["p0", "p1"]}
    heard = {"p0": 400_000, "p1": 400_000}
    assert _judge([M], arrived, {}, heard, clock=SILENCE - 1, since=0) == []
    assert _judge([M], arrived, {}, heard, clock=SILENCE, since=0) == [M]


def _partition_records(p: str, minutes: list[int]) -> list[tuple[str, str, int]]:
    """What one partition publishes: each minute's partial, then "closed up to it"."""
    out: list[tuple[str, str, int]] = []
    for m in minutes:
        out.append(("partial", p, m))
        out.append(("progress", p, m))
    return out


def _run(records: list[tuple[str, str, int]]) -> dict[int, frozenset[str]]:
    """Feed records in order; what each judged minute was judged with."""
    arrived: dict[int, list[str]] = {}
    closed: dict[str, int] = {}
    judged: dict[int, frozenset[str]] = {}
    for kind, p, m in records:
        if kind == "partial":
            if m in judged or m <= closed.get(p, m - 1):
                continue
            arrived.setdefault(m, []).append(p)
        else:
            closed[p] = max(closed.get(p, 0), m)
        for start in judgeable(arrived, arrived, closed, {}, 0, 0, PARTS, SILENCE):
            judged[start] = frozenset(arrived.pop(start))
    return judged


minute_sets = st.lists(st.integers(1, 8).map(lambda n: n * M), unique=True, max_size=6).map(sorted)


@settings(max_examples=200, deadline=None)
@given(st.tuples(minute_sets, minute_sets, minute_sets), st.randoms(use_true_random=False))
def test_what_a_minute_is_judged_with_does_not_depend_on_interleaving(
    per_partition: tuple[list[int], list[int], list[int]], rnd: random.Random
) -> None:
    streams = [_partition_records(p, ms) for p, ms in zip(PARTS, per_partition, strict=True)]
    in_turn = [r for s in streams for r in s]  # one partition after the other
    shuffled: list[tuple[str, str, int]] = []
    queues = [list(s) for s in streams]
    while any(queues):  # a random merge that keeps each partition's own order
        q = rnd.choice([q for q in queues if q])
        shuffled.append(q.pop(0))
    a, b = _run(in_turn), _run(shuffled)
    assert a == b
    # Every minute every partition has closed is judged, with every partial sent for it.
    last_common = min((ms[-1] if ms else 0) for ms in per_partition)
    for m in {m for ms in per_partition for m in ms if m <= last_common}:
        assert a[m] == frozenset(p for p, ms in zip(PARTS, per_partition, strict=True) if m in ms)
