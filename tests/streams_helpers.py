"""Driving real stream worker processes and reading their topics, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamwatch import topics
from streamwatch.settings import Settings


def worker_env(s: Settings, **extra: str) -> dict[str, str]:
    """Environment of a worker process for these settings (plus `extra` variables)."""
    return {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": s.topic_prefix,
        "STREAMWATCH_DATA_DIR": str(s.data_dir),
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
        "STREAMWATCH_KAFKA_PARTITIONS": str(s.kafka_partitions),
        "STREAMWATCH_STREAMS_BATCH_WITHIN_S": "0.2",
        **extra,
    }


def start_worker(
    s: Settings, tag: str, index: int = 0, loglevel: str = "INFO", **env: str
) -> subprocess.Popen[bytes]:
    """One `streams.worker` process, logging to `<data_dir>/worker-<tag>.log`."""
    log = Path(s.data_dir) / f"worker-{tag}.log"
    return subprocess.Popen(
        [sys.executable, "-m", "streams.worker", "--index", str(index), "--loglevel", loglevel],
        env=worker_env(s, **env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop(p: subprocess.Popen[bytes]) -> int:
    """SIGTERM (a clean stop) and the exit code."""
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout=60)


async def topic_partitions(s: Settings, names: list[str]) -> list[TopicPartition]:
    """The partitions of those topics that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
    await admin.start()
    try:
        # Only existing ones: describing a missing topic makes the broker auto-create it
        # with the default partition count (the one-partition internal topic included).
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        descs = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"]) for d in descs for p in d.get("partitions") or []
    ]


async def read_all(s: Settings, logical: str) -> list[Any]:
    """Every message of a topic, from the beginning to its current end ([] if missing)."""
    tps = await topic_partitions(s, [s.topic(logical)])
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not pending:
                return out
            for msgs in (await consumer.getmany(*pending, timeout_ms=500)).values():
                out.extend(msgs)
    finally:
        await consumer.stop()


async def produce_raw(s: Settings, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Write (key, value) records to the raw topic, acks=all."""
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(s.topic(topics.RAW), key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()
