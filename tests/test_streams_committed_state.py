"""The stream worker's commit protocol and offset sequencing (pure logic, no Kafka)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from streams.committed_state import (
    Checkpoint,
    Entry,
    ValidateStats,
    committed_value,
    recover,
    with_hints,
)
from streams.offset_guard import OffsetGuard, Position, classify

# States are never empty (an empty image means "no such key").
json_bytes = st.binary(min_size=1, max_size=60).map(lambda b: b.hex().encode())


@given(
    seq=st.integers(0, 10**9),
    ms=st.integers(0, 2**50),
    closed=st.booleans(),
    cur=st.binary(max_size=200),
    prev=st.binary(max_size=200),
)
def test_entry_round_trips_whatever_its_images_hold(
    seq: int, ms: int, closed: bool, cur: bytes, prev: bytes
) -> None:
    e = Entry(seq, ms, closed, cur, prev)
    assert Entry.decode(e.encode()) == e


def test_committed_value_is_the_current_image() -> None:
    assert committed_value(None) == b""
    assert committed_value(Entry(3, 1, False, b'{"a":1}', b'{"a":0}').encode()) == b'{"a":1}'


def _by_key(items: dict[bytes, Entry], cp: Checkpoint) -> dict[bytes, tuple[str, bytes | None]]:
    out: dict[bytes, tuple[str, bytes | None]] = {}
    for r in recover(((k, e.encode()) for k, e in items.items()), cp):
        out[r.key] = (r.action, r.entry.cur if r.entry else None)
    return out


def test_recover_rolls_an_interrupted_batch_back_to_the_checkpoint() -> None:
    cp = Checkpoint(seq=7, upto=812)
    items = {
        b"0|committed": Entry(7, 10, False, b"C"),
        b"0|older": Entry(2, 10, True, b"O", b"whatever"),
        b"0|changed-after": Entry(8, 20, False, b"NEW", b"OLD"),
        b"0|created-after": Entry(8, 20, False, b"NEW", b""),
        b"0|deleted-after": Entry(8, 0, True, b"", b"KEEP"),
        b"0|deleted-committed": Entry(6, 0, True, b"", b"GONE"),
    }
    assert _by_key(items, cp) == {
        b"0|committed": ("keep", b"C"),
        b"0|older": ("keep", b"O"),
        b"0|changed-after": ("rewrite", b"OLD"),
        b"0|created-after": ("delete", None),
        b"0|deleted-after": ("rewrite", b"KEEP"),
        b"0|deleted-committed": ("delete", None),
    }


def test_rewritten_entries_are_committed_at_the_checkpoint_with_fresh_hints() -> None:
    cp = Checkpoint(seq=4)
    (repair,) = recover([(b"k", Entry(5, 99, True, b"new", b"old").encode())], cp)
    assert repair.entry is not None and repair.entry.seq == cp.seq
    fixed = with_hints(repair.entry, lambda cur: (len(cur), cur == b"old"))
    assert (fixed.ms, fixed.closed, fixed.cur) == (3, True, b"old")
    # Once rewritten it survives the next recovery unchanged, whatever the next seq is.
    (again,) = recover([(b"k", fixed.encode())], Checkpoint(seq=4))
    assert again.action == "keep" and again.entry == fixed


@given(
    committed=st.lists(st.tuples(st.integers(0, 20), json_bytes), min_size=1, max_size=20),
    crashed_writes=st.lists(st.tuples(st.integers(0, 20), json_bytes), max_size=20),
)
def test_a_crash_after_any_prefix_of_a_batch_recovers_the_committed_state(
    committed: list[tuple[int, bytes]], crashed_writes: list[tuple[int, bytes]]
) -> None:
    """Whatever part of batch 2 landed, recovery yields exactly the state after batch 1."""
    table: dict[bytes, bytes] = {}
    for k, v in committed:
        key = f"0|{k}".encode()
        table[key] = Entry(1, 0, False, v, committed_value(table.get(key))).encode()
    expected = {k: Entry.decode(raw).cur for k, raw in table.items()}
    seen_in_batch: dict[bytes, bytes] = {}
    for k, v in crashed_writes:
        key = f"0|{k}".encode()
        prev = seen_in_batch.setdefault(key, committed_value(table.get(key)))
        table[key] = Entry(2, 0, False, v, prev).encode()
    state = {
        r.key: r.entry.cur for r in recover(table.items(), Checkpoint(seq=1)) if r.entry is not None
    }
    assert state == expected


def test_offsets_are_applied_strictly_in_sequence() -> None:
    assert classify(-1, 0) is Position.NEXT  # a new state: from the log's start
    assert classify(-1, 500) is Position.AFTER_GAP
    assert classify(9, 10) is Position.NEXT
    assert classify(9, 9) is Position.APPLIED
    assert classify(9, 3) is Position.APPLIED
    assert classify(9, 12) is Position.AFTER_GAP


class _Consumer:
    """Records seeks; the log starts at `earliest` (what retention left)."""

    def __init__(self, earliest: int) -> None:
        self.earliest = earliest
        self.seeks: list[tuple[TP, int]] = []

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    async def seek_wait(self, positions: dict[TP, int]) -> None:
        self.seeks.extend(positions.items())


def test_a_gap_rewinds_the_consumer_once_and_skips_until_the_missing_offset() -> None:
    consumer, counters = _Consumer(earliest=0), Counter[str]()
    guard = OffsetGuard(consumer, counters, "qoe")

    async def run() -> list[bool]:
        return [
            await guard.admit("t", 3, 20, last_applied=9),  # 10..19 were never applied
            await guard.admit("t", 3, 21, last_applied=9),  # still draining: no new seek
            await guard.admit("t", 3, 10, last_applied=9),  # the rewound read arrives
        ]

    assert asyncio.run(run()) == [False, False, True]
    assert consumer.seeks == [(TP("t", 3), 10)]
    assert counters["qoe.rewinds"] == 1 and counters["qoe.gap_skipped"] == 2


def test_a_new_state_starts_at_the_log_start_not_at_the_first_record_seen() -> None:
    # A record fetched before a rebalance (offset 1400) arrives first; 0..1399 were
    # dropped with the revoke. Taking 1400 as the start would lose them for good.
    consumer, counters = _Consumer(earliest=0), Counter[str]()
    guard = OffsetGuard(consumer, counters, "qoe")

    async def run() -> list[bool]:
        return [
            await guard.admit("t", 5, 1400, last_applied=-1),
            await guard.admit("t", 5, 0, last_applied=-1),
        ]

    assert asyncio.run(run()) == [False, True]
    assert consumer.seeks == [(TP("t", 5), 0)]
    # Retention removed the first offsets: the log's start is where a new state starts.
    late = OffsetGuard(_Consumer(earliest=1400), Counter[str](), "qoe")
    assert asyncio.run(late.admit("t", 5, 1400, last_applied=-1)) is True


def test_offsets_deleted_by_retention_are_counted_and_processing_resumes() -> None:
    consumer, counters = _Consumer(earliest=15), Counter[str]()
    guard = OffsetGuard(consumer, counters, "validate")
    assert asyncio.run(guard.admit("t", 0, 15, last_applied=9)) is True
    assert counters["validate.offsets_lost"] == 5 and consumer.seeks == []


def test_states_stored_before_entries_existed_are_kept_and_rewritten() -> None:
    legacy = b'{"session_id":"s-1","closed":false}'
    assert committed_value(legacy) == legacy
    (repair,) = recover([(b"0|s-1", legacy)], Checkpoint(seq=3))
    assert repair.action == "rewrite" and repair.entry is not None
    assert (repair.entry.seq, repair.entry.cur, repair.entry.prev) == (3, legacy, b"")


class _PydanticStats(BaseModel):
    """The pydantic model `ValidateStats` replaced (its JSON must not change)."""

    model_config = ConfigDict(extra="forbid")

    raw: int = 0
    valid: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    late_closed: int = 0


class _PydanticCheckpoint(BaseModel):
    """The pydantic model `Checkpoint` replaced."""

    model_config = ConfigDict(extra="forbid")

    seq: int = 0
    upto: int = -1
    watermark_ms: int = 0
    next_scan_ms: int = 0
    revise: list[str] = []
    closed_upto_ms: int = 0
    stats: _PydanticStats = Field(default_factory=_PydanticStats)


@given(
    ints=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=11, max_size=11),
    revise=st.lists(st.text(max_size=20), max_size=4),
)
def test_checkpoints_are_written_and_read_as_the_pydantic_model_did(
    ints: list[int], revise: list[str]
) -> None:
    old = _PydanticCheckpoint(
        seq=ints[0],
        upto=ints[1],
        watermark_ms=ints[2],
        next_scan_ms=ints[3],
        revise=revise,
        closed_upto_ms=ints[4],
        stats=_PydanticStats(**dict(zip(ValidateStats.model_fields, ints[5:], strict=False))),
    )
    stored = old.model_dump_json()
    cp = Checkpoint.model_validate_json(stored)
    assert cp.model_dump_json() == stored
    assert cp.stats.model_dump() == old.stats.model_dump()
    # Counted per event as plain attributes, written as the model wrote the same counts.
    cp.stats.raw += 1
    cp.upto += 1
    old.stats.raw += 1
    old.upto += 1
    assert cp.model_dump_json() == old.model_dump_json()


def test_checkpoints_of_older_workers_read_back_and_unknown_fields_are_refused() -> None:
    assert Checkpoint.model_validate_json(b'{"seq":2,"upto":9}') == Checkpoint(seq=2, upto=9)
    assert Checkpoint().model_dump_json() == _PydanticCheckpoint().model_dump_json()
    for bad in (b'{"bogus":1}', b'{"stats":{"bogus":1}}', b'{"upto":"x"}'):
        with pytest.raises(ValueError):
            Checkpoint.model_validate_json(bad)


@given(
    seq=st.integers(0, 10**9),
    ms=st.integers(0, 2**50),
    closed=st.booleans(),
    cur=st.binary(max_size=200),
    prev=st.binary(max_size=200),
)
def test_committed_value_reads_the_current_image_of_any_entry(
    seq: int, ms: int, closed: bool, cur: bytes, prev: bytes
) -> None:
    raw = Entry(seq, ms, closed, cur, prev).encode()
    assert committed_value(raw) == Entry.decode(raw).cur == cur
    assert committed_value(b'{"legacy":1}') == b'{"legacy":1}'
