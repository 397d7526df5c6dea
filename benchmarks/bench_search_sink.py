"""Search sink throughput vs a raw `_bulk` of the same documents, and member lookup latency.

    .venv/bin/python -m benchmarks.bench_search_sink --events 200000
    .venv/bin/python -m benchmarks.bench_search_sink --events 5000000 --lookup-only
    .venv/bin/python -m benchmarks.bench_search_sink --throughput-only

Same run, same machine, same client (opensearch-py), same chunk size:

1. reference: the documents the sink would write, encoded with orjson and sent with
   `client.bulk` in sequential chunks into their own indices (no Kafka, no decoding), once
   before and once after the sink (the load of a shared machine drifts): docs over both;
2. ours: the events produced to a fresh events topic, then `run_search_sink` from Kafka, timed
   from its first commit until it has committed every record (so every `_bulk` was answered,
   the raw side's end point; that all are searchable is checked after the clock stops);
   docs/s and ours / raw;
3. member lookup (one member's errors, last 30 days, newest first) p50/p99 over the events
   loaded with parallel raw bulks spread over 30 days of daily indices (`--events` of them).

Indices are created under a unique prefix and deleted at the end (keep with --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.run_topics import delete_run_topics_sync
from contract.columns import parse_timestamp
from indexers import naming, search_queries
from indexers.documents import flatten_event
from indexers.opensearch_backend import OpenSearchBackend
from indexers.search_setup import drop_all, ensure_search_ready
from indexers.services import run_search_sink
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from testkit.event_json import events


def _ndjson(settings: Settings, docs: list[dict[str, Any]]) -> bytes:
    lines: list[bytes] = []
    for doc in docs:
        day = parse_timestamp(doc["event_time"])
        assert day is not None
        meta = {
            "create": {"_index": naming.events_index(settings, day.date()), "_id": doc["event_id"]}
        }
        lines.append(orjson.dumps(meta))
        lines.append(orjson.dumps(doc))
    return b"\n".join(lines) + b"\n"


def _raw_bulk(backend: OpenSearchBackend, settings: Settings, docs: list[dict[str, Any]],
              chunk: int, workers: int = 1) -> float:  # fmt: skip
    def send(part: list[dict[str, Any]]) -> None:
        answer = backend.client.bulk(body=_ndjson(settings, part))
        assert not answer["errors"], "raw bulk had item errors"

    parts = [docs[i : i + chunk] for i in range(0, len(docs), chunk)]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(send, parts))
    return time.perf_counter() - t


async def _produce(settings: Settings, objs: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                linger_ms=20, max_batch_size=1 << 20)  # fmt: skip
    await producer.start()
    try:
        topic = settings.topic(topics.EVENTS)
        for obj in objs:
            await producer.send(topic, json.dumps(obj).encode(), key=obj["session_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _sink_until(settings: Settings, backend: OpenSearchBackend, n: int) -> float:
    """Docs per second of the sink in steady state: from its first commit until it has
    committed all `n` (every `_bulk` answered, the raw reference's end point); then checks
    every document is searchable (untimed).

    Progress is read from the group's committed offsets in Kafka: forcing engine refreshes
    while the sink indexes (as this benchmark used to) slowed the engine itself and charged
    that to the sink. Start-up (templates, the group join with its rebalance delay) is not
    throughput, so the clock starts at the first commit.
    """
    stop = asyncio.Event()
    topic = settings.topic(topics.EVENTS)
    parts = [TopicPartition(topic, p) for p in range(settings.partitions_for(topics.EVENTS))]
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=naming.consumer_group(settings, "search"),
        enable_auto_commit=False,
    )
    await reader.start()
    task = asyncio.create_task(run_search_sink(settings, stop))
    first: tuple[float, int] | None = None
    try:
        while True:
            await asyncio.sleep(0.25)
            if task.done():
                task.result()
            done = sum([await reader.committed(tp) or 0 for tp in parts])
            if first is None and done:
                first = (time.perf_counter(), done)
            if done >= n:
                break
    finally:
        await reader.stop()
    assert first is not None
    elapsed = time.perf_counter() - first[0]
    stop.set()
    await task
    alias = naming.events_alias(settings)
    backend.refresh(alias)
    if backend.count(alias) != n:
        raise RuntimeError(f"only {backend.count(alias)} of {n} documents searchable")
    return (n - first[1]) / elapsed


def _scoped(base: Settings, tag: str, **extra: Any) -> Settings:
    return base.model_copy(update={"topic_prefix": f"bench-{tag}-{uuid.uuid4().hex[:6]}.", **extra})


def _chunks(n: int, size: int, seed: int, span: timedelta) -> Iterator[list[dict[str, Any]]]:
    gen = events(n, seed=seed, members=max(1000, n // 200), span=span)
    while True:
        part = [flatten_event(e) for _, e in zip(range(size), gen, strict=False)]
        if not part:
            return
        yield part


def _throughput(
    base: Settings, backend: OpenSearchBackend, n: int, chunk: int, made: list[Settings]
) -> None:
    """Part 1 and 2: raw `_bulk` vs the search sink, same documents; prints the ratio."""
    objs = list(events(n, seed=2, members=5000))
    docs = [flatten_event(o) for o in objs]
    # The reference runs before and after the sink, into indices of its own each time: on
    # a shared machine the load moves within a minute, and one reference taken before the
    # sink swung the ratio between 0.75 and 1.15 in three runs.
    refs = [_scoped(base, "raw"), _scoped(base, "raw2")]
    ours = _scoped(base, "sink", kafka_partitions=6, sink_batch_max_records=chunk)
    made.extend([*refs, ours])
    for ref in refs:
        ensure_search_ready(backend, ref)
    before = _raw_bulk(backend, refs[0], docs, chunk)
    asyncio.run(create_topics(ours))
    asyncio.run(_produce(ours, objs))
    sink_rate = asyncio.run(_sink_until(ours, backend, n))
    after = _raw_bulk(backend, refs[1], docs, chunk)
    raw_rate = 2 * n / (before + after)
    print(f"documents: {n:,}  chunk: {chunk:,}  engine: {base.search_endpoint}")
    print(
        f"raw _bulk (same client, orjson, sequential): {raw_rate:10,.0f} docs/s "
        f"({n / before:,.0f} before the sink, {n / after:,.0f} after)"
    )
    print(f"search sink from Kafka (steady state):        {sink_rate:10,.0f} docs/s")
    print(f"ratio sink / raw bulk: {sink_rate / raw_rate:.2f}")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="documents for the lookup")
    parser.add_argument("--throughput-events", type=int, default=100_000,
                        help="documents for the sink-vs-raw comparison")  # fmt: skip
    parser.add_argument("--chunk", type=int, default=5000, help="documents per bulk request")
    parser.add_argument("--lookups", type=int, default=500)
    parser.add_argument("--lookup-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true", help="skip the lookup part")
    parser.add_argument("--keep", action="store_true", help="keep the indices")
    args = parser.parse_args()
    base = Settings()
    made: list[Settings] = []
    backend = OpenSearchBackend.from_settings(base)
    try:
        if not args.lookup_only:
            _throughput(base, backend, args.throughput_events, args.chunk, made)
        if args.throughput_only:
            return

        lookup = _scoped(base, "lookup")
        made.append(lookup)
        ensure_search_ready(backend, lookup)
        t = time.perf_counter()
        loaded = 0
        members: set[str] = set()
        for part in _chunks(args.events, 100_000, seed=3, span=timedelta(days=30)):
            _raw_bulk(backend, lookup, part, args.chunk, workers=3)
            loaded += len(part)
            members.update(d["member_id"] for d in part[:2000])
            print(f"  loaded {loaded:,} in {time.perf_counter() - t:.0f}s", flush=True)
        alias = naming.events_alias(lookup)
        backend.refresh(alias)
        assert backend.count(alias) == args.events
        rng = random.Random(4)
        choices = sorted(members)
        since = datetime.now(UTC) - timedelta(days=30)
        timings = []
        hits = 0
        for _ in range(args.lookups):
            body = search_queries.member_errors(rng.choice(choices), since)
            t0 = time.perf_counter()
            answer = backend.search(alias, body)
            timings.append((time.perf_counter() - t0) * 1000)
            hits += len(answer["hits"]["hits"])
        timings.sort()
        p50 = statistics.median(timings)
        p99 = timings[int(len(timings) * 0.99) - 1]
        print(
            f"member lookup over {args.events:,} events / 30 daily indices, "
            f"{len(choices):,} sampled members, {hits / args.lookups:.1f} errors per answer:"
        )
        print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms   ({args.lookups} lookups, client-side)")
    finally:
        if not args.keep:
            for s in made:
                drop_all(backend, s)
                delete_run_topics_sync(s)
        backend.close()


if __name__ == "__main__":
    main()
