"""A batch's records gathered per topic partition and handed to the producer whole.

aiokafka's `send` costs tens of microseconds per record (partitioner, accumulator, a
future per record); the one pass sends two to three records per event (the forwarded
event, its seen-set entry, and per batch the state entries, outputs and checkpoints).
Appending to a `BatchBuilder` as the record is added and submitting the builder with
`send_batch` costs a few. The records are the same; delivery is the same (acks=all,
awaited by the producer's flush, which waits for submitted batches too).

Order: records of one topic partition are submitted in the order they were added, and
`push` runs before every flush (`StreamsApp.flush`), so a flush is still a barrier for
everything added before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Headers = list[tuple[str, bytes]]


class SendBuffer:
    """Records to send, appended per (topic, partition) to batches that `push` submits."""

    def __init__(self, producer_of: Callable[[], Any]) -> None:
        self._producer_of = producer_of  # the aiokafka producer (created when first used)
        self._open: dict[tuple[str, int], Any] = {}  # the BatchBuilder being filled
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
            batch = self._open[topic, partition] = self._producer_of().create_batch()
        if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            self._full.append((topic, partition, batch))
            batch = self._open[topic, partition] = self._producer_of().create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise ValueError(f"a record for {topic}[{partition}] exceeds a batch")

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
        batches = full + [(t, p, b) for (t, p), b in self._open.items()]
        self._open = {}
        producer = self._producer_of()
        delivered = []
        for topic, partition, batch in batches:
            batch.close()
            delivered.append(await producer.send_batch(batch, topic, partition=partition))
        return delivered
