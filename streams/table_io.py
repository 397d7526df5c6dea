"""The stream worker's write path: table entries with their changelog records, buffered
sends, flushes and dead letters (mixed into `streams.app.StreamsApp`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, cast

from ingest.deadletter import DeadLetter
from streams.runtime import SourceMessage
from streams.send_buffer import Headers, SendBuffer


def reads(table: Any) -> Mapping[bytes, bytes]:
    """The mapping to read a table's entries from on the hot path.

    A faust table's `get` goes through its user-dict layers and a sensor call per read
    (about 8 % of the worker's time); its memory store keeps a plain dict, read directly.
    Writes still go through `TableIO.put`/`stage` (store and changelog together).
    """
    store = table.data
    inner = getattr(store, "data", None)
    return inner if isinstance(inner, dict) else store


class TableIO:
    """Writes through the app's producer; a flush is a barrier for everything before it."""

    app: Any  # faust.App
    deadletter_topic: Any
    _sends: SendBuffer | None = None
    _partition_counts: dict[str, int] | None = None
    # Per table (by id): its store's plain dict and its changelog topic's name, looked up
    # once: `stage` runs for many writes (a checkpoint's entries, a purge's deletions).
    _stage_targets: dict[int, tuple[MutableMapping[bytes, bytes], str]] | None = None

    @property
    def sends(self) -> SendBuffer:
        """The buffer of records sent at the next push or flush (streams.send_buffer)."""
        if self._sends is None:
            self._sends = SendBuffer(self.app.producer._ensure_producer)
        return self._sends

    async def put(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or, with None, delete) a table entry and send its changelog record.

        Not `table[key] = value`: faust sends that changelog record through a buffer that
        `producer.flush()` may return before draining (it waits 0.1 s at most), and the
        commit protocol needs a flush to be a real barrier. Sent to the producer here, the
        record is covered by the next flush, in the partition it belongs to.
        """
        await self.push()  # after anything buffered for the same partition
        self._store(table, key, value)
        topic = table.changelog_topic.get_topic_name()
        await self.app.producer.send(topic, key, value, partition, None, None)

    def stage(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """`put`, with the changelog record buffered until the next push or flush."""
        store, topic = self._target(table)
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
        self.sends.add(topic, partition, key, value)

    def stager(self, table: Any) -> Callable[[int, bytes, bytes], None]:
        """`stage` of one table, bound once, for many writes in a row (the seen-set's id per
        event, a checkpoint's entries): the store, changelog topic and buffer are looked up
        here, not per call. Not for deletes."""
        store, topic = self._target(table)
        add = self.sends.add

        def write(partition: int, key: bytes, value: bytes) -> None:
            store[key] = value
            add(topic, partition, key, value)

        return write

    def _target(self, table: Any) -> tuple[MutableMapping[bytes, bytes], str]:
        """A table's store (its plain dict) and changelog topic name, looked up once."""
        targets = self._stage_targets
        if targets is None:
            targets = self._stage_targets = {}
        target = targets.get(id(table))
        if target is None:
            store = cast(MutableMapping[bytes, bytes], reads(table))
            target = targets[id(table)] = (store, table.changelog_topic.get_topic_name())
        return target

    async def partitions_of(self, topic: str) -> int:
        """How many partitions `topic` has, as the producer's metadata says (asked once)."""
        counts = self._partition_counts
        if counts is None:
            counts = self._partition_counts = {}
        n = counts.get(topic)
        if n is None:
            producer = self.app.producer._ensure_producer()
            await producer.client._wait_on_metadata(topic)
            n = counts[topic] = len(producer.client.cluster.partitions_for_topic(topic))
        return n

    def sender(self) -> Callable[[str, int, bytes | None, bytes, Headers | None], None]:
        """`send`, bound once (for a record per event: the forward)."""
        return self.sends.add

    def send(
        self, topic: str, partition: int, key: bytes | None, value: bytes, headers: Headers | None
    ) -> None:
        """Buffer a record for `topic` (sent at the next push or flush)."""
        self.sends.add(topic, partition, key, value, headers)

    async def push(self) -> list[asyncio.Future[Any]]:
        """Hand what is buffered to the producer (delivery is not awaited): the futures of
        the batches handed over, to await their delivery alone."""
        if self._sends is None:
            return []
        return await self._sends.push()

    async def flush(self) -> None:
        """Push, then wait until everything sent so far is acknowledged (acks=all)."""
        await self.push()
        await self.app.producer.flush()

    @staticmethod
    def _store(table: Any, key: bytes, value: bytes | None) -> None:
        store = table.data
        if value is None:
            if key in store:
                del store[key]
        else:
            store[key] = value

    async def dead_letter(
        self, value: bytes, reason: str, detail: str, msg: SourceMessage, event_id: str | None
    ) -> None:
        """Send a message that cannot be processed to the dead-letter topic, with why."""
        letter = DeadLetter.of(
            value,
            reason,
            "streams",
            detail=detail,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            event_id=event_id,
        )
        await self.deadletter_topic.send(
            key=event_id.encode() if event_id else None, value=letter.model_dump_json().encode()
        )
