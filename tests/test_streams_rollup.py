"""Minute rollups: windows by event time, dimensions, lateness, revisions."""

from __future__ import annotations

import pytest

from contract.dimensions import ALL, DIMENSIONS
from contract.events import Event
from contract.records import MinuteCounts, MinuteRollup
from streams.rollup import MinuteRoller, RollupPolicy, add_startup, snapshot
from streams.sessionizer import Sessionizer, SessionState, to_ms
from testkit.synthetic_sessions import T0, at, event, normal_session


def feed(events: list[Event], roller: MinuteRoller, sz: Sessionizer) -> None:
    for e in events:
        a = sz.feed(e)
        dims = _dims(sz.states[e.session_id])
        roller.add(to_ms(e.event_time), dims, a)


def _dims(state: SessionState) -> dict[str, object]:
    return state.dims


def by_key(rollups: list[MinuteRollup]) -> dict[tuple[int, str, str], MinuteRollup]:
    return {(r.window_start.minute, r.dimension, r.value): r for r in rollups}


def test_rollup_counts_per_minute_and_dimension() -> None:
    sz, roller = Sessionizer(), MinuteRoller("p0")
    a = normal_session("a", watch_s=50, rebuffers=((20, 3_000),))
    b = normal_session("b", start_s=5, watch_s=30, startup_ms=4_000, network={"oca_id": "oca-2"})
    feed(a + b, roller, sz)
    out = by_key(roller.advance(to_ms(T0) + 10 * 60_000))
    total = out[(0, "all", "all")].counts
    assert total.plays == 2 and total.active_sessions == 2 and total.concurrent_viewers == 2
    assert total.rebuffer_ms == 3_000 and total.rebuffer_count == 1
    assert total.watch_ms == 80_000
    assert out[(0, "all", "all")].rebuffer_pct == pytest.approx(100 * 3_000 / 83_000)
    assert total.startup.count == 2 and total.ended_sessions == 2
    assert out[(0, "oca_id", "oca-1")].counts.plays == 1
    assert out[(0, "oca_id", "oca-2")].counts.startup.quantile(0.5) == pytest.approx(4_000, 0.03)
    assert {d for _, d, _ in out} == {ALL, *DIMENSIONS}
    assert {"region", "isp", "oca_id", "device_type", "os", "app_version", "title_id"} <= set(
        DIMENSIONS
    )
    assert all(r.revision == 0 and r.partial == "p0" for r in out.values())


def test_failures_and_ebvs_per_minute() -> None:
    sz, roller = Sessionizer(), MinuteRoller()
    err = {"code": "OCA-503", "category": "cdn", "severity": "fatal", "http_status": 503}
    events = [
        event("play_requested", at(0), "f"),
        event("error", at(1), "f", err),
        event("playback_end", at(1.2), "f", {"watched_ms": 0, "exit_reason": "error"}),
        event("play_requested", at(2), "e"),
        event("playback_end", at(9), "e", {"watched_ms": 0, "exit_reason": "abandoned_startup"}),
        *normal_session("ok", start_s=3, watch_s=20),
    ]
    feed(events, roller, sz)
    r = by_key(roller.advance(to_ms(T0) + 5 * 60_000))[(0, "all", "all")]
    c = r.counts
    assert (c.plays, c.active_sessions, c.failed_sessions) == (3, 3, 1)
    assert (c.ended_sessions, c.start_failures, c.exits_before_start) == (3, 1, 1)
    assert c.errors_by_code == {"OCA-503": 1}
    assert r.playback_failure_pct == pytest.approx(100 / 3)
    assert r.ebvs_pct == pytest.approx(100 / 3)


def test_window_closes_only_after_allowed_lateness() -> None:
    sz, roller = Sessionizer(), MinuteRoller(policy=RollupPolicy(allowed_lateness_ms=30_000))
    feed(normal_session("a", watch_s=20), roller, sz)
    end_of_minute = to_ms(T0) + 60_000
    assert roller.advance(end_of_minute + 29_999) == []
    assert roller.advance(end_of_minute + 30_000) != []


def test_late_event_is_counted_and_republished_never_dropped() -> None:
    sz, roller = Sessionizer(), MinuteRoller()
    events = normal_session("a", watch_s=40, rebuffers=((10, 2_000),))
    late = next(e for e in events if e.event_type == "rebuffer_end")
    feed([e for e in events if e is not late], roller, sz)
    first = by_key(roller.advance(to_ms(T0) + 5 * 60_000))
    assert first[(0, "all", "all")].counts.rebuffer_ms == 0
    feed([late], roller, sz)
    revised = by_key(roller.advance())
    r = revised[(0, "all", "all")]
    assert r.revision == 1 and r.late_events == 1 and r.counts.rebuffer_ms == 2_000
    # Only the touched values are republished (every dimension of this session).
    assert len(revised) == 1 + len(DIMENSIONS)  # "all" and one value of each dimension


def test_very_late_event_becomes_its_own_partial() -> None:
    sz = Sessionizer()
    roller = MinuteRoller("p3", RollupPolicy(closed_retention_ms=60_000))
    events = normal_session("a", watch_s=20)
    feed(events[:-1], roller, sz)
    roller.advance(to_ms(T0) + 10 * 60_000)  # closed and forgotten
    assert roller.windows == {}
    feed([events[-1]], roller, sz)
    [*out] = roller.advance(to_ms(T0) + 20 * 60_000)
    assert out and all(r.partial.startswith("p3.late.") and r.revision == 0 for r in out)
    assert by_key(out)[(0, "all", "all")].counts.ended_sessions == 1


def test_duplicates_add_nothing() -> None:
    sz, roller = Sessionizer(), MinuteRoller()
    events = normal_session("a", watch_s=20)
    feed(events + events[2:5], roller, sz)
    r = by_key(roller.advance(to_ms(T0) + 5 * 60_000))[(0, "all", "all")]
    assert r.counts.events == len(events) and r.counts.plays == 1


def test_rollup_round_trips_as_json() -> None:
    sz, roller = Sessionizer(), MinuteRoller()
    feed(normal_session(), roller, sz)
    for r in roller.advance(to_ms(T0) + 10 * 60_000):
        assert MinuteRollup.model_validate_json(r.model_dump_json()) == r


def test_snapshot_is_a_deep_copy_of_every_mutable_field() -> None:
    # rollup.snapshot copies the sketch's buckets and the error counts by hand: a new
    # mutable field of MinuteCounts must be added there too, or published rollups change.
    c = MinuteCounts(events=3, errors_by_code={"x": 1})
    c.startup.add(100)
    mutable = {
        name
        for name, value in c.__dict__.items()
        if not isinstance(value, (int, float, str, type(None)))
    }
    assert mutable == {"startup", "errors_by_code"}
    copy = snapshot(c)
    assert copy == c
    c.startup.add(5)
    c.errors_by_code["x"] += 1
    c.events += 1
    assert (copy.events, copy.startup.count, copy.errors_by_code) == (3, 1, {"x": 1})
    assert copy.startup.buckets != c.startup.buckets


def test_add_startup_agrees_with_the_sketchs_own_add() -> None:
    """The rollup's fast sketch update is `LatencySketch.add`, value for value and byte
    for byte (bucket order included), from empty and from stored sketches."""
    fast = [MinuteCounts(), MinuteCounts.model_validate_json(MinuteCounts().model_dump_json())]
    slow = [MinuteCounts(), MinuteCounts()]
    for v in (0, 1, 850, 12, 850, 600_000, 3, 1_999, 0, 40_000):
        add_startup(fast, v)
        for c in slow:
            c.startup.add(v)
    assert fast[0].startup.count == 10 and fast[0].startup.min == 0
    for f, s in zip(fast, slow, strict=True):
        assert f.model_dump_json() == s.model_dump_json()
