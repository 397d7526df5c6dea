"""The fast pure logic publishes and stores exactly what the slow reference did (issue 10).

`tests/streams_reference` is the stream worker's logic as it was before it was made fast
(pydantic states mutated per event). Both run the same input through a `PartitionState`;
every published summary, rollup and detector partial, every counter, the checkpoint and
every state written at each batch's commit must be byte-identical.

The input is a stub run with disorder added by a seeded shuffle: duplicates, events late
by seconds to minutes (revisions of closed sessions and windows) and a few later than the
windows' retention (very-late partials), under short timeouts so every closing path runs.
Two drivers: the replay's (no offsets, states in memory) and the worker's (log offsets,
states written as JSON at every batch and parsed back from those bytes when next needed).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Protocol

import pytest

from ingest.events import EVENT_ADAPTER, Event
from platform_stub.generator import RunOptions, StubRun
from streams import partition as fast
from streams import rollup as fast_rollup
from streams import sessionizer as fast_sessionizer
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streams.rollup import RollupPolicy
from streams.sessionizer import SessionPolicy
from tests.streams_reference import partition as slow
from tests.streams_reference import rollup as slow_rollup
from tests.streams_reference import sessionizer as slow_sessionizer

SHORT = StreamsConfig(
    scan_step_ms=2_000,
    session=SessionPolicy(
        inactivity_timeout_ms=20_000, closed_retention_ms=90_000, max_seen_ids=64
    ),
    rollup=RollupPolicy(allowed_lateness_ms=10_000, closed_retention_ms=60_000),
)


def _events(seed: int, scenario: str, n: int) -> list[Event]:
    """Stub events, enriched as the validate hop forwards them, then disordered."""
    run = StubRun(
        RunOptions(
            seed=seed, members=1_500, rate=60, duration_s=900, scenario=scenario, max_events=n
        )
    )
    catalog = Catalog()
    events = [
        catalog.enrich(EVENT_ADAPTER.validate_json(line)) for b in run.batches() for line in b.lines
    ]
    rng = random.Random(seed)
    out: list[Event] = []
    delayed: list[tuple[int, Event]] = []
    for i, e in enumerate(events):
        r = rng.random()
        if r < 0.03:  # a duplicate, soon or much later
            delayed.append((i + rng.choice((1, 50, 3_000)), e))
        elif r < 0.06:  # late by a few events to a few minutes of event time
            delayed.append((i + rng.choice((5, 300, 2_000, 6_000)), e))
            continue
        elif r < 0.063:  # later than the windows' and sessions' retention
            delayed.append((i + 8_000, e))
            continue
        out.append(e)
        out.extend(d for at, d in delayed if at == i)
        delayed = [(at, d) for at, d in delayed if at != i]
    out.extend(d for _, d in sorted(delayed, key=lambda x: x[0]))
    return out


class _State(Protocol):
    def model_dump_json(self) -> str: ...


class JsonStore:
    """The worker's view of a store: states live as JSON bytes between batches."""

    def __init__(self, session_cls: Any, window_cls: Any) -> None:
        self.session_cls, self.window_cls = session_cls, window_cls
        self.sessions: dict[bytes, bytes] = {}
        self.windows: dict[bytes, bytes] = {}
        self.dirty_sessions: set[bytes] = set()
        self.dirty_windows: set[bytes] = set()

    def load_session(self, key: bytes) -> Any:
        raw = self.sessions.get(key)
        return self.session_cls.model_validate_json(raw) if raw else None

    def load_window(self, key: bytes) -> Any:
        raw = self.windows.get(key)
        return self.window_cls.model_validate_json(raw) if raw else None

    def touch_session(self, key: bytes) -> None:
        self.dirty_sessions.add(key)

    def touch_window(self, key: bytes) -> None:
        self.dirty_windows.add(key)

    def commit(self, part: Any) -> list[tuple[bytes, bytes]]:
        """Write what the batch touched (sorted, as bytes) and drop every parsed state."""
        written: list[tuple[bytes, bytes]] = []
        for dirty, mem, table in (
            (self.dirty_sessions, part.sessions, self.sessions),
            (self.dirty_windows, part.windows, self.windows),
        ):
            for key in sorted(dirty):
                state: _State | None = mem.get(key)
                value = state.model_dump_json().encode() if state is not None else b""
                table[key] = value
                written.append((key, value))
            dirty.clear()
            mem.clear()
        # As the worker's commit: what was forgotten is now stored as forgotten.
        part.forgotten_sessions.clear()
        part.forgotten_windows.clear()
        return written


def _drive(mod: Any, store: Any, events: list[Event], offsets: bool) -> list[Any]:
    """Everything observable of one run, batch by batch."""
    counters: Counter[str] = Counter()
    part = mod.PartitionState(3, Checkpoint(), SHORT, store, counters)
    out = mod.Published()
    seen: list[Any] = []
    for i, e in enumerate(events):
        offset = i if offsets else None
        part.apply(e, offset, out)
        part.done_with(offset, out)
        if i % 40 == 39 or i == len(events) - 1:
            seen.append([s.model_dump_json() for s in out.summaries])
            seen.append([r.model_dump_json() for r in out.rollups])
            seen.append(list(out.partials))
            out.clear()
            if isinstance(store, JsonStore):
                seen.append(store.commit(part))
            seen.append(part.cp.model_dump_json())
    part.cp.watermark_ms += 3_600_000
    part.scan(out)
    seen += [
        [s.model_dump_json() for s in out.summaries],
        [r.model_dump_json() for r in out.rollups],
    ]
    seen += [list(out.partials), dict(counters), sorted(part.session_index.items())]
    seen += [sorted(part.window_index.items()), sorted(part.forgotten_sessions)]
    seen.append(sorted(part.forgotten_windows))
    return seen


@pytest.mark.parametrize(
    ("seed", "scenario", "offsets"),
    [(1, "normal", False), (2, "isp_congestion", True), (3, "oca_outage", True)],
)
def test_fast_logic_publishes_and_stores_what_the_reference_did(
    seed: int, scenario: str, offsets: bool
) -> None:
    events = _events(seed, scenario, 14_000)
    for new_store, old_store in (
        (lambda: fast.MemoryStore(), lambda: slow.MemoryStore()),
        (
            lambda: JsonStore(fast_sessionizer.SessionState, fast_rollup.WindowState),
            lambda: JsonStore(slow_sessionizer.SessionState, slow_rollup.WindowState),
        ),
    ):
        got = _drive(fast, new_store(), events, offsets)
        want = _drive(slow, old_store(), events, offsets)
        assert len(got) == len(want)
        published = sum(len(x) for x in want if isinstance(x, list))
        assert published > 1_000  # the comparison covers real output
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"step {i} differs"


def test_the_disordered_input_exercises_every_closing_path() -> None:
    """The comparison above is only as good as its input: late, very late, duplicates."""
    events = _events(2, "isp_congestion", 14_000)
    counters: Counter[str] = Counter()
    part = slow.PartitionState(0, Checkpoint(), SHORT, slow.MemoryStore(), counters)
    out = slow.Published()
    for i, e in enumerate(events):
        part.apply(e, i, out)
        part.done_with(i, out)
    assert counters["qoe.duplicates"] > 100
    assert counters["qoe.very_late"] > 10
    assert sum(1 for s in out.summaries if s.revision > 0) > 100
    assert sum(1 for r in out.rollups if r.revision > 0) > 100
    assert sum(1 for r in out.rollups if ".late." in r.partial) > 10


def test_states_stored_by_the_reference_read_back_byte_for_byte() -> None:
    """Changelogs written before the speed-up (pydantic models) decode into the new state
    classes, and encode back to the very same bytes; unknown fields are still refused."""
    events = _events(1, "normal", 3_000)
    store = JsonStore(slow_sessionizer.SessionState, slow_rollup.WindowState)
    _drive(slow, store, events, offsets=True)
    stored = [(fast_sessionizer.SessionState, raw) for raw in store.sessions.values() if raw] + [
        (fast_rollup.WindowState, raw) for raw in store.windows.values() if raw
    ]
    assert len(stored) > 100
    for cls, raw in stored:
        assert cls.model_validate_json(raw).model_dump_json().encode() == raw
    with pytest.raises(ValueError, match="bogus"):
        fast_sessionizer.SessionState.model_validate_json(b'{"session_id":"s","bogus":1}')
    with pytest.raises(ValueError, match="bogus"):
        fast_rollup.WindowState.model_validate_json(
            b'{"window_start_ms":0,"partial":"p0","bogus":1}'
        )


def _published(config: StreamsConfig, events: list[Event], offsets: bool) -> tuple[Any, Any]:
    """What a partition publishes for `events`, and its session states at the end."""
    part = fast.PartitionState(3, Checkpoint(), config, fast.MemoryStore(), Counter())
    out = fast.Published()
    for i, e in enumerate(events):
        offset = i if offsets else None
        part.apply(e, offset, out)
        part.done_with(offset, out)
    part.cp.watermark_ms += 3_600_000
    part.scan(out)
    published = (
        [s.model_dump_json() for s in out.summaries],
        [r.model_dump_json() for r in out.rollups],
        list(out.partials),
    )
    return published, list(part.sessions.values())


def test_sessions_behind_the_validate_step_keep_no_ids_and_publish_what_replay_does() -> None:
    """The worker's sessions see only what its validate step forwards (every event id once)
    and keep no ids of their own; they publish exactly what the replay's sessions, which
    dedupe by id, publish for the same input."""
    events = _events(2, "isp_congestion", 14_000)
    forwarded: list[Event] = []
    ids: set[Any] = set()
    for e in events:
        if e.event_id not in ids:
            ids.add(e.event_id)
            forwarded.append(e)
    assert len(forwarded) < len(events) - 100  # the input had duplicates to remove

    worker, states = _published(SHORT.behind_id_dedupe(), forwarded, offsets=True)
    replayed, replay_states = _published(SHORT, forwarded, offsets=False)
    assert sum(len(x) for x in worker) > 1_000
    assert worker == replayed
    assert states and all(not s.seen_ids for s in states)
    assert any(s.seen_ids for s in replay_states)


def _published_committing_every(n: int | None, events: list[Event]) -> list[Any]:
    """What a worker-like partition publishes when it commits its states every `n` events
    (JSON in a store, parsed back when next needed); None: states never leave memory."""
    store: Any = (
        fast.MemoryStore()
        if n is None
        else JsonStore(fast_sessionizer.SessionState, fast_rollup.WindowState)
    )
    part = fast.PartitionState(3, Checkpoint(), SHORT, store, Counter())
    out = fast.Published()
    for i, e in enumerate(events):
        part.apply(e, i, out)
        part.done_with(i, out)
        if n is not None and i % n == n - 1:
            store.commit(part)
    part.cp.watermark_ms += 3_600_000
    part.scan(out)
    return [
        [s.model_dump_json() for s in out.summaries],
        [r.model_dump_json() for r in out.rollups],
        list(out.partials),
    ]


def test_what_is_published_does_not_depend_on_how_often_states_are_committed() -> None:
    """A replay after a crash commits at other points than the run it replaces, and the
    worker commits on a timer: neither may change what is published. (A session forgotten
    since the last commit used to come back from the store when one of its late events
    came before that commit, and only then.)"""
    events = _events(2, "isp_congestion", 14_000)
    in_memory = _published_committing_every(None, events)
    assert sum(len(x) for x in in_memory) > 1_000
    for n in (40, 1_000):
        assert _published_committing_every(n, events) == in_memory, f"committing every {n}"
