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

`--players` measures what real players send instead: v2 events 1 and 10 per request and the
CMCD v2 reports captured from hls.js and dash.js (tests/data/cmcd), 1 and 10 per body, as
requests/s and events/s of one collector process against a bare aiohttp endpoint
(`benchmarks/bare_endpoint.py`) producing the same request lines to Kafka, in the same run.
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.kafka_reference import producer_performance
from ingest.producer import EventProducer, Record
from ingest.validation import BatchResult, IngestLimits, validate_batch
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from testkit.sample_events import sample_events


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


# --- what players really send: small requests, v2 events and CMCD reports --------------------

_CMCD_CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "cmcd"
_BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Workload:
    """Request bodies of one kind, and how to post them."""

    name: str
    path: str
    content_type: str
    bodies: list[bytes]


def player_workloads(requests: int) -> list[Workload]:
    """v2 player events 1 and 10 per request, and captured CMCD reports 1 and 10 per body."""
    out = []
    for per_request in (1, 10):
        bodies = []
        for _ in range(requests):
            events = sample_events(per_request, sessions=per_request)
            for e in events:
                del e["network"]  # a player does not know it: the collector derives it
                e["schema_version"] = 2
                e["device"] = {"device_id": e["device"]["device_id"]}
            bodies.append(b"\n".join(json.dumps(e).encode() for e in events))
        out.append(
            Workload(
                f"v2 events, {per_request}/request", "/v1/events", "application/x-ndjson", bodies
            )
        )
    reports = [
        line
        for capture in sorted(_CMCD_CAPTURES.glob("*.txt"))
        for line in capture.read_text().splitlines()
        if line.strip()
    ]
    if not reports:
        raise SystemExit(f"no captured CMCD bodies under {_CMCD_CAPTURES}")
    for per_request in (1, 10):
        bodies = []
        for i in range(requests):
            # A session per body, so no report is a duplicate of an earlier one, numbered
            # from 0 as a player numbers a new session's reports (a gap would make the
            # collector wait for the missing ones).
            sid = f'sid="bench-{uuid.uuid4().hex[:12]}"'
            lines = [
                _in_session(reports[(i * per_request + k) % len(reports)], sid, k)
                for k in range(per_request)
            ]
            bodies.append(("\n".join(lines) + "\n").encode())
        out.append(
            Workload(
                f"CMCD v2, {per_request} report(s)/body", "/v1/cmcd", "application/cmcd", bodies
            )
        )
    return out


def _in_session(report: str, sid: str, sn: int) -> str:
    parts = [p for p in report.split(",") if not p.startswith(("sid=", "sn="))]
    return ",".join([*parts, sid, f"sn={sn}"])


@dataclass(frozen=True)
class RequestRate:
    """Requests and events answered 200, over a wall-clock span."""

    requests: int
    events: int
    seconds: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def __add__(self, other: RequestRate) -> RequestRate:
        return RequestRate(
            self.requests + other.requests, self.events + other.events, self.seconds + other.seconds
        )

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


async def post_all(url: str, workload: Workload, concurrency: int) -> RequestRate:
    """Post every body of `workload` from `concurrency` clients; count what was answered 200."""
    headers = {"Content-Type": workload.content_type, "User-Agent": _BROWSER_UA}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in workload.bodies:
        queue.put_nowait(body)
    done = events = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal done, events
        while not queue.empty():
            body = queue.get_nowait()
            async with http.post(f"{url}{workload.path}", data=body, headers=headers) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}: {answer}")
                done += 1
                events += int(answer.get("events", answer.get("accepted", 0)))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return RequestRate(done, events, seconds)


def start_bare(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
    }
    cmd = [sys.executable, "-m", "benchmarks.bare_endpoint", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


async def players_async(args: argparse.Namespace) -> None:
    settings = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
    await create_topics(settings)
    workloads = player_workloads(args.requests)
    print(
        f"{args.requests} requests per workload, concurrency={args.concurrency}, one server "
        f"process each, topic prefix {settings.topic_prefix}"
    )
    results: list[tuple[Workload, RequestRate, RequestRate]] = []
    servers = (("collector", start_collector), ("bare", start_bare))
    procs = {}
    try:
        for name, start in servers:
            port = free_port()
            procs[name] = (start(settings, port), f"http://127.0.0.1:{port}")
            await wait_healthy(procs[name][1], procs[name][0])
        for workload in workloads:
            # Warm both up (connections, partition leaders), then measure each half of the
            # bodies twice in alternating order, so both meet the same machine and broker.
            half = len(workload.bodies) // 2
            first = replace(workload, bodies=workload.bodies[:half])
            second = replace(workload, bodies=workload.bodies[half:])
            warm = replace(workload, bodies=player_workloads(50)[workloads.index(workload)].bodies)
            for name in ("collector", "bare"):
                await post_all(procs[name][1], warm, args.concurrency)
            ours = await post_all(procs["collector"][1], first, args.concurrency)
            bare = await post_all(procs["bare"][1], first, args.concurrency)
            bare = bare + await post_all(procs["bare"][1], second, args.concurrency)
            ours = ours + await post_all(procs["collector"][1], second, args.concurrency)
            results.append((workload, ours, bare))
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
    if not args.keep_topics:
        await delete_topics(settings)
    print(
        f"  {'workload':32s} {'collector req/s':>15s} {'events/s':>9s} "
        f"{'bare req/s':>11s} {'lines/s':>9s} {'ratio':>6s}"
    )
    for workload, ours, bare in results:
        print(
            f"  {workload.name:32s} {ours.requests_per_s:15,.0f} {ours.events_per_s:9,.0f} "
            f"{bare.requests_per_s:11,.0f} {bare.events_per_s:9,.0f} "
            f"{ours.requests_per_s / bare.requests_per_s:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--players",
        action="store_true",
        help="what players send: v2 events 1 and 10 per request and CMCD v2 bodies, against "
        "a bare aiohttp endpoint producing the same bytes to Kafka",
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per workload")
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
    args = parser.parse_args()
    asyncio.run(players_async(args) if args.players else main_async(args))


if __name__ == "__main__":
    main()
