"""The control-plane stage on Kafka: `python -m streams.service_worker`.

Consumes `telemetry.spans.v1` (consumer group `<prefix>streamwatch-services`), rolls spans
up into `ServiceMinute`s on `ops.service_minute.v1` (key `service|endpoint|region`) and
publishes the service detector's incidents on `ops.incidents.v1` (key incident id), next to
the QoE detector's. A span that is not a valid `contract.spans.Span` goes to the
dead-letter topic with reason `span_invalid`. Offsets are committed only after everything a
batch caused is acknowledged (at-least-once; consumers dedupe on the record keys).

It runs beside the Faust workers as its own process: one consumer for all span partitions,
so each minute is judged once. Its open minutes and baselines live in memory: a restart
re-reads from the last commit and rebuilds them (the detector warms up again).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from contract.spans import ServiceMinute, Span
from ingest.deadletter import DeadLetter
from streams.service_replay import ServicePipeline
from streamwatch import topics
from streamwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)
GROUP = "streamwatch-services"


def minute_key(row: ServiceMinute) -> bytes:
    """The Kafka key of a service minute."""
    return f"{row.service}|{row.endpoint}|{row.region}".encode()


class ServiceWorker:
    """Spans in; service minutes, incidents and dead letters out (see the module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline = ServicePipeline()
        self.consumer = AIOKafkaConsumer(
            settings.topic(topics.SPANS),
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.topic(GROUP),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
        )
        self.spans = 0
        self.invalid = 0

    async def start(self) -> None:
        """Connect."""
        await self.producer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        """Disconnect (the last batch is committed by `step`)."""
        await self.consumer.stop()
        await self.producer.stop()

    async def step(self, timeout_ms: int = 1_000, idle_watermark_ms: int | None = None) -> int:
        """Take one batch of spans, publish what it closed, commit. Returns spans taken.

        `idle_watermark_ms` closes minutes when no span arrives (end of a replay or test).
        """
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=5_000)
        sends = []
        dead = self.settings.topic(topics.DEADLETTER)
        taken = 0
        for tp, records in batch.items():
            for rec in records:
                taken += 1
                try:
                    self.pipeline.add(Span.model_validate_json(rec.value or b""))
                except ValidationError as exc:
                    self.invalid += 1
                    letter = DeadLetter.of(
                        rec.value or b"", "span_invalid", "streams.services",
                        detail=str(exc)[:500], source_topic=tp.topic,
                        source_partition=tp.partition, source_offset=rec.offset,
                    )  # fmt: skip
                    sends.append(await self.producer.send(dead, letter.model_dump_json().encode()))
        self.spans += taken
        self.pipeline.advance(None if taken else idle_watermark_ms)
        sends.extend(await self._publish())
        if sends:
            await asyncio.gather(*sends)
        if taken:
            await self.consumer.commit()
        return taken

    async def _publish(self) -> list[asyncio.Future[object]]:
        out = self.pipeline.out
        minute_topic = self.settings.topic(topics.SERVICE_MINUTE)
        incident_topic = self.settings.topic(topics.INCIDENTS)
        futures = []
        for row in out.minutes:
            value = row.model_dump_json().encode()
            futures.append(await self.producer.send(minute_topic, value, key=minute_key(row)))
        for inc in out.incidents:
            value = inc.model_dump_json().encode()
            key = inc.incident_id.encode()
            futures.append(await self.producer.send(incident_topic, value, key=key))
        # Handed to the producer: a long-running worker must not keep every minute it made.
        out.minutes.clear()
        out.incidents.clear()
        return futures


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Step until `stop` is set."""
    worker = ServiceWorker(settings)
    await worker.start()
    try:
        while not stop.is_set():
            await worker.step()
    finally:
        await worker.stop()


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (`streamwatch service-worker`, the demo's process)."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(_main())


def main() -> None:
    """Entry point of `python -m streams.service_worker`."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    logging.basicConfig(level=logging.INFO)
    serve(get_settings())


if __name__ == "__main__":
    main()
