"""A batch's records gathered per topic partition and handed to the producer whole.

aiokafka's `send` costs tens of microseconds per record (partitioner, accumulator, a
future per record); the one pass sends two to three records per event (the forwarded
event, its seen-set entry, and per batch the state entries and checkpoints). Appending to
a `BatchBuilder` and submitting it with `send_batch` costs a few. The records are the
same; delivery is the same (acks=all, awaited by the producer's flush, which waits for
submitted batches too).

Order: records of one topic partition are submitted in the order they were added, and
`push` runs before every flush (`StreamsApp.flush`), so a flush is still a barrier for
everything added before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Headers = list[tuple[str, bytes]]


class SendBuffer:
    """Records to send, per (topic, partition), until `push` submits them as batches."""

    def __init__(self, producer_of: Callable[[], Any]) -> None:
        self._producer_of = producer_of  # the aiokafka producer (created when first used)
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]] = {}

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        """Add one record (sent at the next `push`)."""
        records = self._pending.get((topic, partition))
        if records is None:
            records = self._pending[topic, partition] = []
        records.append((key, value, headers or []))

    async def push(self) -> None:
        """Submit everything added so far to the producer, one batch per partition (more
        when a batch is full); delivery is awaited by the producer's flush."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        producer = self._producer_of()
        for (topic, partition), records in pending.items():
            batch = producer.create_batch()
            for key, value, headers in records:
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    await producer.send_batch(batch, topic, partition=partition)
                    batch = producer.create_batch()
                    if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        raise ValueError(f"a record for {topic}[{partition}] exceeds a batch")
            await producer.send_batch(batch, topic, partition=partition)
