"""The session trace's pure parts: the summary in words and the chart, from stub plays."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contract.tables import TABLE_BY_NAME
from indexers.documents import flatten
from ingest.error_catalog import load_catalog
from platform_stub.generator import RunOptions, StubRun
from support_console.trace import (
    SessionTrace,
    TraceStep,
    build_trace,
    step_from_span,
    summarize,
    summarize_account,
)
from support_console.trace_chart import drawn_steps, trace_chart
from testkit.spans import login_spans, sessions_of, spans_for_session

CATALOG = load_catalog()


def _traces() -> list[SessionTrace]:
    run = StubRun(
        RunOptions(
            seed=11, members=100, rate=30, duration_s=300,
            scenario="drm_license_outage", start_ms=1764000000000,
        )
    )  # fmt: skip
    out = []
    for sid, evs in sessions_of(json.loads(x) for b in run.batches(5000) for x in b.lines).items():
        out.append(_trace(sid, evs))
    return out


def _trace(sid: str, evs: list[Mapping[str, Any]]) -> SessionTrace:
    spans = [
        flatten(json.loads(s.model_dump_json()), TABLE_BY_NAME["spans"])
        for s in spans_for_session(evs)
    ]
    events = [flatten(e, TABLE_BY_NAME["events"]) for e in evs]
    return build_trace(sid, str(evs[0]["member_id"]), events, spans, CATALOG)


def test_failed_and_clean_plays_are_told_apart_in_words() -> None:
    traces = _traces()
    failed = [t for t in traces if any(s.label == "error DRM-2001" for s in t.steps)]
    started = [t for t in traces if any(s.label == "first_frame" for s in t.steps)]
    assert failed and started
    for t in failed:
        assert t.summary.startswith("License service answered 503 in "), t.summary
        assert ", 3 retries, the player gave up with DRM-2001" in t.summary
        assert "passed on by gateway (503)" in t.summary
        assert {s.service for s in t.failing} == {"license", "gateway"}
    for t in started:
        assert t.clean or "1 retry, the last try got through" in t.summary, t.summary
    assert sum(t.clean for t in started) > len(started) / 2
    healthy = next(t for t in started if t.clean)
    drawn, later = drawn_steps(healthy.steps)
    assert [s.label for s in later][-1:] == ["playback_end"]
    assert all(s.source == "player" for s in later) and len(drawn) + len(later) == len(
        healthy.steps
    )
    chart = trace_chart(failed[0].steps).to_dict()
    assert chart["layer"][0]["mark"]["type"] == "bar"
    assert chart["layer"][0]["encoding"]["x"]["axis"]["format"] == "%H:%M:%S"


def test_no_spans_and_logins_are_said_plainly() -> None:
    t = build_trace("00000000-0000-0000-0000-000000000001", "m", [], [], CATALOG)
    assert not t.clean and t.summary.startswith("No server spans are indexed")
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    good = [step_from_span(s.model_dump(mode="json")) for s in login_spans("m", at)]
    steps = [s for s in good if s is not None and s.service == "auth"]
    assert summarize_account("m", steps).endswith("all answered OK.")
    assert summarize_account("m", []).startswith("No login or signup requests")


def test_a_clean_trace_ending_in_a_player_error_says_where_to_look() -> None:
    at = datetime(2026, 11, 30, 0, 34, tzinfo=UTC)
    server = [
        TraceStep(at=at, end=at, lane="gateway", source="server", label="gateway /play"),
        TraceStep(at=at, end=at, lane="license", source="server", label="license /acquire"),
    ]

    def ended_with(code: str) -> str:
        error = TraceStep(at=at, lane="player", source="player", label=f"error {code}",
                          status="error")  # fmt: skip
        return summarize(server, [error], CATALOG)

    assert ended_with("CDN-3001").endswith(
        "which no server call explains (look at the session's cache (OCA) and the member's "
        "network)."
    )
    assert "(look at the member's network and ISP)" in ended_with("NW-1002")
    assert summarize(server, [], CATALOG) == (
        "Clean trace: all 2 server calls of this play answered OK (gateway, license)."
    )
