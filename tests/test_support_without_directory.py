"""Support lookup from the indexed events alone: no member directory, no session summaries.

Real players' member ids come from the service's own systems; the directory only adds email,
plan and country. The events here are what the collector made of real CMCD bodies (hls.js
1.7.4, dash.js 5.2.1, tests/data/cmcd/) and of a web SDK's v2 events, next to a v1 event from
the stub: v1 and v2 land in search and in the warehouse with the same columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.events import EVENT_ADAPTER, Event
from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.arrow_rows import rows_to_table
from indexers.documents import flatten
from indexers.search_backend import BulkOp
from indexers.search_factory import make_backend
from indexers.search_setup import ensure_search_ready
from ingest.cmcd_batch import CmcdBatch, read_cmcd_body
from ingest.cmcd_events import CmcdIdentity, CmcdSessions, CmcdTranslator
from ingest.enrichment import ClientContext, Enricher
from ingest.validation import AcceptedEvent, IngestLimits, validate_object
from streamwatch.settings import Settings
from support_console.identity import AgentIdentity
from support_console.service import LookupRequest, SupportService
from testkit.sample_events import sample_event
from tests.test_support_data import own_settings

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "cmcd"
AGENT = AgentIdentity("agent-no-directory", "cli")
NOW = datetime.now(UTC)
LIMITS = IngestLimits(64 * 1024, 5 * 1024 * 1024, 1000, timedelta(days=3650))


def _cmcd_events(name: str) -> list[Event]:
    translator = CmcdTranslator(CmcdSessions(100), CmcdIdentity(member_key="sw-member"))
    enricher = Enricher(Settings())
    client = ClientContext("203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari")
    batch = read_cmcd_body(
        DATA.joinpath(name).read_bytes(),
        LIMITS,
        1000,
        NOW,
        translator,
        lambda obj: enricher.enrich(obj, client),
    )
    assert isinstance(batch, CmcdBatch) and not batch.rejected
    return [a.event for a in batch.accepted]


def _sdk_events() -> list[Event]:
    """A web SDK session: v2 events with ids but no network facts, and a catalog error."""
    start = NOW - timedelta(hours=1)
    common: dict[str, Any] = {
        "schema_version": 2,
        "member_id": "member-sdk-1",
        "session_id": "sdk-session-1",
        "title_id": "t-sdk",
        "device": {"device_id": "device-sdk-1", "app_version": "sdk-0.1.0"},
        "dimensions": {"experiment": "abr-b"},
    }
    wire = [
        {**sample_event("play_requested", event_time=start), **common},
        {**sample_event("first_frame", event_time=start + timedelta(seconds=1)), **common},
        {**sample_event("error", event_time=start + timedelta(seconds=30)), **common},
    ]
    for w in wire:
        w.pop("network")
        w["device"] = dict(common["device"])
    enricher = Enricher(Settings())
    client = ClientContext("203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari")
    out = []
    for i, w in enumerate(wire):
        accepted = validate_object(i, b"", w, LIMITS, NOW, lambda obj: enricher.enrich(obj, client))
        assert isinstance(accepted, AcceptedEvent), accepted
        out.append(accepted.event)
    return out


@pytest.fixture(scope="module")
def events_only(settings: Settings) -> tuple[Settings, list[Event]]:
    own = own_settings(settings, "no-directory")
    events = [
        *_cmcd_events("hlsjs-1.7.4-throttled.txt"),
        *_cmcd_events("dashjs-5.2.1-fatal404.txt"),
        *_sdk_events(),
        EVENT_ADAPTER.validate_python(sample_event("play_requested", member_id="member-v1")),
    ]
    backend = make_backend(own)
    ensure_search_ready(backend, own)
    table = TABLE_BY_NAME["events"]
    ops = []
    for ev in events:
        index = naming.events_index(own, ev.event_time.astimezone(UTC).date())
        backend.create_index(index)
        doc = flatten(json.loads(ev.model_dump_json()), table)
        ops.append(BulkOp("index", index, str(ev.event_id), doc))
    results = backend.bulk(ops)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:2]
    backend.refresh(naming.events_alias(own))
    return own, events


def test_member_from_cmcd_events_alone(events_only: tuple[Settings, list[Event]]) -> None:
    own, _ = events_only
    service = SupportService.open(own)
    result = service.lookup(AGENT, LookupRequest("member-capture-1"))
    assert result.status == "found", result.message
    (session,) = result.sessions
    assert session.session_id == "capture-hls-throttled"
    assert session.rebuffer_count == 2
    by_session = service.lookup(AGENT, LookupRequest("capture-hls-throttled"))
    assert by_session.status == "found" and by_session.member is not None
    assert by_session.member.member_id == "member-capture-1"


def test_member_by_device_id_with_the_error_explained(
    events_only: tuple[Settings, list[Event]],
) -> None:
    own, _ = events_only
    result = SupportService.open(own).lookup(AGENT, LookupRequest("device-sdk-1"))
    assert result.status == "found", result.message
    assert result.member is not None and result.member.member_id == "member-sdk-1"
    (session,) = result.sessions
    (error,) = session.errors
    assert error.code == "CDN-3002"
    assert error.meaning  # explained from ingest/error_catalog.json


def test_v1_and_v2_events_have_the_same_columns(events_only: tuple[Settings, list[Event]]) -> None:
    own, events = events_only
    table = TABLE_BY_NAME["events"]
    v1 = next(e for e in events if e.schema_version == 1)
    v2 = next(e for e in events if e.schema_version == 2 and e.event_type == "play_requested")
    rows = [flatten(json.loads(e.model_dump_json()), table) for e in (v1, v2)]
    arrow, bad = rows_to_table(rows, table.columns)
    assert not bad
    assert arrow.num_rows == 2 and arrow.schema.names == [c.name for c in table.columns]
    backend = make_backend(own)
    docs = {}
    for ev in (v1, v2):
        found = backend.search(
            naming.events_alias(own), {"query": {"term": {"event_id": str(ev.event_id)}}}
        )
        docs[ev.schema_version] = found["hits"]["hits"][0]["_source"]
    # Same envelope columns, filled either way (v2: derived or 'unknown').
    for column in ("country", "region", "isp", "asn", "oca_id", "cdn_tier", "device_type"):
        assert column in docs[1] and column in docs[2], column
    assert docs[2]["isp"] == "unknown" and "network.isp" in docs[2]["unknown_facts"]
    assert docs[2]["device_type"] == "web" and "device.device_type" in docs[2]["derived_facts"]
