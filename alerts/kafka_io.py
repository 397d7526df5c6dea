"""Kafka plumbing of the alerts box: partitions of a topic, read a topic, write records."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamwatch.settings import Settings


async def partitions(settings: Settings, logical: Sequence[str]) -> list[TopicPartition]:
    """Partitions of the (prefixed) topics that exist; a missing topic contributes none."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        # Describing a missing topic would make the broker auto-create it: list first.
        existing = set(await admin.list_topics())
        wanted = [settings.topic(t) for t in logical if settings.topic(t) in existing]
        descs = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return sorted(
        (TopicPartition(d["topic"], p["partition"]) for d in descs for p in d["partitions"]),
        key=lambda tp: (tp.topic, tp.partition),
    )


async def read_topic(settings: Settings, logical: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning to its end as of now."""
    tps = await partitions(settings, [logical])
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not pending:
                break
            for msgs in (await consumer.getmany(*pending, timeout_ms=500)).values():
                out.extend(msgs)
        out.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
        return out
    finally:
        await consumer.stop()


def producer(settings: Settings) -> AIOKafkaProducer:
    """An idempotent acks=all producer: a record we rely on is on every in-sync replica."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )


async def write(settings: Settings, logical: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Write (key, value) records to a topic and wait for every acknowledgement."""
    p = producer(settings)
    await p.start()
    try:
        for key, value in records:
            await p.send_and_wait(settings.topic(logical), key=key, value=value)
    finally:
        await p.stop()
