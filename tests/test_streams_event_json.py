"""The validate step forwards the same bytes as before its speed-up (issue 10).

It used to forward `catalog.enrich(event).model_dump_json()` (a copy of the whole event,
then pydantic's serializer); it now enriches the freshly parsed event in place and writes
it with `streams.validate.dump_event`. Both are compared here with the old way, on stub
events of every type and on hand-made edge cases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from contract.events import EVENT_TYPES
from ingest.events import EVENT_ADAPTER, Event
from platform_stub.generator import RunOptions, StubRun
from streams.enrichment import Catalog
from streams.validate import dump_event, parse

EID = "6f1e7a52-3f0e-4d1c-9a3e-1b2c3d4e5f60"


def _forwarded_before(catalog: Catalog, raw: bytes) -> bytes:
    return catalog.enrich(EVENT_ADAPTER.validate_json(raw)).model_dump_json().encode()


def _forwarded_now(catalog: Catalog, raw: bytes) -> bytes:
    parsed = parse(raw)
    assert isinstance(parsed, Event)
    return dump_event(catalog.enrich_parsed(parsed))


def _catalog() -> Catalog:
    return Catalog(
        genres={"80001286": "drama-ü"},
        oca_sites={"oca-ix-eu-central-02": "site-✓"},
        device_families={"tv/tizen": "samsung_tizen"},
    )


@pytest.mark.parametrize("scenario", ["normal", "oca_outage"])
def test_stub_events_are_forwarded_as_before(scenario: str) -> None:
    run = StubRun(
        RunOptions(
            seed=4, members=500, rate=60, duration_s=900, scenario=scenario, max_events=4_000
        )
    )
    lines = [line.encode() for b in run.batches() for line in b.lines]
    types = set()
    for catalog in (Catalog(), _catalog()):
        for raw in lines:
            assert _forwarded_now(catalog, raw) == _forwarded_before(catalog, raw)
            types.add(json.loads(raw)["event_type"])
    assert len(types) >= 10  # most event types, payloads of every shape among them


def _event(**over: Any) -> bytes:
    doc: dict[str, Any] = {
        "event_id": EID,
        "event_type": "heartbeat",
        "schema_version": 2,
        "event_time": "2026-01-01T00:00:00.123456Z",
        "session_id": "s-é",
        "payload": {"bitrate_kbps": 3000, "buffer_ms": None, "throughput_kbps": None},
    }
    doc.update(over)
    return json.dumps(doc, ensure_ascii=False).encode()


EDGE_CASES: list[bytes] = [
    _event(),
    _event(event_time="2026-01-01T02:00:00+02:00", received_at="2026-01-01T00:00:01-05:30"),
    _event(event_time="2026-01-01T00:00:00+00:00", received_at="2026-01-01T00:00:01.5Z"),
    _event(
        member_id="m-✓",
        title_id="80001286",
        device={"device_type": "tv", "os": "Tizen", "device_model": 'Ünïcode "q" \\ \u2028'},
        network={"asn": 4_294_967_295, "oca_id": "oca-ix-eu-central-02", "cdn_tier": "edge"},
        dimensions={"experiment": "ä/b", "variant": ""},
        derived_facts=["network.isp"],
        unknown_facts=["network.region"],
        clock_skew_clamped=True,
    ),
    # Unknown top-level fields go to `extra`: any JSON, kept as sent.
    _event(
        newer_field={"nested": [1, 2.5, -0.0, 1e22, 1.5e-7, None, True, "✓"], "big": 2**63},
        extra={"a": {"b": []}, "huge": 2**70, "emoji": "\U0001f600"},
    ),
    # A player's own `enrichment` is replaced where it stands in `extra`.
    _event(extra={"first": 1, "enrichment": "mine", "last": 2}),
    _event(enrichment={"genre": "player's"}, zz=1),
    _event(
        event_type="error",
        payload={
            "code": "E-ü",
            "category": "drm",
            "severity": "fatal",
            "http_status": 503,
            "message": "x\ny",
        },
    ),
    _event(event_type="playback_end", payload={"watched_ms": None, "exit_reason": "error"}),
    _event(event_type="seek", payload={"from_ms": 0, "to_ms": 2**40}),
    _event(event_type="first_frame", payload={"startup_ms": 0, "bitrate_kbps": None}),
    _event(event_type="pause", payload={}),  # the payload's type tag from the envelope
    _event(
        event_type="play_requested",
        schema_version=1,
        member_id="m",
        profile_id="p",
        title_id="t",
        device={
            "device_id": "d",
            "device_type": "web",
            "device_model": "x",
            "os": "Mac OS X",
            "app_version": "1",
        },
        network={
            "country": "US",
            "region": "r",
            "isp": "i",
            "asn": 1,
            "oca_id": "oca-isp-us-east-02",
            "cdn_tier": "origin",
        },
        payload={"autoplay": True, "resume_position_ms": 5},
    ),
]


@pytest.mark.parametrize("raw", EDGE_CASES)
def test_edge_cases_are_forwarded_as_before(raw: bytes) -> None:
    for catalog in (Catalog(), _catalog()):
        assert _forwarded_now(catalog, raw) == _forwarded_before(catalog, raw)


def test_every_event_type_is_among_the_cases() -> None:
    """The edge cases and the stub cover the payload shapes dump_event writes."""
    covered = {json.loads(raw)["event_type"] for raw in EDGE_CASES}
    assert {"heartbeat", "error", "playback_end", "seek", "first_frame", "pause"} <= covered
    assert set(EVENT_TYPES) >= covered


def test_enriching_in_place_leaves_other_parses_alone() -> None:
    catalog = _catalog()
    raw = _event(extra={"k": "v"})
    a, b = parse(raw), parse(raw)
    assert isinstance(a, Event) and isinstance(b, Event)
    catalog.enrich_parsed(a)
    assert "enrichment" in a.extra and b.extra == {"k": "v"}
    bare = parse(_event())
    other = parse(_event())
    assert isinstance(bare, Event) and isinstance(other, Event)
    catalog.enrich_parsed(bare)
    assert other.extra == {}  # no shared default dict


def test_remembered_lookups_agree_with_the_catalog() -> None:
    catalog = _catalog()
    for raw in EDGE_CASES * 2:  # the second round from the caches
        event = EVENT_ADAPTER.validate_json(raw)
        assert catalog.enrichment(event) == {
            "genre": catalog.genre(event.title_id),
            "oca_site": catalog.oca_site(event.network.oca_id),
            "device_family": catalog.device_family(event.device.device_type, event.device.os),
        }
