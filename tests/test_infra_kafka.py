"""Real Kafka round trip: 10,000 messages out and back, in order per partition."""

from __future__ import annotations

import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

N_MESSAGES = 10_000
PARTITIONS = 3


async def test_produce_and_consume_10k_in_order_per_partition(kafka_bootstrap: str) -> None:
    topic = f"infra-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent: dict[int, list[int]] = defaultdict(list)
    try:
        futures = []
        for i in range(N_MESSAGES):
            key = f"session-{i % 97}".encode()
            futures.append(await producer.send(topic, key=key, value=str(i).encode()))
        for i, fut in enumerate(futures):
            meta = await fut
            sent[meta.partition].append(i)
    finally:
        await producer.stop()
    assert sum(len(v) for v in sent.values()) == N_MESSAGES
    assert len(sent) == PARTITIONS, "keys should spread over every partition"

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    received: dict[int, list[int]] = defaultdict(list)
    try:
        total = 0
        while total < N_MESSAGES:
            batch = await consumer.getmany(timeout_ms=5000, max_records=2000)
            assert batch, f"consumer stalled after {total} of {N_MESSAGES} messages"
            for tp, records in batch.items():
                for rec in records:
                    assert rec.value is not None
                    received[tp.partition].append(int(rec.value))
                    total += 1
    finally:
        await consumer.stop()

    assert sum(len(v) for v in received.values()) == N_MESSAGES
    for partition, values in sent.items():
        assert received[partition] == values, f"partition {partition} out of order or lossy"
