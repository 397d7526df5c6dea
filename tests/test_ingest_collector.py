"""The collector against real Kafka: what lands where, every HTTP answer, and Kafka outages.

The collector runs in-process on a real port of 127.0.0.1 (`ingest.collector.serve`); Kafka is
the session's real broker (fixtures `settings`, `kafka_bootstrap` from tests/conftest.py), or,
for the outage test, a private broker of our own that the test stops and starts again.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from contract.deadletter import DeadLetter
from contract.events import EVENT_ADAPTER
from infra.kafka_server import KafkaServer
from ingest.collector import serve
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from testkit.sample_events import sample_event, sample_events
from tests.infra_helpers import free_port

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
# Upper bound on how long we wait for records to show up; the tests assert on content only.
CONSUME_PATIENCE_S = 60.0


@asynccontextmanager
async def collector(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """A collector on a free port and an HTTP session for it."""
    scoped = settings.model_copy(update=overrides) if overrides else settings
    async with serve(scoped) as url, aiohttp.ClientSession(base_url=url) as http:
        yield url, http


async def post(
    http: aiohttp.ClientSession, body: bytes, headers: dict[str, str] = JSON
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with http.post("/v1/events", data=body, headers=headers) as resp:
        payload = await resp.json(content_type=None)
        return resp.status, payload, resp


async def healthz(http: aiohttp.ClientSession) -> int:
    async with http.get("/healthz") as resp:
        await resp.read()
        return resp.status


async def consume(
    bootstrap: str, topic: str, want: set[str], key_of: Any
) -> dict[str, tuple[bytes | None, bytes]]:
    """Read `topic` from the start until every id in `want` was seen; id -> (key, value)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: dict[str, tuple[bytes | None, bytes]] = {}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONSUME_PATIENCE_S
        while not want <= found.keys() and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for rec in records:
                    assert rec.value is not None
                    ident = key_of(rec.value)
                    if ident in want:
                        found[ident] = (rec.key, rec.value)
    finally:
        await consumer.stop()
    return found


def event_id_of(value: bytes) -> str:
    return str(json.loads(value)["event_id"])


def marker_of(value: bytes) -> str:
    """The `marker` field planted in a rejected event, read back from its dead letter."""
    letter = DeadLetter.model_validate_json(value)
    try:
        return str(json.loads(letter.original).get("marker"))
    except (ValueError, AttributeError):
        return ""


# --- the happy and the partly bad batch ----------------------------------------------------------


async def test_partly_bad_batch_lands_valid_events_in_raw_and_bad_ones_in_deadletter(
    settings: Settings, kafka_bootstrap: str
) -> None:
    events: list[Any] = sample_events(10)
    bad = {
        2: {**sample_event("first_frame"), "payload": {"startup_ms": -1, "bitrate_kbps": 1}},
        5: {**sample_event(), "event_type": "teleport"},
        7: {"event_type": "heartbeat"},
    }
    markers = {}
    for index, event in bad.items():
        markers[index] = f"bad-{uuid.uuid4()}"
        events[index] = {**event, "marker": markers[index]}
    elements = [json.dumps(e).encode() for e in events]
    body = b"[" + b",\n".join(elements) + b"]"

    async with collector(settings) as (_, http):
        status, answer, _ = await post(http, body)
        assert await healthz(http) == 200

    assert status == 200, answer
    assert answer["accepted"] == 7
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (2, "schema_invalid"),
        (5, "unknown_event_type"),
        (7, "schema_invalid"),
    ]
    assert all(r["detail"] for r in answer["rejected"])

    good = {e["event_id"]: e for i, e in enumerate(events) if i not in bad}
    raw = await consume(kafka_bootstrap, settings.topic(topics.RAW), set(good), event_id_of)
    assert raw.keys() == good.keys()
    for event_id, (key, value) in raw.items():
        stored = EVENT_ADAPTER.validate_json(value)
        assert key == good[event_id]["session_id"].encode()
        assert stored.received_at is not None
        assert str(stored.event_id) == event_id

    dead = await consume(
        kafka_bootstrap, settings.topic(topics.DEADLETTER), set(markers.values()), marker_of
    )
    assert dead.keys() == set(markers.values())
    for index, marker in markers.items():
        letter = DeadLetter.model_validate_json(dead[marker][1])
        assert letter.source == "collector"
        assert letter.original == elements[index], "dead letter keeps the original bytes"
        expected = next(r["reason"] for r in answer["rejected"] if r["index"] == index)
        assert letter.reason == expected


async def test_gzipped_ndjson_is_accepted(settings: Settings, kafka_bootstrap: str) -> None:
    events = sample_events(25)
    body = gzip.compress(b"\n".join(json.dumps(e).encode() for e in events))
    async with collector(settings) as (_, http):
        status, answer, _ = await post(http, body, {**NDJSON, "Content-Encoding": "gzip"})
    assert (status, answer) == (200, {"accepted": 25, "rejected": []})
    ids = {e["event_id"] for e in events}
    raw = await consume(kafka_bootstrap, settings.topic(topics.RAW), ids, event_id_of)
    assert raw.keys() == ids


async def test_all_rejected_batch_is_200_with_zero_accepted(settings: Settings) -> None:
    async with collector(settings) as (_, http):
        status, answer, _ = await post(http, b'[{"a": 1}, 42]')
    assert status == 200
    assert answer["accepted"] == 0
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (0, "schema_invalid"),
        (1, "not_an_object"),
    ]


# --- whole-body refusals; the collector stays up through all of them -----------------------------


async def test_refusals_and_the_collector_stays_healthy(settings: Settings) -> None:
    limit = 64 * 1024
    async with collector(settings, max_batch_bytes=limit) as (_, http):
        # not JSON: 400 with where parsing failed
        status, answer, _ = await post(http, b'[\n  {"a": 1},\n  {"b": ]')
        assert status == 400 and answer["error"] == "invalid_json"
        assert (answer["line"], answer["column"], answer["char"]) == (3, 9, 22)
        assert "line 3 column 9" in answer["detail"]
        assert await healthz(http) == 200

        status, answer, _ = await post(http, b"<html>not json</html>", NDJSON)
        assert status == 400 and answer["error"] == "invalid_json"
        assert (answer["line"], answer["column"]) == (1, 1)

        # empty body: 400 with a clear message
        status, answer, _ = await post(http, b"")
        assert status == 400 and answer["error"] == "empty_body"
        assert "empty" in answer["detail"]
        assert await healthz(http) == 200

        # gzip bomb: 413, decompression stops at the cap
        bomb = gzip.compress(b"[" + b" " * (200 * limit) + b"]", compresslevel=9)
        assert len(bomb) < limit
        status, answer, _ = await post(http, bomb, {**JSON, "Content-Encoding": "gzip"})
        assert status == 413 and answer["error"] == "body_too_large"
        assert "decompressed" in answer["detail"]
        assert await healthz(http) == 200

        # over the limit, announced by Content-Length and streamed without one
        status, answer, _ = await post(http, b" " * (limit + 1))
        assert status == 413 and answer["error"] == "body_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" " * (limit // 4)

        async with http.post("/v1/events", data=chunks(), headers=JSON) as resp:
            assert resp.status == 413
        assert await healthz(http) == 200

        # wrong content type or encoding: 415
        status, answer, _ = await post(http, b"[]", {"Content-Type": "text/plain"})
        assert status == 415 and answer["error"] == "unsupported_media_type"
        status, answer, _ = await post(http, b"[]", {**JSON, "Content-Encoding": "br"})
        assert status == 415 and answer["error"] == "unsupported_content_encoding"

        # corrupt gzip: 400
        status, answer, _ = await post(http, b"\x1f\x8bnope", {**JSON, "Content-Encoding": "gzip"})
        assert status == 400 and answer["error"] == "invalid_gzip"

        # too many events: 413
        many = json.dumps([{}] * (settings.max_batch_events + 1)).encode()
        status, answer, _ = await post(http, many)
        assert status == 413 and answer["error"] == "too_many_events"

        # and it still takes a good batch afterwards
        status, answer, _ = await post(http, json.dumps(sample_events(3)).encode())
        assert (status, answer["accepted"]) == (200, 3)
        assert await healthz(http) == 200

        async with http.get("/metrics") as resp:
            text = await resp.text()
        assert resp.status == 200
        assert "streamwatch_collector_events_accepted_total 3.0" in text
        assert 'streamwatch_collector_batches_rejected_total{reason="body_too_large"} 3.0' in text
        assert 'streamwatch_collector_requests_total{route="/v1/events",status="415"} 2.0' in text
        assert "streamwatch_collector_produce_seconds_count 1.0" in text


async def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    # 2 at once, then one every 1000 s: the third request is refused whatever the clock does.
    async with collector(
        settings, collector_rate_limit_rps=0.001, collector_rate_limit_burst=2
    ) as (
        _,
        http,
    ):
        statuses = []
        for _ in range(3):
            status, answer, resp = await post(http, json.dumps(sample_events(1)).encode())
            statuses.append(status)
        assert statuses == [200, 200, 429]
        assert answer["error"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert await healthz(http) == 200, "health and metrics are not rate limited"


async def test_rate_limit_uses_x_forwarded_for_behind_a_trusted_proxy(settings: Settings) -> None:
    overrides = {
        "collector_rate_limit_rps": 0.001,
        "collector_rate_limit_burst": 1,
        "collector_trusted_proxy_hops": 1,
    }
    body = json.dumps(sample_events(1)).encode()
    async with collector(settings, **overrides) as (_, http):
        first, _, _ = await post(http, body, {**JSON, "X-Forwarded-For": "198.51.100.1"})
        second, _, _ = await post(http, body, {**JSON, "X-Forwarded-For": "198.51.100.2"})
        again, _, _ = await post(http, body, {**JSON, "X-Forwarded-For": "198.51.100.1"})
    assert (first, second, again) == (200, 200, 429)


# --- Kafka unreachable and Kafka restarted -------------------------------------------------------


async def test_unreachable_kafka_is_503_with_retry_after_never_200(settings: Settings) -> None:
    nowhere = settings.model_copy(
        update={
            "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
            "collector_produce_timeout_s": 2.0,
        }
    )
    async with collector(nowhere) as (_, http):
        status, answer, resp = await post(http, json.dumps(sample_events(3)).encode())
        assert status == 503 and answer["error"] == "kafka_unavailable"
        assert resp.headers["Retry-After"] == str(nowhere.collector_retry_after_s)
        # rejected events need their dead letters acknowledged too
        status, _, _ = await post(http, b'[{"a": 1}]')
        assert status == 503
        assert await healthz(http) == 503


@pytest.fixture(scope="module")
def private_kafka(
    tmp_path_factory: pytest.TempPathFactory, stack_settings: Settings
) -> Iterator[KafkaServer]:
    """A Kafka of this module's own, so stopping it disturbs nobody else's tests."""
    data_dir: Path = tmp_path_factory.mktemp("ingest-kafka")
    settings = stack_settings.model_copy(
        update={
            "data_dir": data_dir,
            "kafka_port": free_port(),
            "kafka_controller_port": free_port(),
            "kafka_bootstrap_servers": None,
            "kafka_heap": "512m",
            "kafka_partitions": 3,
            "topic_prefix": f"outage-{uuid.uuid4().hex[:6]}.",
        }
    )
    server = KafkaServer(settings)
    server.up()
    try:
        yield server
    finally:
        server.down()


async def test_kafka_outage_answers_503_and_every_200_survives_a_restart(
    private_kafka: KafkaServer,
) -> None:
    settings = private_kafka.settings.model_copy(
        update={"collector_produce_timeout_s": 3.0, "collector_retry_after_s": 2}
    )
    await create_topics(settings)
    ledger: set[str] = set()  # every event id the collector answered 200 for
    refused: set[str] = set()

    async with collector(settings) as (_, http):

        async def send_batch() -> int:
            batch = sample_events(20)
            status, answer, resp = await post(http, json.dumps(batch).encode())
            ids = {e["event_id"] for e in batch}
            if status == 200:
                assert answer == {"accepted": 20, "rejected": []}
                ledger.update(ids)
            else:
                assert status == 503, answer
                assert resp.headers["Retry-After"] == "2"
                refused.update(ids)
            return status

        stop = asyncio.Event()

        async def traffic() -> list[int]:
            statuses = []
            while not stop.is_set():
                statuses.append(await send_batch())
            return statuses

        senders = [asyncio.create_task(traffic()) for _ in range(3)]
        while len(ledger) < 300:
            await asyncio.sleep(0.05)
        # Stop Kafka while batches are in flight; whatever got a 200 must be durable.
        await asyncio.to_thread(private_kafka.down)
        assert await send_batch() == 503
        assert await healthz(http) == 503
        stop.set()
        during = [s for statuses in await asyncio.gather(*senders) for s in statuses]
        assert set(during) <= {200, 503}

        await asyncio.to_thread(private_kafka.up)
        # The same collector recovers without a restart of its own.
        # The first batches after a restart may still get 503 while the producer reconnects.
        after: list[int] = []
        for _ in range(30):
            after.append(await send_batch())
            if after[-1] == 200:
                break
            await asyncio.sleep(1)
        assert after[-1] == 200, after
        assert await healthz(http) == 200

    raw = await consume(settings.bootstrap_servers, settings.topic(topics.RAW), ledger, event_id_of)
    missing = ledger - raw.keys()
    assert not missing, f"{len(missing)} of {len(ledger)} acknowledged events are not in Kafka"


async def test_body_that_never_arrives_is_408_and_the_collector_stays_up(
    settings: Settings,
) -> None:
    async with collector(settings, collector_request_timeout_s=0.5) as (url, http):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        # Announce 1000 bytes, send 2, then go quiet: a slow-loris client.
        writer.write(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n[{"
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        assert await healthz(http) == 200
