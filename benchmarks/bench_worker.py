"""Benchmark of the streams stage, as ratios against references measured in the same run.

1. logic: the pure pipeline (parse + sessionize + roll up + detect, `streams.replay`)
   against parsing alone (`EVENT_ADAPTER.validate_json`) over the same stub events;
2. worker: real `streams.worker` processes (`--workers N`) running the whole stage over
   the raw topic in one pass: validate, dedupe, enrich, forward, sessionize, roll up. The
   clock stops when every input event is applied and what it causes is published: every
   raw partition's committed checkpoint (written after the producer flush that made its
   forwards, summaries and rollups durable; it carries the reconciliation counters) at
   the end of its partition. References, in the same run over the same topic: Kafka's
   ConsumerPerformance and a bare aiokafka loop.

    .venv/bin/python -m benchmarks.bench_worker --events 100000 [--workers 2] [--skip-logic]

The 1-minute load average is printed with the figures: the machine is shared.

Needs the local stack for part 2 (`streamwatch infra up`). Numbers are printed with the
data size they were measured at.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.kafka_reference import consumer_performance
from benchmarks.proc_cpu import cpu_seconds
from benchmarks.run_topics import delete_run_topics_sync
from ingest.events import EVENT_ADAPTER
from platform_stub.generator import RunOptions, StubRun
from streams.progress import progress
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


def _cpu_s(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds (user + system) the worker processes used so far."""
    return sum(cpu_seconds(proc.pid, with_children=False) for proc in procs)


def bench_worker(keys: list[bytes], values: list[bytes], workers: int = 1) -> None:
    base = Settings()
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}.",
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-bench-")),
        }
    )
    asyncio.run(create_topics(s))
    try:
        _run_workers(s, keys, values, workers)
    finally:
        delete_run_topics_sync(s)  # gigabytes per run on the shared broker
        shutil.rmtree(s.data_dir, ignore_errors=True)


def _run_workers(s: Settings, keys: list[bytes], values: list[bytes], workers: int) -> None:
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
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "--index", str(i), "--loglevel", "WARNING"],
            env=env,
            stdout=(s.data_dir / f"worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    try:
        t0 = time.perf_counter()
        first: float | None = None
        cpu0 = 0.0
        counted0 = 0
        while not (now := asyncio.run(progress(s, detector=False))).done:
            if now.raw_counted and first is None:
                # The clock starts at the first committed checkpoint, so startup (group
                # join, recovery) is excluded; the events that checkpoint counts were
                # applied before it, so they are left out of the rate too.
                first = time.perf_counter()
                cpu0 = _cpu_s(procs)
                counted0 = now.raw_counted
            time.sleep(0.5 if first else 0.05)
        start = first or t0
        worker_s = time.perf_counter() - start
        cpu_s = _cpu_s(procs) - cpu0
        timed = n - counted0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    ref = kafka_ref.records_per_s
    print(
        f"worker events={n} partitions={s.partitions_for(topics.RAW)} workers={workers}"
        f" load1={os.getloadavg()[0]:.2f}"
    )
    print(f"  ConsumerPerformance      {ref:10.0f} ev/s   (Kafka's tool)")
    print(f"  bare consumer loop (ref) {n / bare_s:10.0f} ev/s")
    rate = timed / worker_s
    print(
        f"  whole stage              {rate:10.0f} ev/s   "
        f"ratio bare {rate * bare_s / n:.4f}   ratio ConsumerPerformance {rate / ref:.4f}"
        f"   ({timed:,} events timed: the first checkpoint's {counted0:,} came before the clock)"
    )
    # CPU time depends far less on what else the shared machine runs than wall time does.
    print(
        f"  worker CPU               {cpu_s / timed * 1e6:10.0f} us/event   "
        f"({timed / cpu_s:.0f} ev per CPU-second)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-logic", action="store_true", help="only the worker part")
    args = parser.parse_args()
    keys, values = stub_events(args.events)
    if not args.skip_logic:
        bench_logic(values)
    if not args.skip_kafka:
        bench_worker(keys, values, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
