"""A batch's records gathered per topic partition and handed to the producer whole.

aiokafka's `send` costs tens of microseconds per record (partitioner, accumulator, a
future per record); the one pass sends two to three records per event (the forwarded
event, its seen-set entry, and per batch the state entries, outputs and checkpoints).
Appending to a `BatchBuilder` as the record is added and submitting the builder with
`send_batch` costs a few. The records are the same; delivery is the same (acks=all,
awaited by the producer's flush, which waits for submitted batches too).

Each record goes straight to the batch's record builder (aiokafka's compiled
`DefaultRecordBatchBuilder`), not through `BatchBuilder.append`: that wrapper's keyword
call and serializer checks cost as much as the builder's own append, for two to three
records per event. The wrapper is still what the producer is handed, with its record
count set before it is submitted.

Order: records of one topic partition are submitted in the order they were added, and
`push` runs before every flush (`StreamsApp.flush`), so a flush is still a barrier for
everything added before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Headers = list[tuple[str, bytes]]
_NO_HEADERS: Headers = []  # what `BatchBuilder.append` passes for none (never mutated)


class _OpenBatch:
    """A batch being filled: aiokafka's `BatchBuilder`, its record builder's `append`, and
    how many records it holds (the offset of the next, relative to the batch)."""

    __slots__ = ("append", "batch", "count")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.append = batch._builder.append
        self.count = 0

    def closed(self) -> Any:
        """The batch, closed, with its record count (what the sender reads) set."""
        self.batch._relative_offset = self.count
        self.batch.close()
        return self.batch


class SendBuffer:
    """Records to send, appended per (topic, partition) to batches that `push` submits."""

    def __init__(self, producer_of: Callable[[], Any]) -> None:
        self._producer_of = producer_of  # the aiokafka producer (created when first used)
        self._open: dict[tuple[str, int], _OpenBatch] = {}  # the batch being filled
        self._full: list[tuple[str, int, Any]] = []  # filled ones, in the order they filled

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        """Add one record (sent at the next `push`)."""
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[topic, partition] = _OpenBatch(self._producer_of().create_batch())
        if batch.append(batch.count, None, key, value, headers or _NO_HEADERS) is None:
            self._full.append((topic, partition, batch.closed()))
            batch = self._open[topic, partition] = _OpenBatch(self._producer_of().create_batch())
            if batch.append(0, None, key, value, headers or _NO_HEADERS) is None:
                raise ValueError(f"a record for {topic}[{partition}] exceeds a batch")
        batch.count += 1

    async def push(self) -> list[asyncio.Future[Any]]:
        """Submit everything added so far to the producer, one batch per partition (more
        when a batch filled); delivery is awaited by the producer's flush, or by awaiting
        the returned futures (one per batch: its delivery, acks=all).

        The batches are closed first: a closed batch is sent at once instead of lingering
        (`producer_linger_s`), and `producer.send` cannot append to it afterwards.
        """
        if not self._open:
            return []
        full, self._full = self._full, []
        batches = full + [(t, p, b.closed()) for (t, p), b in self._open.items()]
        self._open = {}
        producer = self._producer_of()
        delivered = []
        for topic, partition, batch in batches:
            delivered.append(await producer.send_batch(batch, topic, partition=partition))
        return delivered
