"""The stub's control-plane spans against the real local Kafka (`telemetry.spans.v1`).

Every span the run emitted is read back once, is a valid `contract.spans.Span`, is keyed by
its trace id, and a play's spans carry the trace id of its playback session.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from contract.spans import Span, trace_id_of
from platform_stub.generator import RunOptions
from platform_stub.runner import run_async
from platform_stub.sinks import KafkaSink
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from tests.streams_helpers import read_all


@pytest.fixture
def session_settings(settings: Settings) -> Settings:
    """The session's settings (the test derives its own topic prefix from them)."""
    return settings


async def test_spans_reach_their_topic_once_keyed_by_trace(
    session_settings: Settings, tmp_path: Path
) -> None:
    # Topics of its own: other tests of the session produce spans and incidents too.
    settings = session_settings.model_copy(
        update={"topic_prefix": f"{session_settings.topic_prefix}cp{uuid.uuid4().hex[:6]}."}
    )
    await create_topics(settings)
    options = RunOptions(seed=7, members=2_000, rate=200.0, duration_s=300.0, max_events=6_000)
    summary = await run_async(
        options,
        lambda _d, delivered: KafkaSink(
            settings.bootstrap_servers, settings.topic(topics.RAW), delivered
        ),
        tmp_path,
        target="kafka",
        progress=None,
        span_sink_factory=lambda _d, delivered: KafkaSink(
            settings.bootstrap_servers, settings.topic(topics.SPANS), delivered
        ),
    )
    emitted = summary.extra["spans"]
    assert isinstance(emitted, int) and emitted > 1_000
    assert summary.extra["spans_acknowledged"] == emitted

    records = await read_all(settings, topics.SPANS)
    spans = [Span.model_validate_json(r.value) for r in records]
    assert len(spans) == emitted
    assert len({s.span_id for s in spans}) == len(spans)
    assert all(r.key == s.trace_id.encode() for r, s in zip(records, spans, strict=True))
    play_spans = [s for s in spans if s.session_id is not None]
    assert play_spans and all(s.trace_id == trace_id_of(str(s.session_id)) for s in play_spans)
    raw = await read_all(settings, topics.RAW)
    sessions = {json.loads(r.value)["session_id"] for r in raw}
    assert {s.session_id for s in play_spans} <= sessions
    services = {s.service for s in spans}
    assert services >= {"gateway", "playback", "cache", "license", "steering", "discovery"}
