"""Writing rejected records to the dead-letter topic (before their offsets are committed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contract.deadletter import DeadLetter
from indexers.sink_loop import Backpressure, Record
from streamwatch import topics
from streamwatch.service_metrics import stage_metrics
from streamwatch.settings import Settings


def dead_letter_for(
    record: Record, reason: str, detail: str, source: str, event_id: str | None = None
) -> DeadLetter:
    """A dead-letter for a consumed record, keeping its original bytes and provenance."""
    return DeadLetter.of(
        record.value or b"",
        reason=reason,
        source=source,
        detail=detail[:4000],
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        event_id=event_id,
    )


class DeadLetterWriter:
    """Produces `DeadLetter` JSON to the dead-letter topic with acks=all."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic(topics.DEADLETTER)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        self.sent = 0

    async def start(self) -> None:
        """Connect."""
        await self.producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self.producer.stop()

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Send all and wait for every ack; Kafka trouble becomes `Backpressure`."""
        if not letters:
            return
        try:
            futures = [
                await self.producer.send(
                    self.topic,
                    value=letter.model_dump_json().encode(),
                    key=(letter.event_id or "").encode() or None,
                )
                for letter in letters
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise Backpressure(f"dead-letter topic unavailable: {exc}") from exc
        self.sent += len(letters)
        for letter in letters:
            stage_metrics(letter.source).deadletter(letter.reason)
