"""Stub output is valid `Event`s, follows the player life cycle and agrees with its truth."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from typing import Any

import pytest

from contract.events import EVENT_ADAPTER
from ingest.error_catalog import load_catalog
from platform_stub.error_codes import build_error_table
from platform_stub.eventstats import event_ms, sessionize
from platform_stub.generator import RunOptions, StubRun
from platform_stub.scenarios import SCENARIOS
from platform_stub.truth import SessionTruth

_STARTUP = ("play_requested", "manifest_loaded", "license_acquired", "first_frame")
_AFTER_START = {
    "heartbeat",
    "bitrate_change",
    "rebuffer_start",
    "rebuffer_end",
    "pause",
    "resume",
    "seek",
}


@cache
def _run(scenario: str) -> tuple[list[str], list[SessionTruth], StubRun]:
    options = RunOptions(
        seed=5, members=3_000, rate=60.0, duration_s=1_800.0, scenario=scenario, max_events=30_000
    )
    stub = StubRun(options)
    lines = [line for batch in stub.batches() for line in batch.lines]
    return lines, stub.truths(), stub


def _lifecycle_errors(events: list[dict[str, Any]], complete: bool) -> list[str]:
    """Violations of the DESIGN.md life cycle in one session's events (in stream order)."""
    problems: list[str] = []
    kinds = [e["event_type"] for e in events]
    if kinds[0] != "play_requested":
        problems.append(f"starts with {kinds[0]}")
    times = [event_ms(e) for e in events]
    if times != sorted(times):
        problems.append("event times go backwards")
    startup = [k for k in kinds if k in _STARTUP]
    if startup != list(_STARTUP[: len(startup)]):
        problems.append(f"startup out of order: {startup}")
    started = _start_errors(kinds, problems)
    stalled = _pairing_errors(kinds, problems)
    _end_errors(events, complete, problems)
    if complete:
        if kinds[-1] != "playback_end":
            problems.append(f"complete session ends with {kinds[-1]}")
        if stalled:
            problems.append("ends while rebuffering")
        end = events[-1]["payload"]
        if end["exit_reason"] == "abandoned_startup" and started:
            problems.append("abandoned_startup after first_frame")
    return problems


def _start_errors(kinds: list[str], problems: list[str]) -> bool:
    """Events that need a first frame before it; whether the session started."""
    started = False
    for kind in kinds:
        if kind == "first_frame":
            started = True
        elif kind in _AFTER_START and not started:
            problems.append(f"{kind} before first_frame")
    return started


def _pairing_errors(kinds: list[str], problems: list[str]) -> bool:
    """Rebuffer and pause pairs; whether the session ends while rebuffering."""
    stalled = paused = False
    for kind in kinds:
        if kind == "rebuffer_start":
            problems += ["nested rebuffer"] if stalled else []
            stalled = True
        elif kind == "rebuffer_end":
            problems += ["rebuffer_end without start"] if not stalled else []
            stalled = False
        elif kind == "pause":
            paused = True
        elif kind == "resume":
            problems += ["resume without pause"] if not paused else []
            paused = False
    return stalled


def _end_errors(events: list[dict[str, Any]], complete: bool, problems: list[str]) -> None:
    """A fatal error ends the session at once; nothing follows playback_end."""
    for i, event in enumerate(events):
        kind = event["event_type"]
        if kind == "error" and event["payload"]["severity"] == "fatal":
            nxt = events[i + 1] if i + 1 < len(events) else None
            if complete and (
                nxt is None
                or nxt["event_type"] != "playback_end"
                or nxt["payload"]["exit_reason"] != "error"
            ):
                problems.append("fatal error not followed by playback_end(error)")
        if kind == "playback_end" and i != len(events) - 1:
            problems.append("events after playback_end")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sample_validates_against_the_event_contract(scenario: str) -> None:
    lines, _, _ = _run(scenario)
    # Every non-heartbeat event (all the rare kinds) plus every 20th heartbeat.
    sample = [
        line
        for i, line in enumerate(lines)
        if '"event_type":"heartbeat"' not in line or i % 20 == 0
    ]
    assert len(sample) > 5_000
    kinds = set()
    for line in sample:
        event = EVENT_ADAPTER.validate_json(line)
        assert event.extra == {}, "the stub must not emit unknown fields"
        kinds.add(event.event_type)
        # Nothing is lost or defaulted: the stub writes what the model reads back.
        raw = json.loads(line)
        dumped = json.loads(
            event.model_dump_json(
                # The collector's own v2 fields (facts it derived, custom dimensions).
                exclude={
                    "received_at",
                    "clock_skew_clamped",
                    "extra",
                    "derived_facts",
                    "unknown_facts",
                    "dimensions",
                }
            )
        )
        assert event_ms(raw) == int(event.event_time.timestamp() * 1000)
        raw.pop("event_time"), dumped.pop("event_time")
        assert raw == dumped
    assert {"play_requested", "first_frame", "heartbeat", "playback_end", "error"} <= kinds


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sessions_follow_the_life_cycle(scenario: str) -> None:
    lines, truths, _ = _run(scenario)
    complete = {t.session_id: t.complete for t in truths}
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    previous = 0
    ids = set()
    for line in lines:
        event = json.loads(line)
        by_session[event["session_id"]].append(event)
        t = event_ms(event)
        assert t >= previous, "the stream is ordered by event time"
        previous = t
        ids.add(event["event_id"])
    assert len(ids) == len(lines), "event ids are unique"
    assert set(by_session) == set(complete)
    bad = {
        sid: problems
        for sid, events in by_session.items()
        if (problems := _lifecycle_errors(events, complete[sid]))
    }
    assert not bad, list(bad.items())[:5]


def test_error_codes_come_from_the_catalog() -> None:
    catalog = load_catalog()
    table = build_error_table()
    assert table.dropped == ()
    for scenario in SCENARIOS:
        lines, _, _ = _run(scenario)
        for line in lines:
            if '"event_type":"error"' in line:
                payload = json.loads(line)["payload"]
                entry = catalog[payload["code"]]
                assert (payload["category"], payload["severity"]) == (
                    entry.category,
                    entry.severity,
                )
                assert payload["http_status"] == entry.http_status


@pytest.mark.parametrize(
    "scenario", ["normal", "oca_outage", "drm_license_outage", "bad_app_release"]
)
def test_truth_agrees_with_the_events(scenario: str) -> None:
    lines, truths, _ = _run(scenario)
    events = [json.loads(line) for line in lines]
    stats = sessionize(events)
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        counts[event["session_id"]] += 1
    assert len(stats) == len(truths)
    for truth in truths:
        s = stats[truth.session_id]
        assert s.dims["member_id"] == truth.member_id
        assert s.dims["network.oca_id"] == truth.oca_id
        assert s.dims["network.isp"] == truth.isp
        assert s.dims["device.os"] == truth.os
        assert s.dims["device.app_version"] == truth.app_version
        assert s.started_ms == truth.started_ms
        assert s.final_oca_id == truth.final_oca_id
        assert s.first_frame == truth.first_frame
        assert s.startup_ms == truth.startup_ms
        assert s.fatal_before_start == truth.fatal_before_start
        assert s.fatal_after_start == truth.fatal_after_start
        assert s.rebuffer_count == truth.rebuffer_count
        assert s.upshifts == truth.upshifts and s.downshifts == truth.downshifts
        assert s.error_codes == list(truth.error_codes)
        if truth.complete:
            assert s.exit_reason == truth.exit_reason
            assert s.exit_before_start == truth.exit_before_start
            assert s.watch_ms == truth.watch_ms
            assert s.rebuffer_ms == truth.rebuffer_ms
        assert truth.events == counts[truth.session_id]


def test_scenario_truth_names_its_window_and_affected_sessions() -> None:
    for scenario in SCENARIOS:
        _, truths, stub = _run(scenario)
        gt = stub.scenario_truth()
        assert gt.kind == scenario
        if scenario == "normal":
            assert gt.affected_session_ids == () and gt.dimension is None
            continue
        assert gt.start_ms is not None and gt.end_ms is not None and gt.start_ms < gt.end_ms
        by_id = {t.session_id: t for t in truths}
        if gt.dimension == "service":  # a control-plane fault: one service in one region
            assert gt.value == gt.service and gt.affected_member_ids, scenario
            assert all(by_id[sid].region == gt.region for sid in gt.affected_session_ids)
            continue
        assert gt.affected_session_ids, scenario
        for sid in gt.affected_session_ids:
            t = by_id[sid]
            assert sid in by_id and t.member_id in gt.affected_member_ids
            value = {
                "network.oca_id": t.oca_id,
                "network.isp": t.isp,
                "device.os": t.os,
                "device.app_version": t.app_version,
                "title_id": t.title_id,
            }[gt.dimension or ""]
            assert value == gt.value
