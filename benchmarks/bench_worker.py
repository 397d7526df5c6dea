"""Benchmark of the streams stage, as ratios against references measured in the same run.

1. logic: the pure pipeline (parse + sessionize + roll up + detect, `streams.replay`)
   against parsing alone (`EVENT_ADAPTER.validate_json`) over the same stub events;
2. worker: a real `streams.worker` process draining the raw topic (validate, dedupe,
   enrich, forward, plus sessionize and roll up downstream) against a bare aiokafka
   consumer loop reading the same topic.

    .venv/bin/python -m benchmarks.bench_worker --events 100000 [--skip-kafka]

Needs the local stack for part 2 (`streamwatch infra up`). Numbers are printed with the
data size they were measured at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.kafka_reference import consumer_performance
from ingest.events import EVENT_ADAPTER
from platform_stub.generator import RunOptions, StubRun
from streams.app import app_id
from streams.replay import replay
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics


def stub_events(n: int) -> tuple[list[bytes], list[bytes]]:
    """About `n` stub events (keys, values) in event-time order."""
    run = StubRun(RunOptions(seed=5, members=20_000, rate=1_000, duration_s=3_600, max_events=n))
    keys: list[bytes] = []
    values: list[bytes] = []
    for b in run.batches():
        keys += [k.encode() for k in b.keys]
        values += [v.encode() for v in b.lines]
    return keys, values


def bench_logic(values: list[bytes]) -> None:
    t0 = time.perf_counter()
    for v in values:
        EVENT_ADAPTER.validate_json(v)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = replay(values)
    logic_s = time.perf_counter() - t0
    n = len(values)
    print(f"logic  events={n} sessions={len(result.latest_summaries())}")
    print(f"  parse only (reference)   {n / parse_s:10.0f} ev/s")
    print(f"  full pipeline (replay)   {n / logic_s:10.0f} ev/s   ratio {parse_s / logic_s:.2f}")


async def _produce(s: Settings, keys: list[bytes], values: list[bytes]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20)
    await p.start()
    try:
        for k, v in zip(keys, values, strict=True):
            await p.send(s.topic(topics.RAW), key=k, value=v)
        await p.flush()
    finally:
        await p.stop()


async def _bare_consume(s: Settings, n: int) -> float:
    c = AIOKafkaConsumer(
        s.topic(topics.RAW),
        bootstrap_servers=s.bootstrap_servers,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await c.start()
    try:
        seen = 0
        t0 = time.perf_counter()
        while seen < n:
            for msgs in (await c.getmany(timeout_ms=500, max_records=5_000)).values():
                seen += len(msgs)
        return time.perf_counter() - t0
    finally:
        await c.stop()


async def _validated(s: Settings) -> int:
    name = s.topic(f"{app_id(s)[len(s.topic_prefix) :]}-validate-stats-changelog")
    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(name, p) for p in range(s.partitions_for(topics.RAW))]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        latest: dict[bytes, int] = {}
        while any([await c.position(tp) < end[tp] for tp in tps]):
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    latest[m.key] = json.loads(m.value)["raw"]
        return sum(latest.values())
    except Exception:
        return 0  # changelog not created yet
    finally:
        await c.stop()


def bench_worker(keys: list[bytes], values: list[bytes]) -> None:
    base = Settings()
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}.",
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-bench-")),
        }
    )
    asyncio.run(create_topics(s))
    asyncio.run(_produce(s, keys, values))
    n = len(values)
    bare_s = asyncio.run(_bare_consume(s, n))
    # Kafka's own consumer perf tool over the same topic, same run.
    kafka_ref = consumer_performance(s, s.topic(topics.RAW), n)
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": s.topic_prefix,
        "STREAMWATCH_DATA_DIR": str(s.data_dir),
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
    }
    log = (s.data_dir / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.worker", "--loglevel", "WARNING"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        t0 = time.perf_counter()
        first: float | None = None
        while (done := asyncio.run(_validated(s))) < n:
            if done and first is None:
                first = time.perf_counter()  # startup (group join, recovery) excluded
            time.sleep(0.5)
        worker_s = time.perf_counter() - (first or t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    print(f"worker events={n} partitions={s.partitions_for(topics.RAW)} workers=1")
    print(f"  ConsumerPerformance      {kafka_ref.records_per_s:10.0f} ev/s   (Kafka's tool)")
    print(f"  bare consumer loop (ref) {n / bare_s:10.0f} ev/s")
    print(f"  streams worker validate  {n / worker_s:10.0f} ev/s   ratio {bare_s / worker_s:.3f}")
    print(f"  ratio worker / ConsumerPerformance = {n / worker_s / kafka_ref.records_per_s:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    keys, values = stub_events(args.events)
    bench_logic(values)
    if not args.skip_kafka:
        bench_worker(keys, values)
    return 0


if __name__ == "__main__":
    sys.exit(main())
