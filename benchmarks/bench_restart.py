"""Stream worker restart: time to recover N open sessions, and memory per 100,000 of them.

For each N (`--sessions`, default 0, 100,000 and 1,000,000), under a topic prefix of its own:

1. the sessions changelog is filled with N open session states, each a real state (the
   first events of a stub session, applied with the worker's policy) under its own id,
   stored as the worker stores it (`committed_state.Entry`), spread over the partitions,
   with one committed checkpoint per partition;
2. one new raw event per partition is produced;
3. a real `streams.worker` process is started; the clock stops when the stage is done with
   those events (`streams.progress`): the worker has joined the group, faust has rebuilt
   the tables from the changelogs, and every partition's state was recovered
   (`QoeAgent._partition`: roll back, index) and committed again.

N = 0 is the reference in the same run (start-up, group join, one event per partition):
recovery time is the difference. Memory is the worker's resident set size (VmRSS) once
done, against N = 0.

    .venv/bin/python -m benchmarks.bench_restart [--sessions 0 100000 1000000]

Needs the local stack. The machine is shared: the 1-minute load average is printed.
The topics it makes are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from benchmarks.run_topics import delete_run_topics
from ingest.events import EVENT_ADAPTER
from platform_stub.generator import RunOptions, StubRun
from streams import sessionizer
from streams.app import app_id
from streams.committed_state import Checkpoint, Entry
from streams.config import StreamsConfig
from streams.progress import changelog, progress
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

DEADLINE_S = 1800.0


def template() -> tuple[sessionizer.SessionState, bytes]:
    """An open session mid-play (its first 20 stub events) and one raw event of the run."""
    run = StubRun(RunOptions(seed=11, members=200, rate=200, duration_s=120))
    lines = [line for b in run.batches() for line in b.lines]
    events = [EVENT_ADAPTER.validate_json(line) for line in lines]
    sid = events[0].session_id
    state = sessionizer.new_state(sid)
    policy = StreamsConfig().behind_id_dedupe().session  # as the worker keeps them
    for ev in [e for e in events if e.session_id == sid][:20]:
        if ev.event_type != "playback_end":
            sessionizer.apply(state, ev, policy)
    assert not state.closed
    return state, lines[0].encode()


async def _fill(s: Settings, n: int, state: sessionizer.SessionState) -> int:
    """Write n open sessions and the checkpoints; returns the bytes of session entries."""
    parts = s.partitions_for(topics.RAW)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(changelog(s, t), parts, 1, topic_configs={"cleanup.policy": "compact"})
                for t in ("sessions", "windows", "checkpoints")
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=50, max_batch_size=1_000_000
    )
    await producer.start()
    size = 0
    try:
        cur = state.model_dump_json().encode()
        old = state.session_id.encode()
        topic = changelog(s, "sessions")
        for i in range(n):
            sid = f"restart-{i:09d}"
            p = i % parts
            value = Entry(1, state.last_event_ms, False, cur.replace(old, sid.encode())).encode()
            size += len(value)
            await producer.send(topic, value, key=f"{p}|{sid}".encode(), partition=p)
        cp = Checkpoint(seq=1, watermark_ms=state.last_event_ms, next_scan_ms=state.last_event_ms)
        for p in range(parts):
            await producer.send(
                changelog(s, "checkpoints"),
                cp.model_dump_json().encode(),
                key=str(p).encode(),
                partition=p,
            )
        await producer.flush()
    finally:
        await producer.stop()
    return size


async def _one_event_per_partition(s: Settings, event: bytes, old_sid: str) -> None:
    parts = s.partitions_for(topics.RAW)
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    try:
        covered: set[int] = set()
        n = 0
        while len(covered) < parts:
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"restart-new-{n}"))
            n += 1
            p = (murmur2(sid.encode()) & 0x7FFFFFFF) % parts
            if p in covered:
                continue
            covered.add(p)
            value = event.replace(old_sid.encode(), sid.encode())
            await producer.send(s.topic(topics.RAW), value, key=sid.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(n: int, state: sessionizer.SessionState, event: bytes) -> tuple[float, int, int]:
    """(seconds from worker start to done, worker RSS KiB, bytes of session entries)."""
    s = Settings().model_copy(
        update={
            "topic_prefix": f"bench-restart-{uuid.uuid4().hex[:8]}.",
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-restart-")),
        }
    )
    asyncio.run(create_topics(s))
    try:
        size = asyncio.run(_fill(s, n, state))
        asyncio.run(_one_event_per_partition(s, event, state.session_id))
        env = {
            **os.environ,
            "STREAMWATCH_TOPIC_PREFIX": s.topic_prefix,
            "STREAMWATCH_DATA_DIR": str(s.data_dir),
            "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
        }
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "--loglevel", "WARNING"],
            env=env,
            stdout=(s.data_dir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            while not asyncio.run(progress(s, detector=False)).done:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited; see {s.data_dir / 'worker.log'}")
                if time.perf_counter() - t0 > DEADLINE_S:
                    raise RuntimeError("worker did not finish recovering")
                time.sleep(0.5)
            took = time.perf_counter() - t0
            rss = _rss_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        return took, rss, size
    finally:
        asyncio.run(delete_run_topics(s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    args = parser.parse_args()
    state, event = template()
    print(
        f"app id {app_id(Settings())} (prefixed per run); one open session state "
        f"= {len(state.model_dump_json())} bytes of JSON"
    )
    sizes = sorted(set([0, *args.sessions]))
    base: tuple[float, int, int] | None = None
    for n in sizes:
        took, rss, size = measure(n, state, event)
        base = base or (took, rss, size)
        line = f"open sessions {n:>9}  changelog {size / 1e6:8.1f} MB  start->done {took:7.1f} s"
        line += f"  RSS {rss / 1024:8.1f} MiB  load1={os.getloadavg()[0]:.2f}"
        if n:
            per100k = (rss - base[1]) / 1024 * 100_000 / n
            line += f"  recovery {took - base[0]:6.1f} s  memory/100k {per100k:7.1f} MiB"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
