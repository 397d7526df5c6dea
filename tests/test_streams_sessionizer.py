"""The session state machine on hand-built sequences."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contract.events import Event
from contract.records import SessionSummary
from streams.sessionizer import Sessionizer, SessionPolicy, to_ms
from testkit.synthetic_sessions import at, event, normal_session


def run(events: list[Event], sz: Sessionizer | None = None) -> list[SessionSummary]:
    sz = sz or Sessionizer()
    out = [a.summary for e in events if (a := sz.feed(e)).summary is not None]
    return out


def test_normal_session_summary() -> None:
    [s] = run(normal_session(rebuffers=((15, 2_000), (45, 1_000)), watch_s=120))
    assert s.ended_by == "playback_end" and s.revision == 0
    assert s.start_outcome == "started" and not s.playback_failed
    assert s.startup_ms == 1_500
    assert (s.watch_ms, s.rebuffer_ms, s.rebuffer_count) == (120_000, 3_000, 2)
    assert s.rebuffer_pct == pytest.approx(100 * 3_000 / 123_000)
    assert s.rebuffers_per_minute == pytest.approx(1.0)
    assert s.avg_bitrate_kbps == pytest.approx(5_000)
    assert (s.region, s.oca_id, s.device_type, s.title_id) == ("us-east", "oca-1", "tv", "t-1")
    assert s.first_event_at == at(0) and s.ended_at == at(1.5 + 123)


def test_watch_time_estimate_matches_player_when_no_end_arrives() -> None:
    events = normal_session(rebuffers=((15, 2_000),), watch_s=120)[:-1]  # drop playback_end
    sz = Sessionizer()
    assert run(events, sz) == []
    [s] = sz.advance(to_ms(events[-1].event_time) + 120_000)
    assert s.ended_by == "timeout" and s.watch_source == "estimated"
    assert s.watch_ms == 120_000 and s.rebuffer_ms == 2_000


def test_out_of_order_and_duplicated_events_give_the_same_summary() -> None:
    events = normal_session(rebuffers=((30, 1_500),), watch_s=90)
    [ordered] = run(events)
    rng = random.Random(3)
    body = [*events[:-1], events[3], events[5]]  # two duplicates
    rng.shuffle(body)
    [shuffled] = run([*body, events[-1]])
    assert shuffled.duplicate_events == 2
    assert shuffled.model_dump(exclude={"duplicate_events"}) == ordered.model_dump(
        exclude={"duplicate_events"}
    )


def test_start_failure_vs_ebvs_vs_in_play_failure() -> None:
    err = {"code": "DRM-1", "category": "drm", "severity": "fatal"}
    vsf = [
        event("play_requested", at(0), "vsf"),
        event("error", at(2), "vsf", err),
        event("playback_end", at(2.1), "vsf", {"watched_ms": 0, "exit_reason": "error"}),
    ]
    ebvs = [
        event("play_requested", at(0), "ebvs"),
        event("manifest_loaded", at(1), "ebvs", {"latency_ms": 900}),
        event("playback_end", at(8), "ebvs", {"watched_ms": 0, "exit_reason": "abandoned_startup"}),
    ]
    vpf = [*normal_session("vpf", watch_s=30)[:-1]]
    vpf += [
        event("error", at(40), "vpf", {**err, "code": "NET-9", "category": "network"}),
        event("playback_end", at(40.5), "vpf", {"watched_ms": 30_000, "exit_reason": "error"}),
    ]
    by_id = {s.session_id: s for s in run(vsf + ebvs + vpf)}
    assert by_id["vsf"].start_outcome == "start_failure" and by_id["vsf"].playback_failed
    assert by_id["vsf"].fatal_error_code == "DRM-1" and by_id["vsf"].startup_ms is None
    assert by_id["ebvs"].start_outcome == "exit_before_start"
    assert not by_id["ebvs"].playback_failed and by_id["ebvs"].score_success == 50.0
    assert by_id["vpf"].start_outcome == "started" and by_id["vpf"].in_play_failure
    assert by_id["vpf"].playback_failed and by_id["vpf"].score_success == 0.0
    assert [e.code for e in by_id["vpf"].errors] == ["NET-9"]


def test_warning_errors_do_not_fail_a_session() -> None:
    events = normal_session(watch_s=30)
    warn = event("error", at(10), payload={"code": "W1", "category": "cdn", "severity": "warning"})
    [s] = run([*events[:-1], warn, events[-1]])
    assert not s.playback_failed and s.errors[0].severity == "warning"


def test_session_that_never_ends_times_out_on_event_time_only() -> None:
    policy = SessionPolicy(inactivity_timeout_ms=60_000)
    sz = Sessionizer(policy)
    run(normal_session("idle", watch_s=20)[:-1], sz)
    last = sz.states["idle"].last_event_ms
    assert sz.advance(last + 59_999) == []  # not yet idle long enough
    [s] = sz.advance(last + 60_000)
    assert s.ended_by == "timeout" and s.exit_reason is None
    assert sz.advance(last + 60_001) == []  # closes once


def test_late_events_after_close_are_counted_and_revise_the_summary() -> None:
    events = normal_session(rebuffers=((30, 1_000),), watch_s=60)
    rb_start, rb_end = (e for e in events if e.event_type.startswith("rebuffer"))
    body = [e for e in events if e not in (rb_start, rb_end)]
    sz = Sessionizer()
    [first] = run(body, sz)
    assert first.rebuffer_ms == 0 and first.late_events == 0
    a = sz.feed(rb_end)
    assert a.late and not a.closed_now and a.summary is not None
    assert a.summary.revision == 1 and a.summary.late_events == 1
    assert a.summary.rebuffer_ms == 1_000 and a.summary.ended_by == "playback_end"


def test_timed_out_session_revised_by_late_playback_end() -> None:
    events = normal_session("t", watch_s=20)
    sz = Sessionizer(SessionPolicy(inactivity_timeout_ms=30_000))
    run(events[:-1], sz)
    [timed_out] = sz.advance(to_ms(events[-1].event_time) + 60_000)
    assert timed_out.ended_by == "timeout"
    revised = sz.feed(events[-1]).summary
    assert revised is not None and revised.ended_by == "playback_end"
    assert revised.revision == 1 and revised.watch_source == "player"


def test_closed_sessions_are_forgotten_after_retention() -> None:
    sz = Sessionizer(SessionPolicy(closed_retention_ms=60_000))
    run(normal_session("gone", watch_s=10), sz)
    assert "gone" in sz.states
    sz.advance(sz.states["gone"].last_event_ms + 60_000)
    assert "gone" not in sz.states


def test_applied_reports_rollup_increments_once() -> None:
    sz = Sessionizer()
    events = normal_session(watch_s=70, heartbeat_s=10)
    applied = [sz.feed(e) for e in events]
    assert sum(a.new_play for a in applied) == 1
    assert [a.startup_ms for a in applied if a.startup_ms is not None] == [1_500]
    # Active in minutes 12:00, 12:01; playing in both.
    assert sum(a.new_active_minute for a in applied) == 2
    assert sum(a.new_playing_minute for a in applied) == 2
    assert sum(a.watch_ms for a in applied) == 70_000
    dup = sz.feed(events[4])
    assert dup.duplicate and dup.summary is None


def test_summary_round_trips_as_json() -> None:
    [s] = run(normal_session())
    assert SessionSummary.model_validate_json(s.model_dump_json()) == s


_TIME = TypeAdapter(datetime)


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"]),
)
def test_event_ms_is_the_timestamp_of_what_pydantic_parsed(naive: datetime, zone: str) -> None:
    # A parsed UTC time takes a shortcut (no UTC offset asked for): the same integer as
    # int(timestamp() * 1000), float rounding included, or sessions would move.
    parsed = _TIME.validate_json(f'"{naive.isoformat()}{zone}"'.encode())
    assert to_ms(parsed) == int(parsed.timestamp() * 1000)
    assert to_ms(parsed.astimezone(UTC)) == int(parsed.timestamp() * 1000)
    assert to_ms(parsed + timedelta(microseconds=1)) == int(
        (parsed + timedelta(microseconds=1)).timestamp() * 1000
    )
