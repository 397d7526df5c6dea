"""The control-plane stage against the real local Kafka: spans in, service minutes and a
service incident out, a bad span dead-lettered, offsets committed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from contract.spans import ServiceMinute
from platform_stub.config import PlayerConfig, StubConfig
from platform_stub.generator import RunOptions, seed_epoch_ms
from platform_stub.runner import run_async
from platform_stub.sinks import KafkaSink, NullSink
from streams.records import Incident
from streams.service_worker import ServiceWorker
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from tests.streams_helpers import read_all


@pytest.fixture
def session_settings(settings: Settings) -> Settings:
    """The session's settings (the test derives its own topic prefix from them)."""
    return settings


async def test_spans_become_service_minutes_and_a_named_incident(
    session_settings: Settings, tmp_path: Path
) -> None:
    # Topics of its own: other tests of the session produce spans and incidents too.
    settings = session_settings.model_copy(
        update={"topic_prefix": f"{session_settings.topic_prefix}cp{uuid.uuid4().hex[:6]}."}
    )
    await create_topics(settings)
    options = RunOptions(
        seed=2, members=4_000, rate=200.0, duration_s=540.0, scenario="license_5xx_region",
        start_ms=seed_epoch_ms(2) + 6 * 3600_000, warmup_s=180.0, drain=False,
        config=StubConfig(
            fault_start_frac=0.3, fault_end_frac=0.6, player=PlayerConfig(tick_ms=10_000)
        ),
    )  # fmt: skip
    summary = await run_async(
        options,
        lambda _d, delivered: NullSink(delivered),
        tmp_path,
        target="null",
        progress=None,
        span_sink_factory=lambda _d, delivered: KafkaSink(
            settings.bootstrap_servers, settings.topic(topics.SPANS), delivered
        ),
    )
    emitted = summary.extra["spans"]
    assert isinstance(emitted, int) and summary.extra["spans_acknowledged"] == emitted
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topics.SPANS), b'{"trace_id": "nope"}')
    finally:
        await producer.stop()

    worker = ServiceWorker(settings)
    await worker.start()
    try:
        idle = 0
        while idle < 3:
            taken = await worker.step(timeout_ms=2_000, idle_watermark_ms=1 << 50)
            idle = idle + 1 if taken == 0 else 0
    finally:
        await worker.stop()
    assert worker.spans == emitted + 1 and worker.invalid == 1

    rows = [
        ServiceMinute.model_validate_json(r.value)
        for r in await read_all(settings, topics.SERVICE_MINUTE)
    ]
    latest: dict[tuple[object, ...], ServiceMinute] = {}
    for row in rows:
        latest[(row.minute, row.service, row.endpoint, row.region)] = row  # revisions: full counts
    assert sum(r.requests for r in latest.values()) == emitted
    incidents = [
        Incident.model_validate_json(r.value) for r in await read_all(settings, topics.INCIDENTS)
    ]
    truth = json.loads((tmp_path / "scenario.json").read_text())
    named = {(i.status, i.service, i.region) for i in incidents}
    where = (truth["service"], truth["region"])
    assert named == {("open", *where), ("resolved", *where)}, (named, where)
    dead = [json.loads(r.value) for r in await read_all(settings, topics.DEADLETTER)]
    assert [d["reason"] for d in dead if d["source"] == "streams.services"] == ["span_invalid"]
