"""End-to-end freshness: a paced stub through the collector, the worker and both sinks.

For each `--rate` (events per wall second), with a topic prefix, warehouse and indices of its
own, it starts a real collector, one `streams.worker`, the search sink and the warehouse
sink, then runs the stub paced (`--speed 1`, warmed up so it starts at full rate) against the
collector for `--seconds`. Every `--sample`-th event read back from the raw topic is followed:

- searchable: the first time an `ids` query on the events alias finds it, minus its
  `received_at` (stamped by the collector);
- warehoused: the first time a read-only DuckDB connection over the warehouse finds it, minus
  the same receipt time;
- the worker's consumer lag (raw messages not yet counted by its validator), sampled once a
  second.

    .venv/bin/python -m benchmarks.bench_freshness --rate 5000 --rate 1500 --seconds 60

Needs the local stack (`streamwatch infra up`). Pollers add load of their own (one search a
half second, one DuckDB query a second): the figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from aiokafka import AIOKafkaConsumer

from indexers import naming
from indexers.search_factory import make_backend
from indexers.warehouse_reader import connect_readonly
from streams.progress import progress
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

GRACE_S = 120.0  # after the stub stops: how long samples may still arrive


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
    lag: list[int] = field(default_factory=list)

    def pending(self, seen: dict[str, float]) -> list[str]:
        return [e for e in self.received if e not in seen]

    def delays(self, seen: dict[str, float]) -> list[float]:
        return [seen[e] - t for e, t in self.received.items() if e in seen]


async def _follow_raw(s: Settings, every: int, out: Samples, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        s.topic(topics.RAW),
        bootstrap_servers=s.bootstrap_servers,
        group_id=f"bench-fresh-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    n = 0
    try:
        while not stop.is_set():
            for msgs in (await consumer.getmany(timeout_ms=200, max_records=5_000)).values():
                for m in msgs:
                    n += 1
                    if n % every:
                        continue
                    d = json.loads(m.value)
                    out.received[d["event_id"]] = datetime.fromisoformat(
                        d["received_at"]
                    ).timestamp()
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
            found = await asyncio.to_thread(look, ids)
            now = time.time()
            for eid in found:
                out.warehoused.setdefault(eid, now)
        await asyncio.sleep(1.0)


async def _poll_lag(s: Settings, out: Samples, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            p = await progress(s)
            out.lag.append(max(0, p.raw_end - p.raw_counted))
        except Exception:
            pass
        await asyncio.sleep(1.0)


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


async def _measure(s: Settings, stub: subprocess.Popen[bytes], every: int) -> Samples:
    out = Samples()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(f(s, *a))
        for f, a in (
            (_follow_raw, (every, out, stop)),
            (_poll_search, (out, stop)),
            (_poll_warehouse, (out, stop)),
            (_poll_lag, (out, stop)),
        )
    ]
    while stub.poll() is None:
        await asyncio.sleep(1.0)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and (
        out.pending(out.searchable) or out.pending(out.warehoused)
    ):
        await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    return out


def run_at(base: Settings, rate: int, seconds: float, every: int) -> None:
    """One paced run at `rate` events/s; prints its freshness figures."""
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-fresh-{uuid.uuid4().hex[:8]}.",
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-fresh-")),
            "warehouse_dir": Path(tempfile.mkdtemp(prefix="streamwatch-fresh-wh-")),
            "collector_port": _free_port(),
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

    procs = [
        spawn("collector", "streamwatch.cli", "collector", "--port", str(s.collector_port)),
        spawn("worker", "streams.worker", "--loglevel", "WARNING"),
        spawn("search", "streamwatch.cli", "sink", "search"),
        spawn("warehouse", "streamwatch.cli", "sink", "warehouse"),
    ]
    try:
        _wait_http(f"http://127.0.0.1:{s.collector_port}/healthz")
        time.sleep(10.0)  # the worker joins its group; the sinks make their indices
        t0 = time.time()
        stub = spawn(
            "stub",
            "streamwatch.cli", "stub", "run", "--target", "http",
            "--collector-url", f"http://127.0.0.1:{s.collector_port}",
            "--rate", str(rate), "--speed", "1", "--duration", str(seconds),
            "--warmup", "120", "--no-drain", "--start", "now", "--members", "50000",
        )  # fmt: skip
        samples = asyncio.run(_measure(s, stub, every))
        wall = time.time() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    search = [
        samples.searchable[e] - t for e, t in samples.received.items() if e in samples.searchable
    ]
    ware = [
        samples.warehoused[e] - t for e, t in samples.received.items() if e in samples.warehoused
    ]
    n = len(samples.received)
    print(
        f"freshness rate={rate} ev/s wall={wall:.0f} s followed={n} (1 in {every})"
        f" load1={os.getloadavg()[0]:.2f}"
    )
    print(
        f"  searchable - receipt   p50 {_pct(search, 0.5):7.2f} s  p99 {_pct(search, 0.99):7.2f} s"
        f"  found {len(search)}/{n}"
    )
    print(
        f"  warehoused - receipt   p50 {_pct(ware, 0.5):7.2f} s  p99 {_pct(ware, 0.99):7.2f} s"
        f"  found {len(ware)}/{n}"
    )
    if samples.lag:
        print(
            f"  worker lag (messages)  median {statistics.median(samples.lag):,.0f}"
            f"  max {max(samples.lag):,}  last {samples.lag[-1]:,}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, action="append", help="events/s (repeatable)")
    parser.add_argument("--seconds", type=float, default=60.0, help="paced seconds per run")
    parser.add_argument("--sample", type=int, default=50, help="follow every N-th event")
    args = parser.parse_args()
    for rate in args.rate or [5_000]:
        run_at(Settings(), rate, args.seconds, args.sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
