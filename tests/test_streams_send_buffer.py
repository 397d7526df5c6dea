"""The worker's send buffer (streams.send_buffer): records land where `producer.send`
would put them, in the order they were added, and `push` hands back one delivery future
per batch (what the commit's step 0 awaits). Against the real broker."""

from __future__ import annotations

import os
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams.send_buffer import SendBuffer
from streamwatch import topics
from streamwatch.key_partition import key_partition
from streamwatch.settings import Settings


def test_key_partition_is_aiokafkas_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 3, 6, 12):
        for i in range(500):
            key = os.urandom(1 + i % 40)
            assert key_partition(key, n) == partitioner(key, list(range(n)), list(range(n)))


async def test_push_delivers_every_batch_in_order_with_a_future_each(settings: Settings) -> None:
    topic = settings.topic(topics.EVENTS)
    # Small batches: 300 records of ~200 bytes fill several per partition.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_batch_size=16_384
    )
    await producer.start()
    tag = uuid.uuid4().hex[:8]
    try:
        buffer = SendBuffer(lambda: producer)
        sent: dict[int, list[bytes]] = {0: [], 1: []}
        for i in range(300):
            p = i % 2
            value = f"{tag}-{i:04d}-".encode() + b"x" * 180
            buffer.add(topic, p, f"k{i}".encode(), value, [("h", b"1")] if i == 7 else None)
            sent[p].append(value)
        delivered = await buffer.push()
        assert len(delivered) > 2  # the filled batches, then the open one per partition
        metadata = [await future for future in delivered]  # acks=all: durable
        assert {m.partition for m in metadata} == {0, 1}
        assert await buffer.push() == []  # nothing left behind
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: dict[int, list[bytes]] = {0: [], 1: []}
        headers: list[tuple[str, bytes]] = []
        for p in (0, 1):
            tp = TopicPartition(topic, p)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while len(got[p]) < len(sent[p]):
                batch = await consumer.getmany(tp, timeout_ms=5_000)
                assert batch, f"partition {p}: only {len(got[p])} of {len(sent[p])} records"
                for record in batch[tp]:
                    if record.value and record.value.startswith(tag.encode()):
                        got[p].append(record.value)
                        headers += list(record.headers)
        assert got == sent
        assert headers == [("h", b"1")]
    finally:
        await consumer.stop()
