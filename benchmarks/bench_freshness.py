"""End-to-end freshness: a paced stub through the collector, the worker and both sinks.

For each `--rate` (events per wall second), with a topic prefix, warehouse and indices of its
own, it starts a real collector, `--workers` stream worker processes, the search sink and the
warehouse sink, then runs the stub paced (`--speed 1`) against the collector. The stub's
event rate grows while its sessions build up (a session lasts minutes): events received in
the first `--ramp` seconds are not followed, the next `--seconds` are the measured window,
and its received rate is printed so that "sustained" can be checked. Every `--sample`-th
event of the window read back from the raw topic is followed:

- searchable: the first time an `ids` query on the events alias finds it, minus its
  `received_at` (stamped by the collector);
- warehoused: the first time a read-only DuckDB connection over the warehouse finds it, minus
  the same receipt time;
- the worker's consumer lag (raw messages not yet counted by its validator), sampled once a
  second.

    .venv/bin/python -m benchmarks.bench_freshness --rate 5000 --rate 1500 --seconds 60
    .venv/bin/python -m benchmarks.bench_freshness --rate 5000 --workers 3 --partitions 6

Every run has its own topic prefix, collector port, data and warehouse directories and index
prefix (all deleted at the end), and the services' Prometheus exporters are off, so it never
touches the live demo or others' tests.

Needs the local stack (`streamwatch infra up`). Pollers add load of their own (one search a
half second, one DuckDB query a second): the figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from benchmarks.proc_cpu import CpuMeter
from benchmarks.run_topics import delete_run_topics_sync
from indexers import naming
from indexers.search_factory import make_backend
from indexers.warehouse_reader import connect_readonly
from streams.progress import progress
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

GRACE_S = 120.0  # after the measured window: how long its samples may still arrive
PROGRESS_EVERY_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    env.update(
        {
            "STREAMWATCH_TOPIC_PREFIX": s.topic_prefix,
            "STREAMWATCH_DATA_DIR": str(s.data_dir),
            "STREAMWATCH_WAREHOUSE_DIR": str(s.warehouse_dir),
            "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "STREAMWATCH_SEARCH_URL": s.search_endpoint,
            "STREAMWATCH_COLLECTOR_PORT": str(s.collector_port),
            "STREAMWATCH_KAFKA_PARTITIONS": str(s.kafka_partitions),
            "STREAMWATCH_WAREHOUSE_FLUSH_INTERVAL_S": str(s.warehouse_flush_interval_s),
            # The exporters' ports (9464-9470) belong to the live demo: exporters off.
            "STREAMWATCH_METRICS_PORT": "0",
        }
    )
    return env


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Samples:
    """Followed events: receipt time, and when each became searchable / warehoused."""

    received: dict[str, float] = field(default_factory=dict)
    searchable: dict[str, float] = field(default_factory=dict)
    warehoused: dict[str, float] = field(default_factory=dict)
    forwarded: dict[str, float] = field(default_factory=dict)  # on the events topic (worker out)
    lag: list[int] = field(default_factory=list)
    measure_from: float = 0.0  # append time (epoch s) from which events are followed
    measure_to: float = float("inf")  # and until which (the end of the measured window)
    raw_count: int = 0  # events received in the measured window
    raw_first: float = 0.0
    raw_last: float = 0.0
    lag_at: list[float] = field(default_factory=list)
    lag_now: int | None = None  # the latest sample, ramp included
    cpu: CpuMeter | None = None  # every process of the run, marked at the window's ends

    def pending(self, seen: dict[str, float]) -> list[str]:
        """Followed events not found yet in a store, among those already on the events topic.

        The sinks read the events topic, so an event not on it cannot be in a store yet;
        asking for the oldest pending ids instead (as this benchmark did) kept asking for
        events still queued in a lagging worker partition while those of other partitions
        waited behind them, and charged that wait to the sinks.
        """
        return [e for e in list(self.forwarded) if e not in seen]

    def unfound(self, seen: dict[str, float]) -> int:
        """Followed events not found yet in that store (forwarded or not)."""
        return sum(1 for e in self.received if e not in seen)

    def delays(self, seen: dict[str, float]) -> list[float]:
        return [seen[e] - t for e, t in self.received.items() if e in seen]


async def _reader(s: Settings, topic: str, group: str) -> AIOKafkaConsumer:
    """A started consumer of `topic` from its start, in a group of its own."""
    consumer = AIOKafkaConsumer(
        s.topic(topic),
        bootstrap_servers=s.bootstrap_servers,
        group_id=f"{group}-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    return consumer


async def _follow_raw(s: Settings, every: int, out: Samples, stop: asyncio.Event) -> None:
    consumer = await _reader(s, topics.RAW, "bench-fresh")
    n = 0
    try:
        while not stop.is_set():
            for msgs in (await consumer.getmany(timeout_ms=200, max_records=5_000)).values():
                for m in msgs:
                    # Counted by the time Kafka appended it (the collector's produce, a few
                    # ms after receipt): parsing every event here took a fifth of a core
                    # from the pipeline it measures. Followed events are parsed, and their
                    # delays run from the receipt time the collector stamped.
                    appended = m.timestamp / 1000
                    if not out.measure_from <= appended < out.measure_to:
                        continue  # the stub's ramp-up (not the sustained rate), or after
                    n += 1
                    out.raw_count = n
                    out.raw_first = out.raw_first or appended
                    out.raw_last = max(out.raw_last, appended)
                    if n % every == 0:
                        d = orjson.loads(m.value)
                        received = datetime.fromisoformat(d["received_at"]).timestamp()
                        out.received[d["event_id"]] = received
    finally:
        await consumer.stop()


async def _follow_events(s: Settings, out: Samples, stop: asyncio.Event) -> None:
    """When the worker's output of each followed event reached the events topic (its Kafka
    timestamp): splits each delay into the worker's share and the sinks' share."""
    consumer = await _reader(s, topics.EVENTS, "bench-fresh-ev")
    try:
        while not stop.is_set():
            for msgs in (await consumer.getmany(timeout_ms=200, max_records=5_000)).values():
                for m in msgs:
                    # A cheap look for the id before parsing: most events are not followed.
                    value = m.value or b""
                    start = value.find(b'"event_id":"') + 12
                    end = value.find(b'"', start) if start >= 12 else -1
                    eid = value[start:end].decode() if end > start else ""
                    if eid in out.received:
                        out.forwarded.setdefault(eid, m.timestamp / 1000)
    finally:
        await consumer.stop()


async def _poll_search(s: Settings, out: Samples, stop: asyncio.Event) -> None:
    backend = make_backend(s)
    alias = naming.events_alias(s)
    try:
        while not stop.is_set():
            ids = out.pending(out.searchable)[:2_000]
            if ids:
                try:
                    body = {"query": {"ids": {"values": ids}}, "_source": False, "size": len(ids)}
                    res = await asyncio.to_thread(backend.search, alias, body)
                    now = time.time()
                    for hit in res.get("hits", {}).get("hits", []):
                        out.searchable.setdefault(hit["_id"], now)
                except Exception:
                    pass
            await asyncio.sleep(0.5)
    finally:
        backend.close()


async def _poll_warehouse(s: Settings, out: Samples, stop: asyncio.Event) -> None:
    def look(ids: list[str]) -> list[str]:
        con = connect_readonly(s, threads=1)
        try:
            rows = con.execute(
                "SELECT CAST(event_id AS VARCHAR) FROM events WHERE CAST(event_id AS VARCHAR) "
                "IN (SELECT unnest(?))",
                [ids],
            ).fetchall()
            return [r[0] for r in rows]
        except Exception:
            return []
        finally:
            con.close()

    while not stop.is_set():
        ids = out.pending(out.warehoused)[:2_000]
        if ids:
            # The views glob the Parquet files as the query starts, so a row found was in
            # the warehouse by then: stamp the start, not the end of a query over many files.
            now = time.time()
            found = await asyncio.to_thread(look, ids)
            for eid in found:
                out.warehoused.setdefault(eid, now)
        await asyncio.sleep(1.0)


async def _poll_lag(s: Settings, out: Samples, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            p = await progress(s, detector=False)
            out.lag_now = max(0, p.raw_end - p.raw_counted)
            if time.time() >= out.measure_from:
                out.lag.append(out.lag_now)
        except Exception:
            pass
        await asyncio.sleep(1.0)


async def _report(out: Samples, started: float, stop: asyncio.Event) -> None:
    """A line every `PROGRESS_EVERY_S`: a run cut short (by a timeout, a full disk) still
    shows how far it got and whether the worker kept up."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)
        now = time.time()
        phase = "ramp" if now < out.measure_from else "window" if now < out.measure_to else "after"
        lag = out.lag_now
        search = out.delays(out.searchable)
        print(
            f"  [{now - started:5.0f} s, {phase}] received {out.raw_count:,}"
            f" followed {len(out.received)} forwarded {len(out.forwarded)}"
            f" searchable {len(search)} (p99 so far {_pct(search, 0.99):.2f} s)"
            f" warehoused {len(out.warehoused)} worker lag {lag if lag is not None else '-'}",
            flush=True,
        )


async def _mark_cpu(_s: Settings, out: Samples, stop: asyncio.Event) -> None:
    """Mark every process's CPU time as the measured window starts and as it ends."""
    if out.cpu is None:
        return
    for mark, at in ((out.cpu.start, out.measure_from), (out.cpu.stop, out.measure_to)):
        while time.time() < at and not stop.is_set():
            await asyncio.sleep(min(0.2, max(0.0, at - time.time())))
        if stop.is_set():
            return
        mark()


def _wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")


async def _measure(
    s: Settings,
    stub: subprocess.Popen[bytes],
    every: int,
    measure_from: float,
    measure_to: float,
    cpu: CpuMeter,
) -> Samples:
    out = Samples(measure_from=measure_from, measure_to=measure_to, cpu=cpu)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(f(s, *a))
        for f, a in (
            (_follow_raw, (every, out, stop)),
            (_follow_events, (out, stop)),
            (_poll_search, (out, stop)),
            (_poll_warehouse, (out, stop)),
            (_poll_lag, (out, stop)),
            (_mark_cpu, (out, stop)),
        )
    ]
    tasks.append(asyncio.create_task(_report(out, time.time(), stop)))
    # A stub that cannot keep its pace on this machine runs past its duration: the window
    # still ends on time, and what was received in it is followed to the stores.
    while stub.poll() is None and time.time() < measure_to + 5.0:
        await asyncio.sleep(1.0)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and (
        out.unfound(out.searchable) or out.unfound(out.warehoused)
    ):
        await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    return out


@dataclass(frozen=True)
class RunShape:
    """How one run is set up."""

    rate: int
    seconds: float
    every: int
    workers: int
    partitions: int
    warehouse_flush_s: float
    warmup_s: float
    ramp_s: float
    stub_rate: int


def run_at(base: Settings, shape: RunShape) -> None:
    """One paced run at `shape.rate` events/s; prints its freshness figures."""
    rate, seconds, every = shape.rate, shape.seconds, shape.every
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-fresh-{uuid.uuid4().hex[:8]}.",
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-fresh-")),
            "warehouse_dir": Path(tempfile.mkdtemp(prefix="streamwatch-fresh-wh-")),
            "collector_port": _free_port(),
            "kafka_partitions": shape.partitions,
            "warehouse_flush_interval_s": shape.warehouse_flush_s,
        }
    )
    asyncio.run(create_topics(s))
    env = _env(s)
    logs = s.data_dir

    def spawn(tag: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            stdout=(logs / f"{tag}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    tags = ["collector", *(f"worker {i}" for i in range(shape.workers))]
    tags += ["search sink", "warehouse sink", "stub"]
    procs = [
        spawn("collector", "streamwatch.cli", "collector", "--port", str(s.collector_port)),
        *(
            spawn(f"worker{i}", "streams.worker", "--index", str(i), "--loglevel", "WARNING")
            for i in range(shape.workers)
        ),
        spawn("search", "streamwatch.cli", "sink", "search"),
        spawn("warehouse", "streamwatch.cli", "sink", "warehouse"),
    ]
    try:
        _wait_http(f"http://127.0.0.1:{s.collector_port}/healthz")
        time.sleep(10.0 + 5.0 * shape.workers)  # workers join their group; sinks make indices
        t0 = time.time()
        stub = spawn(
            "stub",
            "streamwatch.cli", "stub", "run", "--target", "http",
            "--collector-url", f"http://127.0.0.1:{s.collector_port}",
            "--rate", str(shape.stub_rate), "--speed", "1",
            "--duration", str(shape.ramp_s + seconds),
            "--warmup", str(shape.warmup_s), "--no-drain", "--start", "now", "--members", "50000",
        )  # fmt: skip
        procs.append(stub)
        cpu = CpuMeter(
            {**_server_pids(s), **{tag: p.pid for tag, p in zip(tags, procs, strict=True)}},
            alone=frozenset({"benchmark (pollers)"}),
        )
        samples = asyncio.run(
            _measure(s, stub, every, t0 + shape.ramp_s, t0 + shape.ramp_s + seconds, cpu)
        )
        wall = time.time() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        _cleanup(s)
    search = [
        samples.searchable[e] - t for e, t in samples.received.items() if e in samples.searchable
    ]
    ware = [
        samples.warehoused[e] - t for e, t in samples.received.items() if e in samples.warehoused
    ]
    n = len(samples.received)
    sent = samples.raw_count / max(1e-9, samples.raw_last - samples.raw_first)
    print(
        f"freshness rate={rate} ev/s wall={wall:.0f} s followed={n} (1 in {every})"
        f" load1={os.getloadavg()[0]:.2f} (machine shared with other work)"
    )
    print(
        f"  measured window: {samples.raw_count:,} events received at {sent:,.0f} ev/s"
        f" after a {shape.ramp_s:g} s ramp;"
        f" {shape.workers} worker process(es), {shape.partitions} partitions,"
        f" warehouse flush every {shape.warehouse_flush_s:g} s"
    )
    print(
        f"  searchable - receipt   p50 {_pct(search, 0.5):7.2f} s  p99 {_pct(search, 0.99):7.2f} s"
        f"  found {len(search)}/{n}"
    )
    print(
        f"  warehoused - receipt   p50 {_pct(ware, 0.5):7.2f} s  p99 {_pct(ware, 0.99):7.2f} s"
        f"  found {len(ware)}/{n}"
    )
    fwd = samples.forwarded
    worker = [fwd[e] - t for e, t in samples.received.items() if e in fwd]
    to_search = [samples.searchable[e] - fwd[e] for e in fwd if e in samples.searchable]
    to_ware = [samples.warehoused[e] - fwd[e] for e in fwd if e in samples.warehoused]
    print(
        f"  of which: worker (receipt -> events topic) p50 {_pct(worker, 0.5):7.2f} s"
        f"  p99 {_pct(worker, 0.99):7.2f} s  found {len(worker)}/{n}"
    )
    print(
        f"  search sink (events topic -> searchable)  p50 {_pct(to_search, 0.5):7.2f} s"
        f"  p99 {_pct(to_search, 0.99):7.2f} s"
    )
    print(
        f"  warehouse sink (events topic -> warehoused) p50 {_pct(to_ware, 0.5):7.2f} s"
        f"  p99 {_pct(to_ware, 0.99):7.2f} s"
    )
    if samples.lag:
        print(
            f"  worker lag (messages)  median {statistics.median(samples.lag):,.0f}"
            f"  max {max(samples.lag):,}  last {samples.lag[-1]:,}"
        )
    if samples.cpu is not None and samples.cpu.used and samples.raw_count:
        _print_cpu(samples.cpu.used, samples.raw_count, seconds)


def _print_cpu(used: dict[str, float], events: int, seconds: float) -> None:
    """CPU per event received in the window, per process, and what the cores carry at that
    cost: the rate ceiling of this pipeline on this machine, whatever the pacing."""
    total = sum(used.values())
    cores = os.cpu_count() or 1
    print(f"  CPU in the measured window ({cores} cores; per event received in it):")
    for name, cpu_s in sorted(used.items(), key=lambda kv: -kv[1]):
        print(
            f"    {name:22s} {cpu_s:7.1f} s  {cpu_s / events * 1e6:7.0f} us/event"
            f"  {cpu_s / seconds:5.2f} cores"
        )
    per_event = total / events
    print(
        f"    {'all':22s} {total:7.1f} s  {per_event * 1e6:7.0f} us/event"
        f"  {total / seconds:5.2f} cores -> at most {cores / per_event:,.0f} events/s"
        f" on {cores} cores at this cost"
    )


def _server_pids(s: Settings) -> dict[str, int]:
    """The local servers' processes (the run uses Kafka and the search engine; the others
    run alongside and take their share of the cores too)."""
    from infra.elasticsearch_server import ElasticsearchServer
    from infra.stack import components

    pids = {"benchmark (pollers)": os.getpid()}
    servers = [*components(s)]
    if s.search_backend != "elasticsearch":
        servers.append(ElasticsearchServer(s))  # the tests' second engine, when it runs
    for server in servers:
        pid = server.status().pid
        if pid is not None:
            pids[server.name] = pid
    return pids


def _cleanup(s: Settings) -> None:
    """Delete the run's indices, topics and directories."""

    from indexers.search_setup import drop_all

    backend = make_backend(s)
    try:
        drop_all(backend, s)
    finally:
        backend.close()

    delete_run_topics_sync(s)
    for path in (s.data_dir, s.warehouse_dir):
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, action="append", help="events/s (repeatable)")
    parser.add_argument("--seconds", type=float, default=60.0, help="paced seconds per run")
    parser.add_argument("--sample", type=int, default=50, help="follow every N-th event")
    parser.add_argument("--workers", type=int, default=1, help="stream worker processes")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every topic")
    parser.add_argument("--warehouse-flush-s", type=float, default=1.0,
                        help="longest the warehouse sink holds rows (its setting)")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="stub sessions started early (sent unpaced at the start)")  # fmt: skip
    parser.add_argument("--stub-rate-factor", type=float, default=10.0,
                        help="the stub's --rate is its steady-state rate, reached only after "
                             "its sessions (tens of minutes each) build up; at 4-5 min it sends "
                             "about a tenth of it, so the stub is asked for rate x this factor; "
                             "the rate actually received is printed")  # fmt: skip
    parser.add_argument("--ramp", type=float, default=240.0,
                        help="seconds until the stub's sessions reach their steady count: "
                             "events received before are not followed")  # fmt: skip
    args = parser.parse_args()
    for rate in args.rate or [5_000]:
        shape = RunShape(rate, args.seconds, args.sample, args.workers, args.partitions,
                         args.warehouse_flush_s, args.warmup, args.ramp,
                         int(rate * args.stub_rate_factor))  # fmt: skip
        run_at(Settings(), shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
