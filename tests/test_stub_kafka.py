"""The stub against the real local Kafka: direct produce, and through the real collector.

Every event the ledger lists is read back from the raw topic exactly once, keyed by its
session id, with each session on one partition in event-time order.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from ingest.collector import EVENTS_PATH, serve
from platform_stub.eventstats import event_ms
from platform_stub.generator import RunOptions
from platform_stub.runner import run_async
from platform_stub.sinks import Delivered, HttpSink, KafkaSink
from streamwatch import topics
from streamwatch.settings import Settings


@dataclass
class ReadBack:
    """Records of the wanted event ids: how often each was seen, keys, partitions, times."""

    seen: dict[str, int]
    partitions: dict[str, set[int]]
    keys_match: bool
    times: dict[tuple[int, str], list[int]]


async def _read_back(bootstrap: str, topic: str, wanted: set[str], timeout_s: float) -> ReadBack:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: dict[str, int] = defaultdict(int)
    partitions: dict[str, set[int]] = defaultdict(set)
    times: dict[tuple[int, str], list[int]] = defaultdict(list)
    keys_match = True
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(seen) < len(wanted):
            batch = await consumer.getmany(timeout_ms=2_000, max_records=5_000)
            for tp, records in batch.items():
                for rec in records:
                    assert rec.value is not None
                    event = json.loads(rec.value)
                    event_id = event.get("event_id")
                    if event_id not in wanted:
                        continue  # other tests of this session share the raw topic
                    seen[event_id] += 1
                    session = event["session_id"]
                    partitions[session].add(tp.partition)
                    times[(tp.partition, session)].append(event_ms(event))
                    keys_match &= rec.key == session.encode()
        # Give duplicates, if any, a moment to show up.
        extra = await consumer.getmany(timeout_ms=1_000)
        for records in extra.values():
            for rec in records:
                assert rec.value is not None
                event_id = json.loads(rec.value).get("event_id")
                if event_id in wanted:
                    seen[event_id] += 1
    finally:
        await consumer.stop()
    return ReadBack(dict(seen), dict(partitions), keys_match, dict(times))


def _ledger(run_dir: Path) -> list[str]:
    return (run_dir / "ledger.txt").read_text().split()


async def test_stub_to_kafka_every_event_once_keyed_by_session(
    settings: Settings, tmp_path: Path
) -> None:
    topic = settings.topic(topics.RAW)
    options = RunOptions(seed=31, members=3_000, rate=200.0, duration_s=600.0, max_events=20_000)
    summary = await run_async(
        options,
        lambda _d, delivered: KafkaSink(settings.bootstrap_servers, topic, delivered),
        tmp_path,
        target="kafka",
        truth=True,
        progress=None,
    )
    ids = _ledger(tmp_path)
    assert summary.events == summary.delivered == len(ids) == 20_000
    assert len(set(ids)) == len(ids)

    back = await _read_back(settings.bootstrap_servers, topic, set(ids), timeout_s=120)
    assert len(back.seen) == len(ids), f"{len(ids) - len(back.seen)} events missing"
    assert set(back.seen.values()) == {1}, "idempotent producer: no duplicates"
    assert back.keys_match, "key = session id"
    assert all(len(p) == 1 for p in back.partitions.values()), "one partition per session"
    count = len({p for ps in back.partitions.values() for p in ps})
    assert count == settings.partitions_for(topics.RAW)
    for session, parts in back.partitions.items():
        expected = (murmur2(session.encode()) & 0x7FFFFFFF) % count
        assert parts == {expected}, "Kafka's default partitioner placement"
    for series in back.times.values():
        assert series == sorted(series), "a session's events arrive in event-time order"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_stub_through_the_real_collector(settings: Settings, tmp_path: Path) -> None:
    sinks: list[HttpSink] = []

    def make(_d: Path, delivered: Delivered) -> HttpSink:
        sinks.append(HttpSink(collector_url, delivered))
        return sinks[0]

    # Recent event times: nothing for the collector to clamp.
    start = int(time.time() * 1000) - 15 * 60_000
    options = RunOptions(
        seed=32, members=2_000, rate=100.0, duration_s=300.0, start_ms=start, max_events=8_000
    )
    async with serve(settings) as base_url:
        collector_url = f"{base_url}{EVENTS_PATH}"
        summary = await run_async(options, make, tmp_path, target="http", progress=None)
    ids = _ledger(tmp_path)
    assert summary.events == summary.delivered == len(ids) == 8_000
    assert sinks[0].rejected == 0

    back = await _read_back(settings.bootstrap_servers, settings.topic(topics.RAW), set(ids), 120)
    assert len(back.seen) == len(ids), f"{len(ids) - len(back.seen)} events missing"
    assert all(len(p) == 1 for p in back.partitions.values()), "one partition per session"


async def test_http_sink_honours_retry_after(tmp_path: Path) -> None:
    """A collector that answers 429 then 503 (with Retry-After) gets the batch again."""
    answers = [429, 503, 200]
    bodies: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        status = answers.pop(0)
        bodies.append(status)
        if status != 200:
            return web.json_response({"error": "busy"}, status=status, headers={"Retry-After": "0"})
        return web.json_response({"accepted": 2, "rejected": [{"index": 1, "reason": "x"}]})

    app = web.Application()
    app.router.add_post("/v1/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    delivered: list[str] = []
    sink = HttpSink(f"http://127.0.0.1:{port}/v1/events", delivered.extend)
    try:
        await sink.start()
        lines = ['{"event_id":"' + f"{i:036d}" + '"}' for i in range(3)]
        await asyncio.wait_for(sink.send(lines, ["k"] * 3), timeout=30)
        await sink.stop()
    finally:
        await runner.cleanup()
    assert bodies == [429, 503, 200]
    assert sink.retries == 2
    assert delivered == [lines[0], lines[2]], "the rejected event is not in the ledger"


def test_events_url_accepts_the_collectors_base_url() -> None:
    from ingest.endpoints import events_url

    assert events_url("http://127.0.0.1:8088") == "http://127.0.0.1:8088/v1/events"
    assert events_url("http://127.0.0.1:8088/") == "http://127.0.0.1:8088/v1/events"
    assert events_url("http://h:1/v1/events") == "http://h:1/v1/events"
    assert events_url("https://proxy/intake/v1/events") == "https://proxy/intake/v1/events"


async def test_stub_cli_with_the_collectors_base_url(
    settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    """`stub run --collector-url http://host:port` (no path) delivers; it used to get 404."""
    from streamwatch.cli import main
    from streamwatch.settings import get_settings

    monkeypatch.setenv("STREAMWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMWATCH_TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    try:
        async with serve(settings) as base_url:
            argv = ["stub", "run", "--target", "http", "--collector-url", base_url]
            argv += ["--members", "50", "--rate", "20", "--duration", "120", "--max-events", "200"]
            argv += ["--speed", "0", "--start", "now", "--run-name", "base-url"]
            code = await asyncio.to_thread(main, argv)
    finally:
        get_settings.cache_clear()
    assert code == 0
    ids = _ledger(tmp_path / "stub" / "base-url")
    assert len(ids) == 200
    back = await _read_back(settings.bootstrap_servers, settings.topic(topics.RAW), set(ids), 60)
    assert len(back.seen) == 200
