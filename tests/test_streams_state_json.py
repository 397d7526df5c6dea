"""The fast state encoders write byte for byte what pydantic wrote (issue 10).

`SessionState.model_dump_json` and `WindowState.model_dump_json` are orjson over plain
values instead of a pydantic `TypeAdapter`; every stored changelog entry and partial must
stay the same bytes. Compared here against the `TypeAdapter` itself on states produced by
running disordered stub events through the logic, and on hand-made edge cases.
"""

from __future__ import annotations

import random
import zoneinfo
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from contract.records import MinuteCounts, SessionError
from ingest.events import EVENT_ADAPTER, Event
from platform_stub.generator import RunOptions, StubRun
from streams import minute_gate, partition, rollup, sessionizer
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streams.rollup import RollupPolicy, WindowState
from streams.sessionizer import SessionPolicy, SessionState

SESSION_ADAPTER: TypeAdapter[SessionState] = TypeAdapter(SessionState)
WINDOW_ADAPTER = TypeAdapter(rollup._StoredWindow)

SHORT = StreamsConfig(
    scan_step_ms=2_000,
    session=SessionPolicy(
        inactivity_timeout_ms=20_000, closed_retention_ms=90_000, max_seen_ids=64
    ),
    rollup=RollupPolicy(allowed_lateness_ms=10_000, closed_retention_ms=60_000),
)


def _pydantic_session(state: SessionState) -> str:
    return SESSION_ADAPTER.dump_json(state).decode()


def _pydantic_window(w: WindowState) -> str:
    # Not `w.values`: handing the counts out turns the window's JSON cache off, and the
    # comparison must see the cache at work.
    w._flush()
    stored = rollup._StoredWindow(
        w.window_start_ms,
        w.partial,
        w._values,
        w.closed,
        w.revision,
        w.late_events,
        w.touched_since_close,
    )
    return WINDOW_ADAPTER.dump_json(stored).decode()


def _check_session(state: SessionState) -> None:
    want = _pydantic_session(state)
    got = state.model_dump_json()
    assert got == want
    assert state.json_bytes() == want.encode()
    again = SessionState.model_validate_json(got)
    assert again.model_dump_json() == want


def _check_window(w: WindowState) -> None:
    got = w.model_dump_json()  # first: from the cache, if it holds anything stale
    want = _pydantic_window(w)
    assert got == want
    assert w.json_bytes() == want.encode()
    assert WindowState.model_validate_json(want).model_dump_json() == want


def _stub_events(seed: int, scenario: str, n: int) -> list[Event]:
    """Stub events as the validate step enriches them, with duplicates and late ones."""
    run = StubRun(
        RunOptions(seed=seed, members=800, rate=60, duration_s=900, scenario=scenario, max_events=n)
    )
    catalog = Catalog()
    events = [
        catalog.enrich(EVENT_ADAPTER.validate_json(line)) for b in run.batches() for line in b.lines
    ]
    rng = random.Random(seed)
    out = list(events)
    for _ in range(n // 40):  # duplicates, anywhere after the event
        i, j = sorted((rng.randrange(len(out)), rng.randrange(len(out))))
        out.insert(j, out[i])
    for _ in range(n // 40):  # events late by seconds to minutes of event time
        i = rng.randrange(len(out))
        out.insert(min(len(out), i + rng.choice((20, 500, 2_000))), out.pop(i))
    return out


@pytest.mark.parametrize(("seed", "scenario"), [(1, "normal"), (3, "oca_outage")])
def test_states_of_the_logic_are_written_as_pydantic_wrote_them(seed: int, scenario: str) -> None:
    events = _stub_events(seed, scenario, 6_000)
    counters: Counter[str] = Counter()
    part = partition.PartitionState(0, Checkpoint(), SHORT, partition.MemoryStore(), counters)
    out = partition.Published()
    checked = Counter[str]()
    for i, e in enumerate(events):
        part.apply(e, i if seed % 2 else None, out)
        part.done_with(i if seed % 2 else None, out)
        if i % 97 == 96:  # windows written between batches, their JSON cache at work
            for w in part.windows.values():
                _check_window(w)
                checked["windows"] += 1
                checked["cached windows"] += bool(w._json)
                checked["late windows"] += w.late_events > 0
        if i % 600 == 599:  # sessions as the worker writes them, mid-run
            for state in part.sessions.values():
                _check_session(state)
                checked["sessions"] += 1
                checked["errors"] += bool(state.errors)
                checked["closed"] += state.closed
                checked["tuples"] += bool(state.transitions)
    # The partials the scans published went through the same encoder.
    partials = [v for k, v in out.partials if not k.startswith(minute_gate.PROGRESS_KEY_PREFIX)]
    assert partials
    for value in partials:
        w = WindowState.model_validate_json(value)
        assert _pydantic_window(w).encode() == value
    assert checked["sessions"] > 1_000 and checked["windows"] > 10
    assert checked["errors"] > 0 and checked["closed"] > 0 and checked["tuples"] > 0
    assert checked["late windows"] > 0 and checked["cached windows"] > 10
    assert counters["qoe.summaries"] > 0


def test_session_edge_cases() -> None:
    state = SessionState(session_id='séance-✓-\U0001f600-"q"-\\-\u2028-\x01')
    _check_session(state)  # empty: defaults, nulls
    state.dims = {
        "member_id": "m-ü",
        "asn": 4_294_967_295,
        "genre": None,
        "ratio": 0.1,
        "big": 1e22,
        "tiny": 1.5e-7,
        "neg": -0.0,
        "dimensions": {"experiment": "ä/b", "variant": ""},
    }
    state.dims_from_ms = 0
    state.seen_ids = ["00000000000000ff", "é"]
    state.max_offset = 2**63 - 1
    state.bitrate_samples = [(1, 2), (3, 4)]
    state.transitions = [(1, 0, "start"), (2, 1, "paused")]
    state.ended_by = "timeout"
    state.closed = state.started = state.buffering = state.paused = state.ended = True
    state.exit_reason = "user_exit"
    state.fatal_code = "ф"
    state.revision, state.late_events = 3, -1
    # Caches that are never stored: set, and still left out.
    state.value_keys = ("all=all",)
    state.seen_filter = bytearray(256)
    _check_session(state)
    # Error times in every zone a parsed event can carry.
    parsed_utc = EVENT_ADAPTER.validate_json(
        b'{"event_id":"6f1e7a52-3f0e-4d1c-9a3e-1b2c3d4e5f60","event_type":"pause",'
        b'"event_time":"2026-01-01T00:00:00.5Z","session_id":"s","payload":{}}'
    ).event_time
    times = [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 7, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(0))),
        parsed_utc,
        # Not JSON's: an offset with seconds (pydantic drops them), written by pydantic.
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30))),
        datetime(2026, 1, 1),  # naive
    ]
    for at in times:
        state.errors = [
            SessionError(code="E-1", category="network", severity="fatal", at=at),
            SessionError(code="ü", category="drm", severity="warning", at=at, http_status=503),
        ]
        assert _pydantic_session(state) == state.model_dump_json()
    # Beyond what orjson writes (an int over 64 bits): pydantic writes it, same bytes.
    state.dims = {**state.dims, "huge": 2**70}
    assert _pydantic_session(state) == state.model_dump_json()
    # The dims are cached as JSON per dims object: a new dims object is written anew.
    state.dims = {"member_id": "other"}
    assert '"dims":{"member_id":"other"}' in state.model_dump_json()
    _check_session(state)


def test_window_edge_cases() -> None:
    w = WindowState(window_start_ms=1_764_000_000_000, partial="p3.late.x-ü")
    _check_window(w)  # no values
    c = w.counts("isp", "Télé-✓")
    c.startup.add(1234)
    c.startup.add(0.5)
    fields = c.__dict__
    fields["bitrate_kbps_ms"] = 5  # an int in a float field: written 5.0, as pydantic does
    fields["errors_by_code"] = {"E-ü": 2, "x": 1}
    d = w.counts("all", "all")
    s = d.startup.__dict__
    s["min"], s["max"], s["total"] = 7, 2**60, 3  # ints in the sketch's float fields
    d.startup.buckets[400] = 1
    d.__dict__["bitrate_kbps_ms"] = 1e22
    _check_window(w)
    w.closed, w.revision, w.late_events = True, 2, 5
    w.touched_since_close = ["isp=Télé-✓", "all=all"]
    _check_window(w)
    e = w.counts("os", "x").__dict__
    e["bitrate_kbps_ms"] = float("inf")  # written null, as pydantic does (not read back)
    assert w.model_dump_json() == _pydantic_window(w)
    assert '"bitrate_kbps_ms":null' in w.model_dump_json()


def test_a_counts_object_with_more_fields_is_written_by_pydantic() -> None:
    class Wider(MinuteCounts):
        note: str = "n"

    w = WindowState(window_start_ms=0, partial="p0", values={"all=all": Wider()})
    _check_window(w)


def test_a_window_written_between_every_change_is_written_as_pydantic_would() -> None:
    """The window's JSON cache, through each way its counts change: event increments
    (summed, then added), session ends, late events on a closed window."""
    events = _stub_events(2, "normal", 2_500)
    sessions: dict[str, SessionState] = {}
    w = WindowState(window_start_ms=0, partial="p0")
    ends = 0
    for i, e in enumerate(events):
        state = sessions.setdefault(e.session_id, SessionState(session_id=e.session_id))
        applied = sessionizer.apply(state, e, SHORT.session)
        if applied.duplicate:
            continue
        rollup.add_to(w, rollup.value_keys(state.dims), applied)
        ended = applied.closed_now and applied.summary is not None
        if ended:
            assert applied.summary is not None
            rollup.add_session_end(w, applied.summary)  # counts only its dims' keys
            ends += 1
        if ended or i % 10 == 0:
            _check_window(w)
            assert w._json  # the cache is on: the check above read from it
    assert ends >= 5
    late = next(iter(sessions.values()))
    rollups = rollup.close(w)  # the cache is let go from here on
    assert w._json is None
    rollup.add_to(w, rollup.value_keys(late.dims), sessionizer.Applied(watch_ms=5))
    _check_window(w)
    # The published rollups are copies: the late event left them alone.
    assert [r.counts for r in rollups] != [w._values[k] for k in sorted(w._values)]
    assert sum(r.counts.watch_ms for r in rollups) + 5 * 9 == sum(
        c.watch_ms for c in w._values.values()
    )
