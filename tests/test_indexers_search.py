"""Search sink against real Kafka and each real search engine (OpenSearch, Elasticsearch):
correctness, rejects, retention, outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.deadletter import DeadLetter
from contract.records import Incident
from indexers import naming, search_queries
from indexers.search_factory import make_backend
from indexers.search_setup import apply_retention, ensure_search_ready
from indexers.services import run_search_sink, run_warehouse_sink
from streams.sessionizer import Sessionizer
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.event_json import events
from testkit.synthetic_sessions import normal_session
from tests.conftest import on_backend
from tests.test_indexers_support import (
    SinkProcess as SinkProcess,
)
from tests.test_indexers_support import (
    SwitchableProxy,
    cleanup_search,
    produce,
    read_topic,
    scoped,
    search_count,
    search_ids,
    sink_env,
    wait_until,
    warehouse_scalar,
)

pytestmark = pytest.mark.integration

MAPPING_ERROR = {
    "opensearch": "mapper_parsing_exception",
    "elasticsearch": "document_parsing_exception",
}


@pytest.fixture
async def s(
    settings: Settings, tmp_path: Path, search_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(on_backend(settings, search_backend, request), tmp_path)
    yield scoped_settings
    cleanup_search(scoped_settings)


async def _run(coro_fn: Any, settings: Settings) -> tuple[asyncio.Event, asyncio.Task[Any]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(coro_fn(settings, stop))


def _summaries(n: int) -> list[dict[str, Any]]:
    sessionizer = Sessionizer()
    out: list[dict[str, Any]] = []
    for i in range(n):
        for ev in normal_session(f"s-test-{i}", start_s=i * 5.0, member_id=f"m-s{i % 3}"):
            applied = sessionizer.feed(ev)
            if applied.summary is not None:
                out.append(applied.summary.model_dump(mode="json"))
    return out


def _incident(revision: int, status: str) -> dict[str, Any]:
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    return Incident(
        incident_id="inc-1",
        status=status,  # type: ignore[arg-type]
        revision=revision,
        metric="rebuffer_pct",
        dimension="oca_id",
        value="oca-07",
        started_at=t0,
        detected_at=t0 + timedelta(minutes=1),
        last_anomalous_at=t0 + timedelta(minutes=revision + 1),
        resolved_at=t0 + timedelta(minutes=9) if status == "resolved" else None,
        observed=9.5,
        expected=0.8,
        affected_sessions=120,
        severity="major",
        explanation="Rebuffering concentrated on OCA oca-07",
    ).model_dump(mode="json")


async def test_search_sink_indexes_events_sessions_incidents(s: Settings) -> None:
    produced = list(events(3000, seed=11, members=50))
    summaries = _summaries(20)
    assert len(summaries) == 20
    await produce(s, topics.EVENTS, produced, "session_id")
    await produce(s, topics.SESSIONS, summaries, "session_id")
    await produce(
        s, topics.INCIDENTS, [_incident(0, "open"), _incident(1, "resolved")], "incident_id"
    )

    stop, task = await _run(run_search_sink, s)
    try:
        await wait_until(lambda: search_count(s) == 3000, what="3000 events indexed")
        await wait_until(
            lambda: search_count(s, naming.sessions_index(s)) == 20, what="20 sessions indexed"
        )
        await wait_until(
            lambda: search_count(s, naming.incidents_index(s)) == 1, what="incident indexed"
        )
    finally:
        stop.set()
        await task

    assert sorted(search_ids(s)) == sorted(e["event_id"] for e in produced)
    backend = make_backend(s)
    try:
        # The support lookup: one member's errors, last 30 days, newest first.
        member = produced[0]["member_id"]
        truth = sorted(
            (e for e in produced if e["member_id"] == member and e["event_type"] == "error"),
            key=lambda e: (e["event_time"], e["event_id"]),
            reverse=True,
        )
        since = datetime.now(UTC) - timedelta(days=30)
        hits = backend.search(naming.events_alias(s), search_queries.member_errors(member, since))[
            "hits"
        ]["hits"]
        assert [h["_id"] for h in hits] == [e["event_id"] for e in truth] or [
            h["_source"]["event_time"] for h in hits
        ] == [e["event_time"] for e in truth]
        assert truth and all(h["_source"]["error_code"] for h in hits)
        # Words of an error message find it (text field).
        found = backend.search(
            naming.events_alias(s), search_queries.error_message_search("license")
        )["hits"]["hits"]
        assert found and all("License" in h["_source"]["error_message"] for h in found)
        # A device id finds its member (keyword field).
        device = produced[0]["device"]["device_id"]
        aggs = backend.search(
            naming.events_alias(s), search_queries.find_members("device_id", device)
        )["aggregations"]["members"]["buckets"]
        assert [b["key"] for b in aggs] == [member]
        # Latest incident revision wins; the member's incident lookup finds it.
        inc = backend.search(
            naming.incidents_index(s),
            search_queries.incidents_matching(
                {"oca_id": "oca-07", "isp": "nobody"},
                datetime(2026, 11, 23, 10, 5, tzinfo=UTC),
                datetime(2026, 11, 23, 10, 6, tzinfo=UTC),
            ),
        )["hits"]["hits"]
        assert [(h["_source"]["status"], h["_source"]["revision"]) for h in inc] == [
            ("resolved", 1)
        ]
        sessions = backend.search(
            naming.sessions_index(s),
            search_queries.member_sessions("m-s1", datetime(2020, 1, 1, tzinfo=UTC)),
        )["hits"]["hits"]
        assert {h["_source"]["member_id"] for h in sessions} == {"m-s1"} and len(sessions) == 7
    finally:
        backend.close()


async def test_rejected_document_goes_to_deadletter_rest_of_batch_indexed(s: Settings) -> None:
    good = list(events(200, seed=12))
    bad = dict(good[0], event_id="00000000-0000-4000-8000-0000000000bd")
    # `asn` is mapped `long`: the engine rejects this document (OpenSearch says
    # mapper_parsing_exception, Elasticsearch 8 document_parsing_exception).
    bad["network"] = dict(bad["network"], asn="not-a-number")
    batch = [*good[:100], bad, *good[100:]]
    await produce(s, topics.EVENTS, batch, "session_id")

    stop, task = await _run(run_search_sink, s)
    try:
        await wait_until(lambda: search_count(s) == 200, what="the 200 good events indexed")

        async def dead_lettered() -> bool:
            return len(await read_topic(s, topics.DEADLETTER)) >= 1

        await wait_until(dead_lettered, what="the rejected document dead-lettered")
    finally:
        stop.set()
        await task

    letters = [DeadLetter.model_validate_json(v) for v in await read_topic(s, topics.DEADLETTER)]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.source == "sink.search"
    assert letter.reason == f"search.{MAPPING_ERROR[s.search_backend]}"
    assert "asn" in letter.detail and "400" in letter.detail
    assert letter.event_id == bad["event_id"]
    assert json.loads(letter.original) == bad
    assert bad["event_id"] not in search_ids(s)


async def test_retention_fallback_deletes_only_expired_daily_indices(s: Settings) -> None:
    backend = make_backend(s)
    try:
        report = ensure_search_ready(backend, s)
        # Neither local engine has ISM/ILM: the sink's own retention is the fallback.
        assert report.retention in ("ism", "fallback: sink deletes daily indices")
        today = datetime.now(UTC).date()
        days = [today - timedelta(days=d) for d in (0, 29, 30, 31, 45)]
        for day in days:
            backend.create_index(naming.events_index(s, day))
        deleted = apply_retention(backend, s, today)
        left = backend.list_indices(naming.events_index_pattern(s))
    finally:
        backend.close()
    expired = {naming.events_index(s, d) for d in days if d < today - timedelta(days=30)}
    assert set(deleted) == expired
    assert set(left) == {naming.events_index(s, d) for d in days} - expired


def test_apply_retention_command(s: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    backend = make_backend(s)
    try:
        ensure_search_ready(backend, s)
        old = naming.events_index(s, date(2020, 1, 1))
        backend.create_index(old)
    finally:
        backend.close()
    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "sink", "search", "--apply-retention"],
        env=sink_env(s, STREAMWATCH_SEARCH_RETENTION_DAYS="10"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"deleted 1 expired daily indices: {old}" in proc.stdout
    backend = make_backend(s)
    try:
        assert old not in backend.list_indices(naming.events_index_pattern(s))
    finally:
        backend.close()


async def test_search_outage_backs_off_catches_up_while_warehouse_keeps_pace(
    s: Settings,
) -> None:
    host, port = s.search_endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = SwitchableProxy(host, int(port))
    proxy.up()
    via_proxy = s.model_copy(update={"search_url": proxy.url})
    search_stop, search_task = await _run(run_search_sink, via_proxy)
    wh_stop, wh_task = await _run(run_warehouse_sink, s)
    try:
        first = list(events(1000, seed=21))
        await produce(s, topics.EVENTS, first, "session_id")
        await wait_until(lambda: search_count(s) == 1000, what="first 1000 indexed")

        proxy.down()  # the engine is gone for the sink
        during = list(events(2000, seed=22))
        await produce(s, topics.EVENTS, during, "session_id")
        # The warehouse has its own consumer group: it keeps pace during the outage ...
        await wait_until(
            lambda: warehouse_scalar(s, "SELECT count(*) FROM events") == 3000,
            what="warehouse has all 3000 during the outage",
        )
        # ... while the search sink backs off (it keeps retrying the same pending bulk).
        await asyncio.sleep(3)
        assert search_count(s) == 1000
        assert not search_task.done()

        proxy.up()
        await wait_until(lambda: search_count(s) == 3000, what="search caught up")
    finally:
        proxy.up() if proxy._server is None else None
        search_stop.set()
        wh_stop.set()
        search_stats, _ = await asyncio.gather(search_task, wh_task)
        proxy.down()
    assert search_stats.backpressure_waits >= 3
    assert sorted(search_ids(s)) == sorted(e["event_id"] for e in first + during)
