"""The validate stage's dedupe plan (streams.dedupe): ids per session, then one marker."""

from __future__ import annotations

import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from streams.config import StreamsConfig
from streams.dedupe import (
    DAY_MS,
    DedupePolicy,
    SeenIndex,
    closed_key,
    id_key,
    id_value,
    is_late,
    is_marker,
    marker_value,
    plan_purge,
    seen_at,
)

MIN = 60_000
POLICY = DedupePolicy(session_gap_ms=32 * MIN, horizon_ms=7 * DAY_MS, max_ids_per_partition=100)


def ids(sid: str, times: list[int], p: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"{sid}-{i}".encode(), id_value(p, i, t, sid)) for i, t in enumerate(times)]


def test_ids_of_an_open_session_stay_however_old_its_first_event() -> None:
    # A 3-hour session still going: its first ids are far older than the gap.
    entries = ids("long", [0, 60 * MIN, 120 * MIN, 180 * MIN])
    plan = plan_purge(entries, {0}, {0: 190 * MIN}, POLICY)
    assert plan.forget == [] and plan.markers == []


def test_a_session_over_leaves_one_small_marker() -> None:
    entries = ids("done", [0, MIN, 2 * MIN]) + ids("open", [60 * MIN])
    plan = plan_purge(entries, {0}, {0: 2 * MIN + 32 * MIN}, POLICY)
    assert sorted(k for _, k in plan.forget) == [b"done-0", b"done-1", b"done-2"]
    assert plan.markers == [(0, closed_key("done"), marker_value(0, 2 * MIN))]
    _, key, value = plan.markers[0]
    assert is_marker(key) and len(key) + len(value) < 40
    assert json.loads(value) == [0, 2 * MIN]


def test_markers_expire_after_the_horizon_only() -> None:
    marker = [(closed_key("old"), marker_value(0, 0))]
    kept = plan_purge(marker, {0}, {0: 7 * DAY_MS - 1}, POLICY)
    assert kept.forget == []
    gone = plan_purge(marker, {0}, {0: 7 * DAY_MS}, POLICY)
    assert gone.forget == [(0, closed_key("old"))]


def test_other_partitions_are_left_alone() -> None:
    entries = ids("x", [0], p=1)
    assert plan_purge(entries, {0}, {0: DAY_MS, 1: DAY_MS}, POLICY).forget == []


def test_cap_closes_the_oldest_sessions_first() -> None:
    entries = ids("a", [0] * 60) + ids("b", [MIN] * 60)
    plan = plan_purge(entries, {0}, {0: 2 * MIN}, POLICY)
    assert {k.split(b"-")[0] for _, k in plan.forget} == {b"a"}
    assert [k for _, k, _ in plan.markers] == [closed_key("a")]


def test_legacy_entries_expire_by_their_own_time() -> None:
    legacy = [(b"e1", json.dumps([0, 5, 10]).encode()), (b"e2", json.dumps([0, 6, 99]).encode())]
    plan = plan_purge(legacy, {0}, {0: 50}, POLICY)
    assert plan.forget == [(0, b"e1")] and plan.markers == []


def test_policy_keeps_ids_at_least_as_long_as_sessions_are_kept() -> None:
    policy = DedupePolicy.of(StreamsConfig())
    cfg = StreamsConfig().session
    assert policy.session_gap_ms >= cfg.inactivity_timeout_ms + cfg.closed_retention_ms
    assert policy.horizon_ms == 7 * DAY_MS


def test_late_header_is_recognised_in_either_shape() -> None:
    assert is_late([("streamwatch-late", b"1")])
    assert is_late({"streamwatch-late": b"1"})
    assert not is_late(None) and not is_late([]) and not is_late([("other", b"1")])


def test_index_follows_writes_and_forgets_each_session_once() -> None:
    index = SeenIndex()
    index.add_id(0, b"ignored", 0, "x")  # partition not loaded yet: the table has it
    index.load(0, [*ids("a", [0, MIN]), (closed_key("old"), marker_value(0, 0))])
    index.add_id(0, b"b-0", 10 * MIN, "b")
    first = index.plan(0, MIN + 32 * MIN, POLICY)
    assert sorted(k for _, k in first.forget) == [b"a-0", b"a-1"]
    assert [k for _, k, _ in first.markers] == [closed_key("a")]
    assert index.plan(0, MIN + 32 * MIN, POLICY).forget == []  # done already
    later = index.plan(0, 7 * DAY_MS + MIN, POLICY)
    assert sorted(k for _, k in later.forget) == sorted(
        [closed_key("old"), closed_key("a"), b"b-0"]
    )
    index.forget([0])
    assert not index.loaded(0) and index.plan(0, 8 * DAY_MS, POLICY).forget == []


def test_id_value_is_the_json_it_always_was() -> None:
    # The fast path must write exactly what json.dumps wrote (recovery parses it).
    for sid in ("0f8fad5b-d9cb-469f-a165-70867728950e", 'a"b', "a\\b", "é", "x\ny", ""):
        assert (
            id_value(3, 17, 1_700_000_000_000, sid)
            == json.dumps([3, 17, 1_700_000_000_000, sid]).encode()
        )
        assert seen_at(id_value(3, 17, 5, sid), 3, 17) and not seen_at(
            id_value(3, 17, 5, sid), 3, 18
        )


@given(st.uuids())
def test_an_ids_key_is_its_canonical_text(event_id: uuid.UUID) -> None:
    # The seen-set's keys were written as str(event_id): a key written before this fast
    # path and one written after must be the same bytes, or a replay passes as new.
    assert id_key(event_id) == str(event_id).encode()
