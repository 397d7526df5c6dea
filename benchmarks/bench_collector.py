"""Collector throughput: events/s through HTTP -> validation -> Kafka (acks=all), vs Kafka's own.

Run against the local stack (`streamwatch infra up` first):

    .venv/bin/python -m benchmarks.bench_collector --events 100000 --batch-size 500

It starts a real collector process (`streamwatch collector`) on a free port with its own topic
prefix, posts pre-built batches from concurrent clients, and counts only events answered 200
(i.e. acknowledged by Kafka). In the same run it measures, on the same broker:

- validation alone (pure CPU, no I/O): the ceiling of one collector process;
- `EventProducer` alone (our acks=all producer without HTTP);
- Kafka's `ProducerPerformance` (acks=all, idempotent) with records of the same size,

and prints the collector's rate as a ratio of each. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.kafka_reference import producer_performance
from ingest.producer import EventProducer, Record
from ingest.samples import sample_events
from ingest.validation import BatchResult, IngestLimits, validate_batch
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics


@dataclass(frozen=True)
class Rate:
    """A measured throughput."""

    events: int
    seconds: float
    bytes: int

    @property
    def per_s(self) -> float:
        return self.events / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


def build_bodies(total: int, batch_size: int, use_gzip: bool) -> tuple[list[bytes], int]:
    """Pre-built NDJSON bodies (so the client costs little) and the raw bytes they carry."""
    bodies = []
    raw_bytes = 0
    for start in range(0, total, batch_size):
        events = sample_events(min(batch_size, total - start), sessions=50)
        body = b"\n".join(json.dumps(e, separators=(",", ":")).encode() for e in events)
        raw_bytes += len(body)
        bodies.append(gzip.compress(body, compresslevel=1) if use_gzip else body)
    return bodies, raw_bytes


def bench_validation(bodies: list[bytes], settings: Settings) -> Rate:
    limits = IngestLimits.from_settings(settings)
    started = time.perf_counter()
    events = 0
    size = 0
    for body in bodies:
        result = validate_batch(body, limits, datetime.now(UTC))
        assert isinstance(result, BatchResult) and not result.rejected
        events += len(result.accepted)
        size += len(body)
    return Rate(events, time.perf_counter() - started, size)


async def bench_producer(bodies: list[bytes], settings: Settings, concurrency: int) -> Rate:
    limits = IngestLimits.from_settings(settings)
    batches = []
    for body in bodies:
        result = validate_batch(body, limits, datetime.now(UTC))
        assert isinstance(result, BatchResult)
        batches.append([Record(a.key, a.value) for a in result.accepted])
    producer = EventProducer(settings, source="bench")
    await producer.start()
    queue: asyncio.Queue[list[Record]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            await producer.send_events(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await producer.stop()
    n = sum(len(b) for b in batches)
    return Rate(n, seconds, sum(len(r.value) for b in batches for r in b))


async def bench_http(url: str, bodies: list[bytes], use_gzip: bool, concurrency: int) -> Rate:
    headers = {"Content-Type": "application/x-ndjson"}
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0
    sent = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal accepted, sent
        while not queue.empty():
            body = queue.get_nowait()
            async with http.post(f"{url}/v1/events", data=body, headers=headers) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"collector answered {resp.status}: {answer}")
                accepted += answer["accepted"]
                sent += len(body)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Rate(accepted, seconds, sent)


def start_collector(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        # The benchmark is one client hammering on purpose.
        "STREAMWATCH_COLLECTOR_RATE_LIMIT_RPS": "1000000",
        "STREAMWATCH_COLLECTOR_RATE_LIMIT_BURST": "1000000",
    }
    cmd = [sys.executable, "-m", "streamwatch.cli", "collector", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


async def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("collector exited during start-up")
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("collector did not become healthy")


async def delete_topics(settings: Settings) -> None:
    """Remove this run's topics (they carry its unique prefix) from the shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(t.name) for t in topics.ALL_TOPICS])
    finally:
        await admin.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    await create_topics(settings)
    bodies, raw_bytes = build_bodies(args.events, args.batch_size, args.gzip)
    avg_event = raw_bytes // args.events
    print(
        f"{args.events} events in {len(bodies)} batches of {args.batch_size}, "
        f"avg event {avg_event} B, gzip={args.gzip}, concurrency={args.concurrency}, "
        f"topic prefix {settings.topic_prefix}"
    )

    validation = bench_validation(bodies, settings)
    producer = await bench_producer(bodies, settings, args.concurrency)

    port = free_port()
    proc = start_collector(settings, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc)
        http = await bench_http(url, bodies, args.gzip, args.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    reference = producer_performance(
        settings, settings.topic(topics.RAW), args.reference_records, avg_event
    )
    if not args.keep_topics:
        await delete_topics(settings)

    def row(name: str, rate: float, extra: str = "") -> None:
        print(f"  {name:38s} {rate:12,.0f} events/s  {extra}")

    print("results (same machine, same broker, same run):")
    row("validation only (1 core, no I/O)", validation.per_s)
    row("EventProducer only (acks=all)", producer.per_s)
    row("collector over HTTP (acks=all)", http.per_s, f"{http.mb_per_s:.1f} MB/s on the wire")
    row(
        "Kafka ProducerPerformance (acks=all)",
        reference.records_per_s,
        f"{reference.mb_per_s:.1f} MB/s, record {avg_event} B",
    )
    print(
        f"ratio collector / ProducerPerformance = {http.per_s / reference.records_per_s:.3f}; "
        f"collector / EventProducer = {http.per_s / producer.per_s:.3f}; "
        f"collector / validation = {http.per_s / validation.per_s:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--gzip", action="store_true", help="send gzip-compressed bodies")
    parser.add_argument(
        "--reference-records",
        type=int,
        default=200_000,
        help="records for Kafka's ProducerPerformance",
    )
    parser.add_argument(
        "--keep-topics", action="store_true", help="keep this run's topics on the broker"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
