"""Control-plane spans and service minutes through the real sinks: Kafka → each real search
engine (OpenSearch, Elasticsearch) and Kafka → Parquet read by DuckDB.

The spans come from `testkit.spans`, derived from a small stub run of the licence outage
(the stub's control plane does not emit spans yet), so a failed play's trace holds the
licence service's 503s and a healthy play's trace is clean.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.spans import trace_id_of
from indexers.search_factory import make_backend
from indexers.search_setup import apply_retention, ensure_search_ready
from indexers.services import run_search_sink, run_warehouse_sink
from indexers.span_search import spans_alias, spans_index, spans_index_pattern
from indexers.warehouse_reader import connect_readonly
from platform_stub.generator import RunOptions, StubRun
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.spans import login_spans, minutes_of, sessions_of, spans_for_session
from tests.conftest import on_backend
from tests.test_indexers_support import (
    cleanup_search,
    produce,
    read_topic,
    scoped,
    search_count,
    wait_until,
    warehouse_scalar,
)

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
async def s(
    settings: Settings, tmp_path: Path, search_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(on_backend(settings, search_backend, request), tmp_path)
    yield scoped_settings
    cleanup_search(scoped_settings)


def _player_sessions() -> dict[str, list[Mapping[str, Any]]]:
    start = NOW - timedelta(hours=2)
    run = StubRun(
        RunOptions(
            seed=11, members=100, rate=30, duration_s=300,
            scenario="drm_license_outage", start_ms=int(start.timestamp() * 1000),
        )
    )  # fmt: skip
    return sessions_of(json.loads(line) for b in run.batches(5000) for line in b.lines)


def _failed_on_license(events: list[Mapping[str, Any]]) -> bool:
    return any(e["event_type"] == "error" and e["payload"]["code"] == "DRM-2001" for e in events)


async def test_spans_indexed_for_the_trace_view_and_queryable_in_sql(s: Settings) -> None:
    sessions = _player_sessions()
    spans = [sp for evs in sessions.values() for sp in spans_for_session(evs)]
    spans += login_spans("m-login", NOW - timedelta(hours=1), failed=True)
    docs = [sp.model_dump(mode="json") for sp in spans]
    failed = next(sid for sid, evs in sessions.items() if _failed_on_license(evs))
    healthy = next(
        sid for sid, evs in sessions.items() if any(e["event_type"] == "first_frame" for e in evs)
    )
    minutes = [m.model_dump(mode="json") for m in minutes_of(spans)]
    superseded = {**minutes[0], "requests": 999_999, "revision": 0}
    latest = {**minutes[0], "revision": 1}
    bad = {**docs[0], "span_id": "00000000000000ff", "start_time": "not a time"}
    # Every span twice (a replay), a bad span and bytes that are not JSON.
    await produce(s, topics.SPANS, [*docs, *docs, bad, b"{not json"], "trace_id")
    await produce(s, topics.SERVICE_MINUTE, [superseded, *minutes[1:], latest], "service")

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(s, stop)) for run in (run_search_sink, run_warehouse_sink)]
    try:
        await wait_until(
            lambda: search_count(s, spans_alias(s)) == len(docs), what="spans indexed once"
        )
        await wait_until(
            lambda: warehouse_scalar(s, "SELECT count(*) FROM service_minute") == len(minutes),
            what="service minutes warehoused",
        )
        await wait_until(
            lambda: warehouse_scalar(s, "SELECT count(*) FROM spans_all") == 2 * len(docs),
            what="both deliveries warehoused",
        )

        async def four_letters() -> bool:
            return len(await read_topic(s, topics.DEADLETTER)) >= 4

        await wait_until(four_letters, what="the bad span and the bytes dead-lettered by both")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    backend = make_backend(s)
    try:
        trace = backend.search(
            spans_alias(s),
            {"size": 100, "query": {"term": {"trace_id": trace_id_of(failed)}},
             "sort": [{"start_time": "asc"}]},
        )["hits"]["hits"]  # fmt: skip
        licence = [h["_source"] for h in trace if h["_source"]["service"] == "license"]
        assert [(x["attempt"], x["http_status"]) for x in licence] == [
            (1, 503), (2, 503), (3, 503), (4, 503)
        ]  # fmt: skip
        clean = backend.search(
            spans_alias(s), {"size": 100, "query": {"term": {"trace_id": trace_id_of(healthy)}}}
        )["hits"]["hits"]
        assert clean and all(h["_source"]["status_code"] == "ok" for h in clean)
        logins = backend.search(
            spans_alias(s),
            {"query": {"bool": {"filter": [{"term": {"member_id": "m-login"}},
                                           {"term": {"service": "auth"}}]}}},
        )["hits"]["hits"]  # fmt: skip
        assert [h["_source"]["http_status"] for h in logins] == [503]
    finally:
        backend.close()

    # The warehouse: one row per span, the latest minute revision, the same failures.
    assert warehouse_scalar(s, "SELECT count(*) FROM spans") == len(docs)
    assert warehouse_scalar(
        s, "SELECT count(*) FROM spans WHERE service = 'license' AND http_status = 503"
    ) == sum(1 for sp in spans if sp.service == "license" and sp.http_status == 503)
    key = (minutes[0]["service"], minutes[0]["endpoint"], minutes[0]["region"])
    con = connect_readonly(s)
    row = con.execute(
        "SELECT requests FROM service_minute WHERE service = ? AND endpoint = ? AND region = ? "
        "AND minute = CAST(? AS TIMESTAMPTZ)",
        [*key, minutes[0]["minute"]],
    ).fetchone()
    con.close()
    got = None if row is None else row[0]
    assert got == minutes[0]["requests"]
    # The bad span and the bytes were dead-lettered by both sinks, with their reasons.
    letters = [json.loads(v) for v in await read_topic(s, topics.DEADLETTER)]
    reasons = sorted((d["source"], d["reason"]) for d in letters)
    assert ("sink.search", "bad_start_time") in reasons
    assert ("sink.warehouse", "warehouse_type_mismatch") in reasons
    assert reasons.count(("sink.search", "undecodable_json")) == 1
    assert reasons.count(("sink.warehouse", "undecodable_json")) == 1


async def test_span_indices_expire_with_the_event_retention(s: Settings) -> None:
    backend = make_backend(s)
    try:
        ensure_search_ready(backend, s)
        today = datetime.now(UTC).date()
        assert spans_index(s, today) in backend.list_indices(spans_index_pattern(s))
        old, kept = spans_index(s, date(2020, 1, 1)), spans_index(s, today - timedelta(days=2))
        backend.create_index(old)
        backend.create_index(kept)
        deleted = apply_retention(backend, s, today)
        left = backend.list_indices(spans_index_pattern(s))
    finally:
        backend.close()
    assert old in deleted and kept not in deleted
    assert old not in left and kept in left
