"""The raw feed's queue (streams.batch_feed): whole fetches per batch, revoked partitions
dropped. Its drain loop runs against the real broker in the worker and crash tests."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import pytest
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from streams import batch_feed
from streams.batch_feed import (
    Fetch,
    RawFeed,
    RawRecord,
    _aiokafka_record,
    _light_record,
    light_records,
)


@dataclass(frozen=True)
class Rec:
    offset: int


def fetch(p: int, first: int, n: int) -> Fetch:
    return Fetch(p, [Rec(o) for o in range(first, first + n)])


def flat(batch: list[Fetch]) -> list[tuple[int, int]]:
    return [(f.partition, r.offset) for f in batch for r in f.records]


async def test_take_merges_whole_fetches_up_to_the_batch_size() -> None:
    feed = RawFeed(consumer=None, topic="raw", max_fetches=8)
    for f in (fetch(0, 0, 300), fetch(1, 0, 300), fetch(0, 300, 300)):
        feed.queue.put_nowait(f)
    first = await feed.take(500, within_s=0.1)
    # Never a fetch cut in two: the second fetch is taken whole though it passes 500.
    assert flat(first) == [(0, o) for o in range(300)] + [(1, o) for o in range(300)]
    assert await feed.take(500, within_s=0.1) == [fetch(0, 300, 300)]
    assert await feed.take(500, within_s=0.05) == []  # nothing came in time


async def test_drop_forgets_only_the_revoked_partitions_in_order() -> None:
    feed = RawFeed(consumer=None, topic="raw", max_fetches=8)
    for f in (fetch(2, 3, 2), fetch(3, 0, 2), fetch(2, 5, 1), fetch(4, 0, 2)):
        feed.queue.put_nowait(f)
    feed.drop({2})
    assert await feed.take(10_000, within_s=0.1) == [fetch(3, 0, 2), fetch(4, 0, 2)]


async def test_a_full_queue_holds_the_fetcher_back() -> None:
    feed = RawFeed(consumer=None, topic="raw", max_fetches=1)
    feed.queue.put_nowait(fetch(0, 0, 1))
    blocked = asyncio.ensure_future(feed.queue.put(fetch(0, 1, 1)))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # backpressure: nothing is fetched beyond the queue
    # Taking frees the slot; the held-back fetch lands and is merged into the same batch.
    assert flat(await feed.take(10, within_s=0.1)) == [(0, 0), (0, 1)]
    assert blocked.done()


def test_light_records_hold_what_aiokafkas_records_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    # Records as the broker returns them (built by aiokafka's own batch builder), read by
    # the fetcher's record factory: aiokafka's dataclass, and the worker's named tuple.
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1_000_000,
    )
    builder.append(0, timestamp=1_700_000_000_123, key=b"s-1", value=b'{"a":1}', headers=[])
    builder.append(1, timestamp=None, key=None, value=b"x", headers=[("late", b"1")])
    builder.append(2, timestamp=5, key=b"k", value=None, headers=[])
    records = list(DefaultRecordBatch(bytes(builder.build())))
    fetched = PartitionRecords.__new__(PartitionRecords)
    fetched._key_deserializer = fetched._value_deserializer = None
    tp = TopicPartition("raw", 3)
    for record in records:
        theirs = _aiokafka_record(fetched, tp, record)
        ours = _light_record(fetched, tp, record)
        assert isinstance(ours, RawRecord)
        assert tuple(ours) == dataclasses.astuple(theirs)
        assert ours._fields == tuple(f.name for f in dataclasses.fields(theirs))
    # The raw topic's records are handed over as decoded: the fields the one pass reads.
    monkeypatch.setattr("streams.batch_feed._BARE_TOPICS", {"raw"})
    for record in records:
        bare = _light_record(fetched, tp, record)
        assert bare is record
        theirs = _aiokafka_record(fetched, tp, record)
        assert (bare.offset, bare.timestamp, bare.key, bare.value, list(bare.headers)) == (
            theirs.offset,
            theirs.timestamp,
            theirs.key,
            theirs.value,
            list(theirs.headers),
        )
    # Installed process-wide (the worker's process): undone after this test.
    monkeypatch.setattr(PartitionRecords, "_consumer_record", _aiokafka_record)
    monkeypatch.setattr("streams.batch_feed._BARE_TOPICS", set())
    light_records("raw")
    assert PartitionRecords._consumer_record is _light_record
    assert {"raw"} == batch_feed._BARE_TOPICS
