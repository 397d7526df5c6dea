"""The pipelined sink loop (poll the next batch while a flush is in flight) against real Kafka,
OpenSearch and the file system: a failed flush never lets a commit past unacknowledged
records, and records taken in while a flush runs are neither lost nor written twice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from indexers import naming
from indexers.deadletters import DeadLetterWriter
from indexers.opensearch_backend import OpenSearchBackend
from indexers.retry import RetryPolicy
from indexers.search_backend import BulkItemResult, BulkOp
from indexers.search_setup import ensure_search_ready
from indexers.search_sink import SEARCH_TOPICS, SearchSink
from indexers.sink_loop import (
    Backpressure,
    LoopConfig,
    LoopStats,
    Record,
    make_consumer,
    run_sink_loop,
)
from indexers.warehouse_sink import WarehouseSink
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.event_json import events
from tests.test_indexers_support import (
    SwitchableProxy,
    cleanup_search,
    produce,
    scoped,
    search_ids,
    wait_until,
    warehouse_scalar,
)

pytestmark = pytest.mark.integration

RETRY = RetryPolicy(initial_s=0.05, max_s=0.2)


@pytest.fixture
async def s(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(settings, tmp_path, kafka_partitions=1)
    yield scoped_settings
    cleanup_search(scoped_settings)


async def _committed(s: Settings, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (0 when nothing is committed)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await reader.start()
    try:
        return await reader.committed(TopicPartition(topic, 0)) or 0
    finally:
        await reader.stop()


class GatedSink:
    """A sink step whose flushes the test releases one by one, failing them on demand.

    It stands for our own `Sink` step (not for a server): the consumer, the commits and the
    group coordinator it runs against are the real Kafka.
    """

    name = "sink.test_gated"

    def __init__(self) -> None:
        self.added: list[int] = []
        self.pending_offsets: list[int] = []
        self.written: list[int] = []
        self.flushing = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_next = False

    def add(self, records: Sequence[Record]) -> None:
        self.added += [r.offset for r in records]
        self.pending_offsets += [r.offset for r in records]

    def pending(self) -> int:
        return len(self.pending_offsets)

    async def flush(self) -> None:
        todo, self.pending_offsets = self.pending_offsets, []
        self.flushing.set()
        await self.release.wait()
        self.release.clear()
        self.flushing.clear()
        if self.fail_next:
            self.fail_next = False
            self.pending_offsets = todo + self.pending_offsets
            raise Backpressure("store refused the batch")
        self.written += todo


async def test_failed_flush_while_next_batch_is_polled_commits_nothing(s: Settings) -> None:
    topic = s.topic(topics.EVENTS)
    group = naming.consumer_group(s, "pipelined")
    await produce(s, topics.EVENTS, list(events(100, seed=41)), "session_id")
    sink = GatedSink()
    consumer = make_consumer(s.bootstrap_servers, [topic], group, 100)
    await consumer.start()
    stop = asyncio.Event()
    stats = LoopStats()
    config = LoopConfig(max_records=100, max_wait_s=0.05, poll_timeout_ms=50)
    loop = asyncio.create_task(run_sink_loop(consumer, sink, stop, config, RETRY, stats))
    try:
        # Batch 1 (offsets 0-99) is in flight; the loop keeps polling and takes in batch 2.
        await asyncio.wait_for(sink.flushing.wait(), 60)
        await produce(s, topics.EVENTS, list(events(50, seed=42)), "session_id")
        await wait_until(lambda: len(sink.added) == 150, what="batch 2 polled during flush 1")
        assert await _committed(s, group, topic) == 0

        # Batch 1 fails while batch 2 waits: nothing may be committed.
        sink.fail_next = True
        sink.release.set()
        await asyncio.wait_for(sink.flushing.wait(), 60)  # the retry (of both batches) began
        assert stats.backpressure_waits == 1
        assert sink.written == []
        assert await _committed(s, group, topic) == 0

        # The store takes the retry: both batches are written, then committed.
        sink.release.set()
        await wait_until(lambda: sink.written == list(range(150)), what="both batches written")

        async def committed_all() -> bool:
            return await _committed(s, group, topic) == 150

        await wait_until(committed_all, what="offsets of both batches committed")
    finally:
        stop.set()
        sink.release.set()
        await asyncio.wait_for(loop, 60)
        await consumer.stop()
    assert sink.written == list(range(150))  # each record once, in order


class HeldBackend(OpenSearchBackend):
    """The real OpenSearch backend, whose next `_bulk` waits until the test lets it go."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(OpenSearchBackend.from_settings(settings).client)
        self.hold = threading.Event()
        self.held = threading.Event()
        self.go = threading.Event()

    def bulk(self, ops: Sequence[BulkOp]) -> list[BulkItemResult]:
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            self.go.wait(60)
        return super().bulk(ops)


async def test_search_bulk_failing_while_next_poll_is_pending_commits_nothing(
    s: Settings,
) -> None:
    """A real `_bulk` refused (engine unreachable) while the next batch is polled."""
    host, port = s.search_endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = SwitchableProxy(host, int(port))
    proxy.up()
    via_proxy = s.model_copy(update={"search_url": proxy.url})
    setup = OpenSearchBackend.from_settings(s)
    ensure_search_ready(setup, s)
    setup.close()
    backend = HeldBackend(via_proxy)
    deadletters = DeadLetterWriter(s)
    await deadletters.start()
    sink = SearchSink(s, backend, deadletters, chunk_size=200)
    group = naming.consumer_group(s, "search")
    topic = s.topic(topics.EVENTS)
    consumer = make_consumer(s.bootstrap_servers, [s.topic(t) for t in SEARCH_TOPICS], group, 200)
    await consumer.start()
    stop = asyncio.Event()
    stats = LoopStats()
    config = LoopConfig(max_records=200, max_wait_s=0.05, poll_timeout_ms=50)
    first = list(events(200, seed=43))
    second = list(events(100, seed=44))
    backend.hold.set()
    await produce(s, topics.EVENTS, first, "session_id")
    loop = asyncio.create_task(run_sink_loop(consumer, sink, stop, config, RETRY, stats))
    try:
        await asyncio.to_thread(backend.held.wait, 60)  # batch 1's bulk is in flight
        await produce(s, topics.EVENTS, second, "session_id")
        await wait_until(lambda: stats.records == 300, what="batch 2 polled during bulk 1")
        proxy.down()  # the engine is gone: bulk 1 fails with the next batch pending
        backend.go.set()
        await wait_until(lambda: stats.backpressure_waits >= 2, what="the sink backs off")
        assert await _committed(s, group, topic) == 0
        assert search_ids(s) == []

        proxy.up()

        async def committed_all() -> bool:
            return await _committed(s, group, topic) == 300

        await wait_until(committed_all, what="both batches committed after recovery")
    finally:
        proxy.up() if proxy._server is None else None
        stop.set()
        backend.go.set()
        await asyncio.wait_for(loop, 60)
        await consumer.stop()
        await deadletters.stop()
        backend.close()
        proxy.down()
    assert sorted(search_ids(s)) == sorted(e["event_id"] for e in first + second)
    assert sink.stats.indexed == 300


def _records(s: Settings, objs: list[bytes], first_offset: int) -> list[Record]:
    from aiokafka.structs import ConsumerRecord

    topic = s.topic(topics.EVENTS)
    return [
        ConsumerRecord(topic, 0, first_offset + i, 0, 0, None, v, None, 0, len(v), [])
        for i, v in enumerate(objs)
    ]


async def test_warehouse_rows_added_during_a_write_are_kept_for_the_next(
    s: Settings, tmp_path: Path
) -> None:
    """Rows taken in while a write is in flight, or while the disk refuses it, are not lost."""
    import json

    blocker = tmp_path / "warehouse"
    blocker.write_text("a file where the warehouse directory should be")
    broken = s.model_copy(update={"warehouse_dir": blocker})
    sink = WarehouseSink(broken, DeadLetterWriter(broken))  # no letters: never started
    values = [json.dumps(e).encode() for e in events(300, seed=45)]
    sink.add(_records(s, values[:100], 0))
    flush = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)  # the flush took its batch and is writing
    sink.add(_records(s, values[100:200], 100))
    with pytest.raises(Backpressure):
        await flush  # the disk refuses: both batches stay pending, the older first
    assert sink.pending() == 200

    blocker.unlink()  # the disk is back
    flush = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)
    sink.add(_records(s, values[200:], 200))  # taken in during the successful write
    await flush
    assert sink.pending() == 100
    await sink.flush()
    assert sink.pending() == 0
    counted = warehouse_scalar(broken, "SELECT count(*) FROM events")
    distinct = warehouse_scalar(broken, "SELECT count(DISTINCT source_offset) FROM events_all")
    assert (counted, distinct) == (300, 300)
