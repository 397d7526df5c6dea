"""Helpers for the indexers' integration tests (no tests here).

Everything talks to the real Kafka and OpenSearch of the session fixtures; each test gets its
own topic prefix (so its own topics, consumer groups, indices) and its own warehouse dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from indexers import naming
from indexers.search_factory import make_backend
from indexers.search_setup import drop_all
from indexers.warehouse_reader import connect_readonly
from ops.reconcile import stop_quietly
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

REPO = Path(__file__).resolve().parents[1]


async def scoped(settings: Settings, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with a fresh topic prefix (topics created), a private warehouse, fast batching."""
    prefix = f"{settings.topic_prefix}{uuid.uuid4().hex[:6]}."
    del tmp_path  # pytest prunes old tmp dirs of *other* concurrent runs: use our own
    values: dict[str, Any] = {
        "topic_prefix": prefix,
        "warehouse_dir": private_dir("warehouse"),
        "kafka_partitions": 3,
        "sink_batch_max_records": 500,
        "sink_batch_max_wait_ms": 200,
        "warehouse_flush_max_records": 2000,
        "warehouse_flush_interval_s": 0.5,
        "sink_retry_initial_s": 0.1,
        "sink_retry_max_s": 1.0,
    }
    values.update(overrides)
    scoped_settings = settings.model_copy(update=values)
    await create_topics(scoped_settings)
    return scoped_settings


def private_dir(tag: str) -> Path:
    """A temp dir no other pytest run prunes (unlike tmp_path, which concurrent runs clean)."""
    return Path(tempfile.mkdtemp(prefix=f"streamwatch-indexers-{tag}-"))


def cleanup_search(settings: Settings) -> None:
    """Delete the indices and templates of this test's prefix."""
    backend = make_backend(settings)
    try:
        drop_all(backend, settings)
    finally:
        backend.close()


async def produce(
    settings: Settings, logical_topic: str, objects: Iterable[dict[str, Any] | bytes], key: str
) -> int:
    """Produce JSON objects (or raw bytes) with acks=all; returns how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    sent = 0
    try:
        futures = []
        for obj in objects:
            if isinstance(obj, bytes):
                value, k = obj, None
            else:
                value = json.dumps(obj, default=str).encode()
                k = str(obj.get(key, "")).encode() or None
            futures.append(await producer.send(settings.topic(logical_topic), value, key=k))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def read_topic(settings: Settings, logical_topic: str) -> list[bytes]:
    """Every message currently in a topic (reads to the end offsets, no group)."""
    name = settings.topic(logical_topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # `scoped` created the topic with this many partitions.
        parts = [TopicPartition(name, p) for p in range(settings.partitions_for(logical_topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[bytes] = []
        while True:
            positions = [await consumer.position(tp) for tp in parts]
            if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(r.value or b"" for r in records)
        return out
    finally:
        await stop_quietly(consumer)


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 120.0,
    interval_s: float = 0.3,
    what: str = "condition",
) -> None:
    """Poll `check` until true; fail after `timeout_s` (a deadline, not a speed assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval_s)


def search_ids(settings: Settings, index: str | None = None) -> list[str]:
    """All `_id`s in the events alias (refreshes first); duplicates would show up twice."""
    backend = make_backend(settings)
    try:
        target = index or naming.events_alias(settings)
        backend.refresh(target)
        ids: list[str] = []
        body: dict[str, Any] = {"size": 10000, "query": {"match_all": {}}, "_source": False,
                                "sort": [{"_doc": "asc"}]}  # fmt: skip
        while True:
            hits = backend.search(target, body)["hits"]["hits"]
            ids.extend(h["_id"] for h in hits)
            if len(hits) < 10000:
                return ids
            body["search_after"] = hits[-1]["sort"]
    finally:
        backend.close()


def search_count(settings: Settings, index: str | None = None) -> int:
    """Documents in the events alias (or `index`), after a refresh."""
    backend = make_backend(settings)
    try:
        target = index or naming.events_alias(settings)
        backend.refresh(target)
        return backend.count(target)
    finally:
        backend.close()


def warehouse_scalar(settings: Settings, sql: str) -> Any:
    """First value of `sql` over a fresh read-only warehouse connection."""
    con = connect_readonly(settings)
    try:
        row = con.execute(sql).fetchone()
        return None if row is None else row[0]
    finally:
        con.close()


def sink_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that makes a subprocess see exactly `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    fields = {
        "data_dir": settings.data_dir,
        "topic_prefix": settings.topic_prefix,
        "kafka_bootstrap_servers": settings.bootstrap_servers,
        "search_url": settings.search_endpoint,
        "search_backend": settings.search_backend,
        "warehouse_dir": settings.warehouse_dir,
        "sink_batch_max_records": settings.sink_batch_max_records,
        "sink_batch_max_wait_ms": settings.sink_batch_max_wait_ms,
        "warehouse_flush_max_records": settings.warehouse_flush_max_records,
        "warehouse_flush_interval_s": settings.warehouse_flush_interval_s,
        "sink_retry_initial_s": settings.sink_retry_initial_s,
        "sink_retry_max_s": settings.sink_retry_max_s,
        "kafka_partitions": settings.kafka_partitions,
        "metrics_port": settings.metrics_port,
        "collector_port": settings.collector_port,
    }
    env.update({f"STREAMWATCH_{k.upper()}": str(v) for k, v in fields.items() if v is not None})
    env.update(extra)
    return env


class SinkProcess:
    """`python -m streamwatch.cli sink <kind>` as a real subprocess, logging to a file."""

    def __init__(self, kind: str, env: dict[str, str], log_path: Path) -> None:
        self.kind = kind
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SinkProcess:
        """Launch the sink."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamwatch.cli", "sink", self.kind],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill9(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait (the sink finishes its flush and commit)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)

    def log(self) -> str:
        """What the sink printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class SwitchableProxy:
    """A TCP forwarder whose listening socket can be closed and reopened.

    While "down" nothing listens on its port (connections are refused, exactly as when the
    engine's process is gone); while "up" it forwards bytes to the real engine. It injects a
    network fault in front of the real OpenSearch; it never answers on the engine's behalf.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL to give the sink."""
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Start listening and forwarding."""
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the socket would keep listening.
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def event_ids(objects: Sequence[dict[str, Any]]) -> set[str]:
    """The event ids of produced event dicts."""
    return {str(o["event_id"]) for o in objects}


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


EVENTS = topics.EVENTS
