"""The raw topic, delivered to the one-pass agent a fetch at a time instead of per message.

Faust's fetcher hands every message to its conductor one at a time: per message two asyncio
tasks and an `asyncio.wait` (`wait_first(callback(message), suspend_flow.wait())`, which
adds two more for the service's own stop events), a faust `Message`, the agent's channel
queue, the stream's iterator and its ack bookkeeping. The one pass needs none of that for
the raw topic: it applies a batch and commits it itself (`streams.committed_state`), and
resumes from its checkpoints, not from faust's acks (`streams.offset_guard`).

Faust stays the engine: the app, its consumer, group membership and rebalances, the tables
and their recovery, the detect agent. Only the fetcher's drain loop is replaced, on the
consumer instance (`RawFeed.install`): the records of the raw topic go, one fetch per
partition at a time, to a bounded queue that the one-pass agent reads (`RawFeed.take`);
the records of every other topic (the partials topic, the changelogs read during
recovery) take faust's own per-message path, unchanged.

The records themselves are lighter (`light_records`): aiokafka makes a `ConsumerRecord`
dataclass per record, about 3 µs each in the consumer's thread. The raw topic's records
are handed over as the fetcher decoded them (aiokafka's compiled record: offset,
timestamp, key, value, headers), a fetch of one partition at a time (`Fetch`), so nothing
is built per record at all; every other topic's records become a named tuple with the
dataclass's fields (`RawRecord`, a fifth of its cost), which faust's own path reads.

Faust never sees the raw records, so it never acks or commits them: the agent commits the
group's offsets from its committed checkpoints (`StreamsApp._commit_raw_offsets`), the
same offsets a rebalance resumes from. On a rebalance, the fetch being handed over is
abandoned when faust suspends the flow (as faust's own path does), and queued records of
revoked partitions are dropped (`RawFeed.drop`); after the rebalance faust seeks every
partition to its committed offset, which is where the state is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from aiokafka.consumer.fetcher import PartitionRecords
from faust.types import TP

log = logging.getLogger("streamwatch.streams")


class RawRecord(NamedTuple):
    """A fetched record: the fields (and order) of aiokafka's `ConsumerRecord`."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: tuple[tuple[str, bytes], ...]


class Fetch(NamedTuple):
    """The records of one partition of the raw topic from one fetch, in offset order
    (aiokafka's compiled records: `offset`, `timestamp`, `key`, `value`, `headers`)."""

    partition: int
    records: list[Any]


_aiokafka_record = PartitionRecords._consumer_record
_new_tuple = tuple.__new__
_BARE_TOPICS: set[str] = set()  # topics whose records are handed over as decoded


def _light_record(self: Any, tp: Any, record: Any) -> Any:
    if self._key_deserializer is not None or self._value_deserializer is not None:
        return _aiokafka_record(self, tp, record)  # faust's consumer has none: bytes in
    if tp.topic in _BARE_TOPICS:
        return record
    key = record.key
    value = record.value
    return _new_tuple(
        RawRecord,
        (
            tp.topic,
            tp.partition,
            record.offset,
            record.timestamp,
            record.timestamp_type,
            key,
            value,
            record.checksum,
            -1 if key is None else len(key),
            -1 if value is None else len(value),
            tuple(record.headers),
        ),
    )


def light_records(bare_topic: str | None = None) -> None:
    """Make aiokafka's fetcher build every record of this process as a `RawRecord`, and
    hand `bare_topic`'s over as decoded (idempotent). The worker process only: its
    consumer, faust's, reads bytes, and only `RawFeed` reads `bare_topic`."""
    if bare_topic is not None:
        _BARE_TOPICS.add(bare_topic)
    PartitionRecords._consumer_record = _light_record


class RawFeed:
    """A bounded queue of raw-topic fetches, filled by a replacement drain loop."""

    def __init__(self, consumer: Any, topic: str, max_fetches: int = 8) -> None:
        self.consumer = consumer
        self.topic = topic
        self.queue: asyncio.Queue[Fetch] = asyncio.Queue(max_fetches)

    def install(self) -> RawFeed:
        """Replace the consumer's drain loop (faust's Fetcher calls `_drain_messages`), and
        build the fetched records lighter (`light_records`)."""
        self.consumer._drain_messages = self._drain
        light_records(self.topic)
        return self

    async def take(self, max_records: int, within_s: float) -> list[Fetch]:
        """The fetches queued, at least one (waiting up to `within_s` for it) and then more
        while fewer than `max_records` records are taken; [] when none came."""
        try:
            first = await asyncio.wait_for(self.queue.get(), within_s)
        except TimeoutError:
            return []
        batch = [first]
        n = len(first.records)
        while n < max_records and not self.queue.empty():
            fetch = self.queue.get_nowait()
            batch.append(fetch)
            n += len(fetch.records)
        return batch

    def drop(self, partitions: set[int]) -> None:
        """Forget the queued fetches of `partitions` (revoked: not ours to apply)."""
        kept: list[Fetch] = []
        while not self.queue.empty():
            fetch = self.queue.get_nowait()
            if fetch.partition not in partitions:
                kept.append(fetch)
        for fetch in kept:
            self.queue.put_nowait(fetch)

    async def _drain(self, fetcher: Any) -> None:
        """faust's `Consumer._drain_messages`, with the raw topic's records handed over a
        fetch at a time. Runs in the fetcher's task until the consumer or fetcher stops."""
        c = self.consumer
        consumer_stopped = c._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await c._wait_next_records(1.0)
                await asyncio.sleep(0)  # getmany may return at once: let others run
                if records is None or c.should_stop:
                    continue
                if not c.flow_active:
                    # What faust's getmany does: the rebalance repositions at the
                    # committed offsets; these records are read again from there.
                    await c.perform_seek()
                    continue
                await self._deliver(records, active)
        except c.consumer_stopped_errors:
            if c.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if c.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise

    async def _deliver(self, records: dict[TP, list[Any]], active: set[TP] | None) -> None:
        c = self.consumer
        generation = c.app.consumer_generation_id
        for tp, recs in records.items():
            if not c.flow_active or c.app.consumer_generation_id != generation:
                return  # a rebalance began: faust re-seeks to the committed offsets
            if active is not None and tp not in active and tp not in c._buffered_partitions:
                continue
            if tp.topic == self.topic:
                # Abandoned if a rebalance suspends the flow meanwhile (like faust's path).
                fetch = Fetch(tp.partition, recs)
                await c.wait_first(self.queue.put(fetch), c.suspend_flow.wait())
            else:
                for record in recs:
                    await self._one(tp, record)

    async def _one(self, tp: TP, record: Any) -> None:
        # faust's per-message path (Consumer._drain_messages), for every other topic.
        c = self.consumer
        message = c._to_message(tp, record)
        offset = message.offset
        r_offset = c._read_offset[tp]
        if r_offset is None or offset >= r_offset:
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and c.app.topics.acks_enabled_for(message.topic):
                await c._add_gap(tp, r_offset + 1, offset)
            if c._commit_every is not None and c._n_acked >= c._commit_every:
                c._n_acked = 0
                await c.commit()
            c.app.monitor.track_tp_end_offset(tp, c.highwater(tp))
            await c.wait_first(c.callback(message), c.suspend_flow.wait())
            c._read_offset[tp] = offset
