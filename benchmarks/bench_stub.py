"""Platform stub throughput: generation alone and stub -> Kafka, vs Kafka's own producer.

Run against the local stack (`streamwatch infra up` first):

    .venv/bin/python -m benchmarks.bench_stub --events 300000

Measures, in one run on one machine:

- generation alone (events/s, wall and CPU): the ceiling of one stub process;
- stub -> Kafka (acks=all, idempotent, key = session id), counting only acknowledged events;
- the same with `--processes` stub processes, the shards of one world, started together once
  each is ready (generation is what limits one process, so more processes is how the stub
  scales);
- Kafka's `ProducerPerformance` (acks=all, idempotent) with records of the stub's mean size,
  before and after the stub runs (the machine's load moves within a run);

and prints the stub's Kafka rates as ratios of the mean reference. Generation runs twice, with
the control plane (every play's service calls, spans counted separately) and without it
(the player model alone, the stub before issue 15), and prints the ratio of the two event
rates with spans per play and span bytes per play. Each function returns its
rate, so other harnesses can call `bench_generation` / `bench_kafka` directly. The machine's
load average is printed too: on a shared box it moves every number.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import queue
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from platform_stub.config import StubConfig
from platform_stub.generator import RunOptions, StubRun
from platform_stub.sinks import KafkaSink
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics


@dataclass(frozen=True)
class StubRate:
    """A measured stub throughput."""

    events: int
    seconds: float
    cpu_seconds: float
    bytes: int
    spans: int = 0
    span_bytes: int = 0
    plays: int = 0

    @property
    def per_s(self) -> float:
        """Events per wall second."""
        return self.events / self.seconds

    @property
    def cpu_per_s(self) -> float:
        """Events per CPU second of this process (what the stub costs, load aside)."""
        return self.events / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def mean_bytes(self) -> int:
        """Mean event size."""
        return self.bytes // max(1, self.events)


def _options(
    events: int, rate: float, members: int, seed: int, control_plane: bool = True
) -> RunOptions:
    # A long window so `events` is reached in steady state rather than while draining.
    config = StubConfig()
    if not control_plane:
        plane = dataclasses.replace(config.control_plane, enabled=False)
        config = dataclasses.replace(config, control_plane=plane)
    return RunOptions(
        seed=seed, members=members, rate=rate, duration_s=86_400.0, max_events=events,
        config=config,
    )  # fmt: skip


def bench_generation(
    events: int = 300_000,
    rate: float = 2_000.0,
    members: int = 50_000,
    seed: int = 1,
    control_plane: bool = True,
) -> StubRate:
    """Generate `events` events (no I/O) and return the rate (spans counted apart)."""
    stub = StubRun(_options(events, rate, members, seed, control_plane))
    size = count = spans = span_bytes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in stub.batches(5_000):
        count += len(batch.lines)
        size += sum(map(len, batch.lines))
        spans += len(batch.spans)
        span_bytes += sum(map(len, batch.spans))
    return StubRate(
        count, time.perf_counter() - wall, time.process_time() - cpu, size, spans, span_bytes,
        stub.sessions_started,
    )  # fmt: skip


async def bench_kafka(
    bootstrap_servers: str,
    topic: str,
    events: int = 300_000,
    rate: float = 2_000.0,
    members: int = 50_000,
    seed: int = 1,
    batch_events: int = 5_000,
    producers: int = 1,
) -> StubRate:
    """Generate and produce `events` events to `topic`; rate counts acknowledged events."""
    stub = StubRun(_options(events, rate, members, seed))
    acked = 0
    size = 0

    def delivered(lines: list[str]) -> None:
        nonlocal acked, size
        acked += len(lines)
        size += sum(map(len, lines))

    sink = KafkaSink(bootstrap_servers, topic, delivered, linger_ms=5, producers=producers)
    await sink.start()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in stub.batches(batch_events):
            await sink.send(batch.lines, batch.keys)
        await sink.flush()
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await sink.stop()
    if acked != stub.events:
        raise RuntimeError(f"only {acked} of {stub.events} events acknowledged")
    return StubRate(acked, seconds, cpu_seconds, size)


def _one_process(
    bootstrap_servers: str,
    topic: str,
    events: int,
    rate: float,
    members: int,
    seed: int,
    shard: tuple[int, int],
    ready: Any,
    start: Any,
) -> tuple[int, int, float, float, float]:
    """One stub process of `bench_kafka_processes` (shard `shard[0]` of `shard[1]`):
    (events, bytes, t0, t1, cpu seconds)."""

    async def run() -> tuple[int, int, float, float, float]:
        options = _options(events, rate, members, seed)
        stub = StubRun(dataclasses.replace(options, shard=shard[0], shards=shard[1]))
        acked = size = 0

        def delivered(lines: list[str]) -> None:
            nonlocal acked, size
            acked += len(lines)
            size += sum(map(len, lines))

        sink = KafkaSink(bootstrap_servers, topic, delivered, linger_ms=5)
        await sink.start()
        try:
            ready.put(os.getpid())  # population built, producer connected
            await asyncio.to_thread(start.wait)  # every process set up: start together
            t0, cpu = time.time(), time.process_time()
            for batch in stub.batches(5_000):
                await sink.send(batch.lines, batch.keys)
            await sink.flush()
            t1 = time.time()
        finally:
            await sink.stop()
        if acked != stub.events:
            raise RuntimeError(f"only {acked} of {stub.events} events acknowledged")
        return acked, size, t0, t1, time.process_time() - cpu

    return asyncio.run(run())


def _wait_ready(ready: Any, futures: list[Future[Any]]) -> None:
    """Wait until every child reported ready; a child that ended early raises its error."""
    waiting = len(futures)
    while waiting:
        try:
            ready.get(timeout=1.0)
            waiting -= 1
        except queue.Empty:
            pass
        for future in futures:
            if future.done():
                future.result()  # raises the child's error
                raise RuntimeError("a stub process ended before the start")


def bench_kafka_processes(
    bootstrap_servers: str,
    topic: str,
    events: int = 300_000,
    processes: int = 2,
    rate: float = 2_000.0,
    members: int = 50_000,
    seed: int = 1,
) -> StubRate:
    """`processes` stub processes, the shards of one simulated world (`RunOptions.shards`:
    one population and fault, each process its share of the sessions), each producing
    `events / processes` events; the rate is all acknowledged events over the wall time
    from the common start to the last acknowledgement.

    Generation is the limit of one stub process (it costs more than producing), so this is
    how a stub scales on a machine with cores to spare.
    """
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    ready, start = manager.Queue(), manager.Event()
    share = events // processes
    with manager, ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        futures = [
            pool.submit(_one_process, bootstrap_servers, topic, share, rate, members, seed,
                        (i, processes), ready, start)
            for i in range(processes)
        ]  # fmt: skip
        # Start together once every child has built its population and connected (on a
        # loaded machine that takes anywhere from 3 to 20 s; a fixed wait started the clock
        # while a child was still building, and the build was counted as produce time).
        _wait_ready(ready, futures)
        start.set()
        results = [f.result() for f in futures]
    acked = sum(r[0] for r in results)
    size = sum(r[1] for r in results)
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    return StubRate(acked, wall, sum(r[4] for r in results), size)


async def _delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        names = [settings.topic(t.name) for t in topics.ALL_TOPICS]
        existing = set(await admin.list_topics())
        await admin.delete_topics([n for n in names if n in existing])
    finally:
        await admin.close()


def main() -> None:
    """Print generation and Kafka rates and the ratios against ProducerPerformance."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="stub events per sim second")
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=2, help="stub processes of part 3")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    settings = Settings(topic_prefix=f"bench-stub-{uuid.uuid4().hex[:6]}.")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    off = bench_generation(args.events, args.rate, args.members, control_plane=False)
    gen = bench_generation(args.events, args.rate, args.members)
    for label, r in (("no control plane", off), ("control plane", gen)):
        print(
            f"generation, {label:<17}{r.per_s:>9,.0f} events/s wall {r.cpu_per_s:>9,.0f} "
            f"events/s CPU  ({r.events:,} events, mean {r.mean_bytes} B)"
        )
    plays = max(1, gen.plays)
    print(
        f"control plane: events/s CPU {gen.cpu_per_s / off.cpu_per_s:.2f}x of without; "
        f"{gen.spans:,} spans besides ({gen.spans / plays:.1f} per play, "
        f"{gen.span_bytes / plays / 1000:.1f} kB per play, "
        f"{gen.span_bytes / max(1, gen.spans):.0f} B per span; "
        f"events {gen.bytes / plays / 1000:.1f} kB per play)"
    )
    asyncio.run(create_topics(settings))
    try:
        topic = settings.topic(topics.RAW)
        # The reference runs before and after the stub runs and the ratios use the mean: on
        # a shared machine the load moves within a run, and a single reference at the end
        # measured a different machine from the stub's.
        refs = [] if args.skip_reference else [_reference(settings, topic, args.events, gen)]
        kafka = asyncio.run(
            bench_kafka(settings.bootstrap_servers, topic, args.events, args.rate, args.members)
        )
        _print_rate("stub -> Kafka, 1 process", kafka)
        many = bench_kafka_processes(
            settings.bootstrap_servers, topic, args.events, args.processes, args.rate, args.members
        )
        _print_rate(f"stub -> Kafka, {args.processes} processes", many)
        if refs:
            refs.append(_reference(settings, topic, args.events, gen))
            ref = sum(refs) / len(refs)
            print(
                f"ProducerPerformance {ref:>10,.0f} records/s, mean of {refs[0]:,.0f} before "
                f"and {refs[1]:,.0f} after the stub runs ({gen.mean_bytes} B records)"
            )
            print(f"ratio 1 process / reference:  {kafka.per_s / ref:.2f}")
            print(f"ratio {args.processes} processes / reference: {many.per_s / ref:.2f}")
        print(f"load average: {os.getloadavg()[0]:.1f} at the end")
    finally:
        asyncio.run(_delete_topics(settings))


def _reference(settings: Settings, topic: str, events: int, gen: StubRate) -> float:
    """ProducerPerformance's records/s with records of the stub's mean event size."""
    from benchmarks.kafka_reference import producer_performance

    ref = producer_performance(settings, topic, events, gen.mean_bytes)
    print(f"ProducerPerformance {ref.records_per_s:>10,.0f} records/s ({ref.mb_per_s:.1f} MB/s)")
    return ref.records_per_s


def _print_rate(label: str, rate: StubRate) -> None:
    print(
        f"{label:<28} {rate.per_s:>10,.0f} events/s wall  {rate.cpu_per_s:>10,.0f} events/s CPU"
        f"  ({rate.bytes / rate.seconds / 1e6:.1f} MB/s, {rate.events:,} events)"
    )


if __name__ == "__main__":
    main()
