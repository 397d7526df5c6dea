"""Per-session state machine: events in (any order, duplicated) -> one SessionSummary out.

Pure logic, no Kafka: the Faust agent keeps one `SessionState` per session_id in a
changelogged table and calls `apply` / `expire`. A session closes on its first
`playback_end` or after `inactivity_timeout_ms` of event time without events. An event that
arrives after the close is still applied (it is real data), counted in `late_events`, and
produces a new `revision` of the summary, so the latest revision is always the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Annotated, Any, Literal

import orjson
from pydantic import ConfigDict, TypeAdapter
from pydantic import Field as PydanticField

from contract.fast_parse import PARSED_UTC
from ingest.events import (
    BitrateChange,
    Event,
    FirstFrame,
    Heartbeat,
    PlaybackEnd,
    PlaybackError,
    RebufferEnd,
)
from streams import metrics
from streams.records import EndedBy, SessionError, SessionSummary

# The error code of a fatal error whose code the player did not send (CMCD `sta=f`).
_UNKNOWN_CODE = "unknown"
# Event types that show the viewer is watching at that instant (counts towards concurrency).
_PLAYING_TYPES = frozenset({"first_frame", "resume", "rebuffer_end", "bitrate_change"})


@dataclass(frozen=True)
class SessionPolicy:
    """How sessions are closed and how much per-session state is kept."""

    inactivity_timeout_ms: int = 120_000
    closed_retention_ms: int = 30 * 60_000  # keep closed sessions to catch late events
    max_seen_ids: int = 20_000  # ~ a 2-day session at 10 s heartbeats
    max_errors: int = 100
    max_watch_gap_ms: int = 60_000  # longest gap between two events credited as watching
    max_minutes_tracked: int = 32


DEFAULT_POLICY = SessionPolicy()


# The epoch in the tzinfo pydantic gives every parsed UTC time: a difference of two
# datetimes with the same tzinfo object asks neither for its UTC offset (a call into
# pydantic's Rust per `timestamp()`), and is the timedelta `timestamp()` divides, so the
# result is the same float.
_PARSED_EPOCH = datetime(1970, 1, 1, tzinfo=PARSED_UTC)


def to_ms(t: datetime) -> int:
    """Epoch milliseconds of an aware datetime: `int(t.timestamp() * 1000)`."""
    if t.tzinfo is PARSED_UTC:  # nearly every event time
        return int((t - _PARSED_EPOCH).total_seconds() * 1000)
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def minute_of(ms: int) -> int:
    """Start (epoch ms) of the minute holding `ms`."""
    return ms - ms % 60_000


@dataclass(slots=True)
class SessionState:
    """Everything needed to summarise a session; JSON-serializable for the changelog.

    A plain dataclass, mutated per event at the cost of a Python attribute (a pydantic
    model's validating `__setattr__` was a fifth of the logic's time). Its JSON is what the
    pydantic model it replaces wrote, field for field (`model_dump_json` /
    `model_validate_json`, through a pydantic `TypeAdapter`), so changelogs written before
    read back unchanged.
    """

    # Arbitrary types: the `seen_filter` cache (never stored) is a bytearray.
    __pydantic_config__ = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    session_id: str
    dims: dict[str, Any] = field(default_factory=dict)
    dims_from_ms: int | None = None
    seen_ids: list[str] = field(default_factory=list)
    max_offset: int | None = None
    event_count: int = 0
    duplicates: int = 0
    first_event_ms: int = 0
    last_event_ms: int = 0
    play_requested_ms: int | None = None
    first_frame_ms: int | None = None
    reported_startup_ms: int | None = None
    first_fatal_ms: int | None = None
    fatal_code: str | None = None
    errors: list[SessionError] = field(default_factory=list)
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    pauses: int = 0
    seeks: int = 0
    upshifts: int = 0
    downshifts: int = 0
    bitrate_samples: list[tuple[int, int]] = field(default_factory=list)
    # (event time, arrival seq, mark) marks: order-independent watch time and bitrate.
    transitions: list[tuple[int, int, str]] = field(default_factory=list)
    ended_ms: int | None = None
    exit_reason: str | None = None
    player_watched_ms: int | None = None
    # In-order clock for estimating watch time when the player never reports it.
    clock_ms: int | None = None
    started: bool = False
    buffering: bool = False
    paused: bool = False
    ended: bool = False
    current_kbps: int | None = None
    watch_est_ms: int = 0
    active_minutes: list[int] = field(default_factory=list)
    playing_minutes: list[int] = field(default_factory=list)
    rebuffer_minutes: list[int] = field(default_factory=list)
    # Closing.
    closed: bool = False
    ended_by: EndedBy | None = None
    revision: int = -1
    late_events: int = 0
    # Not stored: the rollup's value keys of `dims` (`streams.rollup.value_keys`), derived
    # once per dims instead of once per event.
    value_keys: Annotated[tuple[str, ...] | None, PydanticField(exclude=True)] = field(
        default=None, init=False, repr=False, compare=False
    )
    # Not stored: how many of `seen_ids` fall in each of 256 hash slots (`_seen_filter`).
    seen_filter: Annotated[bytearray | None, PydanticField(exclude=True)] = field(
        default=None, init=False, repr=False, compare=False
    )
    # Not stored: `dims` and its JSON (`dump_state_json`), written once per dims object
    # (`_count` replaces `dims` when it changes, never changes it in place).
    dims_json: Annotated[tuple[dict[str, Any], Any] | None, PydanticField(exclude=True)] = field(
        default=None, init=False, repr=False, compare=False
    )

    def model_dump_json(self) -> str:
        """The state's JSON, as the changelog stores it."""
        return self.json_bytes().decode()

    def json_bytes(self) -> bytes:
        """`model_dump_json()` as bytes (what a changelog entry holds), without the str."""
        return dump_state_json(self)

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> SessionState:
        """A state from its JSON (checked: unknown fields are an error)."""
        return _SESSION_JSON.validate_json(data)


_SESSION_JSON: TypeAdapter[SessionState] = TypeAdapter(SessionState)
_NOT_STORED = frozenset({"value_keys", "seen_filter", "dims_json"})

# The stored fields, in the order pydantic writes them (the caches below `late_events` are
# not stored).
_STORED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(SessionState) if f.name not in _NOT_STORED
)
# `Z` for a UTC time, as pydantic writes it (a dict key that is not a string is an error,
# orjson's default: the state has none).
_JSON_OPTIONS = orjson.OPT_UTC_Z


def dump_state_json(state: SessionState) -> bytes:
    """The state's JSON, byte for byte what `TypeAdapter(SessionState).dump_json` writes.

    Every state a batch touches is written to the changelog, and the pydantic serializer
    walking the dataclass (its `Any` dims above all) was a tenth of the worker's time.
    Every stored field is a JSON value that orjson writes the way pydantic does (compact,
    non-ASCII as UTF-8, tuples as arrays, `Z` for UTC) but the errors, pydantic models
    given as dicts here; the dims, which change a few times per session, are written once
    per dims object. Anything orjson refuses (an int beyond 64 bits, a value of another
    type) is written by pydantic itself, so the bytes never change;
    `tests/test_streams_state_json.py` compares the two on many states.
    """
    cached = state.dims_json
    if cached is None or cached[0] is not state.dims:
        try:
            cached = state.dims_json = (state.dims, orjson.Fragment(orjson.dumps(state.dims)))
        except TypeError:  # orjson.JSONEncodeError is one
            return _SESSION_JSON.dump_json(state)
    errors: list[Any] = state.errors
    if errors:
        errors = [_error_doc(e) for e in errors]
        if None in errors:
            return _SESSION_JSON.dump_json(state)
    s = state
    # The stored fields in their order (`_STORED_FIELDS`; checked below, at import).
    doc = {
        "session_id": s.session_id,
        "dims": cached[1],
        "dims_from_ms": s.dims_from_ms,
        "seen_ids": s.seen_ids,
        "max_offset": s.max_offset,
        "event_count": s.event_count,
        "duplicates": s.duplicates,
        "first_event_ms": s.first_event_ms,
        "last_event_ms": s.last_event_ms,
        "play_requested_ms": s.play_requested_ms,
        "first_frame_ms": s.first_frame_ms,
        "reported_startup_ms": s.reported_startup_ms,
        "first_fatal_ms": s.first_fatal_ms,
        "fatal_code": s.fatal_code,
        "errors": errors,
        "rebuffer_ms": s.rebuffer_ms,
        "rebuffer_count": s.rebuffer_count,
        "pauses": s.pauses,
        "seeks": s.seeks,
        "upshifts": s.upshifts,
        "downshifts": s.downshifts,
        "bitrate_samples": s.bitrate_samples,
        "transitions": s.transitions,
        "ended_ms": s.ended_ms,
        "exit_reason": s.exit_reason,
        "player_watched_ms": s.player_watched_ms,
        "clock_ms": s.clock_ms,
        "started": s.started,
        "buffering": s.buffering,
        "paused": s.paused,
        "ended": s.ended,
        "current_kbps": s.current_kbps,
        "watch_est_ms": s.watch_est_ms,
        "active_minutes": s.active_minutes,
        "playing_minutes": s.playing_minutes,
        "rebuffer_minutes": s.rebuffer_minutes,
        "closed": s.closed,
        "ended_by": s.ended_by,
        "revision": s.revision,
        "late_events": s.late_events,
    }
    try:
        return orjson.dumps(doc, option=_JSON_OPTIONS)
    except TypeError:
        return _SESSION_JSON.dump_json(state)


def _error_doc(e: SessionError) -> dict[str, Any] | None:
    """A `SessionError`'s fields for orjson, None when orjson would not write `at` as
    pydantic does (an offset with seconds, which times read from JSON never carry)."""
    offset = e.at.utcoffset()
    if offset is not None and offset % _MINUTE:
        return None
    return dict(zip(_ERROR_FIELDS, _error_values(e), strict=True))


_MINUTE = timedelta(minutes=1)
_ERROR_FIELDS: tuple[str, ...] = tuple(SessionError.model_fields)
_error_values = attrgetter(*_ERROR_FIELDS)
if tuple(orjson.loads(dump_state_json(SessionState(session_id="")))) != _STORED_FIELDS:
    raise RuntimeError("dump_state_json must write every stored field of SessionState, in order")


@dataclass
class Applied:
    """What one event changed: the increments a minute rollup needs, and any summary.

    `apply` makes one per event with `_new_applied`: the defaults are class attributes,
    so only what an event changes is stored on the instance.
    """

    duplicate: bool = False
    late: bool = False
    new_play: bool = False
    new_active_minute: bool = False
    new_playing_minute: bool = False
    new_failure: bool = False
    new_start_failure: bool = False
    new_rebuffer_minute: bool = False
    startup_ms: int | None = None
    watch_ms: int = 0
    bitrate_kbps: int | None = None
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    upshift: int = 0
    downshift: int = 0
    error_code: str | None = None
    closed_now: bool = False
    summary: SessionSummary | None = None


def _new_applied() -> Applied:
    """An `Applied` at its defaults, without running the 18-field `__init__` (per event)."""
    return object.__new__(Applied)


def _envelope_dims(event: Event) -> dict[str, Any]:
    d, n = event.device, event.network
    enrichment = event.extra.get("enrichment") if isinstance(event.extra, dict) else None
    enrichment = enrichment if isinstance(enrichment, dict) else {}
    return {
        "member_id": event.member_id,
        "profile_id": event.profile_id,
        "title_id": event.title_id,
        "device_id": d.device_id,
        "device_type": d.device_type,
        "device_model": d.device_model,
        "os": d.os,
        "app_version": d.app_version,
        "country": n.country,
        "region": n.region,
        "isp": n.isp,
        "asn": n.asn,
        "oca_id": n.oca_id,
        "cdn_tier": n.cdn_tier,
        "connection_type": n.connection_type,
        "genre": enrichment.get("genre"),
        "device_family": enrichment.get("device_family"),
        "oca_site": enrichment.get("oca_site"),
        "dimensions": dict(event.dimensions),
    }


def _mark_minute(minutes: list[int], minute: int, keep: int) -> bool:
    if (minutes and minutes[-1] == minute) or minute in minutes:  # the newest, most often
        return False
    minutes.append(minute)
    if len(minutes) > 1 and minutes[-2] > minute:
        minutes.sort()
    del minutes[:-keep]
    return True


def new_state(session_id: str) -> SessionState:
    """An empty state for a session."""
    return SessionState(session_id=session_id)


def apply(
    state: SessionState,
    event: Event,
    policy: SessionPolicy = DEFAULT_POLICY,
    offset: int | None = None,
    t: int | None = None,
) -> Applied:
    """Apply one event to `state` (mutated in place) and say what changed.

    Duplicates are recognised two ways: by event id (up to `policy.max_seen_ids` kept per
    session; 0 turns it off), and, when the caller passes the event's log `offset` in its
    partition, by offset: an event at or below the highest applied offset is a replay
    after a restart. The offset check costs O(1) state, which is what the stream worker
    uses once the validate stage has removed duplicate event ids.

    With offsets, a duplicate is the pipeline's own redelivery (a replay after a crash, or
    an event forwarded twice by a validate stage that crashed before recording it): it is
    dropped without a trace, so a crash changes nothing in the summary. `duplicates` (the
    summary's `duplicate_events`) counts the input's duplicates only without offsets.

    `t` is the event time in epoch ms (`to_ms(event.event_time)`) when the caller has it.
    """
    if _is_duplicate(state, event, policy, offset):
        return Applied(duplicate=True)
    if t is None:
        t = to_ms(event.event_time)
    late = state.closed
    etype = event.event_type
    _count(state, event, etype, t)
    minute = t - t % 60_000
    a = _new_applied()
    if late:
        a.late = True
    a.new_active_minute = _mark_minute(state.active_minutes, minute, policy.max_minutes_tracked)
    a.bitrate_kbps = state.current_kbps
    # The in-order clock: watch time credited since the previous in-order event (if playing).
    clock = state.clock_ms
    in_order = clock is None or t >= clock
    if in_order:
        if clock is not None and _playing(state):
            a.watch_ms = min(t - clock, policy.max_watch_gap_ms)
            state.watch_est_ms += a.watch_ms
        state.clock_ms = t
    payload = event.payload
    if etype == "heartbeat":  # most events: inline
        assert isinstance(payload, Heartbeat)
        mark, playing_now = _on_heartbeat(state, payload, t, in_order)
    else:
        mark = _PAYLOAD_STEPS[etype](state, event, t, minute, in_order, policy, a)
        playing_now = etype in _PLAYING_TYPES
    if mark is not None:
        state.transitions.append((t, state.event_count, mark))
        if in_order:
            _set_flag(state, mark)
    if playing_now:
        a.new_playing_minute = _mark_minute(
            state.playing_minutes, minute, policy.max_minutes_tracked
        )
    if late:
        state.late_events += 1
        # A late playback_end still tells how the session really ended.
        ended_by: EndedBy = (
            "playback_end" if etype == "playback_end" else (state.ended_by or "timeout")
        )
        a.summary = _close(state, ended_by)
    elif etype == "playback_end":
        a.closed_now = True
        a.summary = _close(state, "playback_end")
    return a


# Seen ids are checked through a counting filter when a session keeps few enough of them
# (the worker keeps 64) for a slot's count to fit a byte.
_FILTER_SLOTS = 256
_FILTER_MAX_IDS = 255


def _seen_filter(seen: list[str]) -> bytearray:
    """Per hash slot, how many of `seen` fall in it: a slot at 0 rules an id out without
    scanning the list (which was a tenth of the logic's time), at ~300 bytes a session."""
    slots = bytearray(_FILTER_SLOTS)
    for eid in seen:
        slots[hash(eid) & (_FILTER_SLOTS - 1)] += 1
    return slots


def _is_duplicate(
    state: SessionState, event: Event, policy: SessionPolicy, offset: int | None
) -> bool:
    """Whether the event was applied already (by offset, else by id); records it if not."""
    if offset is not None:
        if state.max_offset is not None and offset <= state.max_offset:
            return True
        state.max_offset = offset
    keep = policy.max_seen_ids
    if keep <= 0:
        return False
    # 60 random bits of the UUID are plenty within one session and keep state small.
    eid = f"{event.event_id.int >> 64:016x}"  # the hex's first 16 digits
    seen = state.seen_ids
    if keep > _FILTER_MAX_IDS:
        maybe = True
        slots = None
    else:
        slots = state.seen_filter
        if slots is None:
            slots = state.seen_filter = _seen_filter(seen)
        slot = hash(eid) & (_FILTER_SLOTS - 1)
        maybe = slots[slot] > 0
    if maybe and eid in seen:
        if offset is None:
            state.duplicates += 1
        return True
    seen.append(eid)
    if slots is not None:
        slots[slot] += 1
    if len(seen) > keep:
        if slots is not None:
            for old in seen[:-keep]:
                slots[hash(old) & (_FILTER_SLOTS - 1)] -= 1
        del seen[:-keep]
    return False


def _count(state: SessionState, event: Event, etype: str, t: int) -> None:
    """Event count, first/last event time, and the dimensions of the earliest event."""
    if state.event_count == 0:
        state.first_event_ms = state.last_event_ms = t
    state.event_count += 1
    if t < state.first_event_ms:
        state.first_event_ms = t
    if t > state.last_event_ms:
        state.last_event_ms = t
    # Dimensions come from the earliest event (normally play_requested).
    if state.dims_from_ms is None or t < state.dims_from_ms or etype == "play_requested":
        state.dims = _envelope_dims(event)
        state.dims_from_ms = t
        state.value_keys = None


def _on_heartbeat(
    st: SessionState, p: Heartbeat, t: int, in_order: bool
) -> tuple[str | None, bool]:
    """(mark, playing now) of a heartbeat."""
    # Heartbeats repeat what is already known most of the time; in order, only a change
    # is worth a sample or a mark (the timeline result is the same).
    kbps = p.bitrate_kbps
    if kbps is not None:
        if not in_order or kbps != st.current_kbps:
            st.bitrate_samples.append((t, kbps))
        if in_order:
            st.current_kbps = kbps
    playing = p.playing
    # playing None: the player did not say (a CMCD report without a state).
    if playing is None:
        return None, _playing(st)
    if not in_order or playing == st.paused:
        return ("resumed" if playing else "paused"), bool(playing)
    return None, bool(playing)


# What an event type's payload does to a session beyond what `apply` does for every event:
# (state, event, t, minute, in order, policy, what changed) -> the timeline mark, if any.
_Step = Callable[
    [SessionState, Event, int, int, bool, SessionPolicy, Applied], "metrics.Mark | None"
]


def _on_play_requested(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    a.new_play = st.play_requested_ms is None
    st.play_requested_ms = t if st.play_requested_ms is None else min(t, st.play_requested_ms)
    return None


def _on_first_frame(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    p = e.payload
    assert isinstance(p, FirstFrame)
    if st.first_frame_ms is None:
        # A player that cannot measure startup (CMCD) leaves it null: the event times
        # tell it (play_requested -> first_frame).
        a.startup_ms = metrics.startup_ms(st.play_requested_ms, t, p.startup_ms)
        st.reported_startup_ms = p.startup_ms
        st.first_frame_ms = t
    elif t < st.first_frame_ms:
        st.first_frame_ms = t
    if p.bitrate_kbps is not None:
        st.bitrate_samples.append((t, p.bitrate_kbps))
        if in_order:
            st.current_kbps = p.bitrate_kbps
    return "start"


def _on_bitrate_change(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    p = e.payload
    assert isinstance(p, BitrateChange)
    st.bitrate_samples.append((t, p.to_kbps))
    # An unknown starting rendition (CMCD) falls back to the last one seen.
    from_kbps = p.from_kbps if p.from_kbps is not None else st.current_kbps
    shifts = [] if from_kbps is None else [(from_kbps, p.to_kbps)]
    a.upshift, a.downshift = metrics.shift_counts(shifts)
    st.upshifts += a.upshift
    st.downshifts += a.downshift
    if in_order:
        st.current_kbps = p.to_kbps
    return None


def _on_rebuffer_end(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    p = e.payload
    assert isinstance(p, RebufferEnd)
    duration = p.duration_ms
    if duration is None:
        # Not reported (CMCD): from the stall's own start, when it was seen.
        duration = _since_last_mark(st, t, "buffering")
    st.rebuffer_ms += duration
    st.rebuffer_count += 1
    a.rebuffer_ms, a.rebuffer_count = duration, 1
    # Sessions, not stalls, are the unit of "how many viewers stalled".
    a.new_rebuffer_minute = _mark_minute(st.rebuffer_minutes, m, pol.max_minutes_tracked)
    return "buffered"


def _on_error(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    p = e.payload
    assert isinstance(p, PlaybackError)
    a.error_code = p.code
    if len(st.errors) < pol.max_errors:
        st.errors.append(
            SessionError(
                code=p.code,
                category=p.category,
                severity=p.severity,
                at=e.event_time,
                http_status=p.http_status,
            )
        )
    if p.severity != "fatal":
        return None
    if st.first_fatal_ms is None:
        a.new_failure = True
        a.new_start_failure = st.first_frame_ms is None
    if st.first_fatal_ms is None or t < st.first_fatal_ms:
        st.first_fatal_ms = t
        st.fatal_code = p.code
    elif st.fatal_code == _UNKNOWN_CODE and p.code != _UNKNOWN_CODE:
        # A failed state reported without its code (CMCD), then the code itself.
        st.fatal_code = p.code
    return "end"


def _on_playback_end(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    p = e.payload
    assert isinstance(p, PlaybackEnd)
    if st.ended_ms is None or t > st.ended_ms:
        st.ended_ms = t
        st.exit_reason = p.exit_reason
        st.player_watched_ms = p.watched_ms
    return "end"


def _on_pause(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    st.pauses += 1
    return "paused"


def _on_seek(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    st.seeks += 1
    return "seek"  # no effect on playing; where unreported buffering starts


def _mark_only(mark: metrics.Mark) -> _Step:
    def step_of(
        st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
    ) -> metrics.Mark | None:
        return mark

    return step_of


def _nothing(
    st: SessionState, e: Event, t: int, m: int, in_order: bool, pol: SessionPolicy, a: Applied
) -> metrics.Mark | None:
    return None


# What each event type's payload does to a session (one function per type; heartbeats,
# most of the events, are applied inline by `apply`).
_PAYLOAD_STEPS: dict[str, _Step] = {
    "play_requested": _on_play_requested,
    "manifest_loaded": _nothing,
    "license_acquired": _nothing,
    "first_frame": _on_first_frame,
    "bitrate_change": _on_bitrate_change,
    "rebuffer_start": _mark_only("buffering"),
    "rebuffer_end": _on_rebuffer_end,
    "pause": _on_pause,
    "resume": _mark_only("resumed"),
    "seek": _on_seek,
    "error": _on_error,
    "playback_end": _on_playback_end,
}


def _since_last_mark(state: SessionState, t: int, mark: str) -> int:
    """Milliseconds from the latest `mark` at or before `t` (0 when there is none)."""
    starts = [at for at, _, m in state.transitions if m == mark and at <= t]
    return t - max(starts) if starts else 0


def _playing(state: SessionState) -> bool:
    return state.started and not (state.buffering or state.paused or state.ended)


def _set_flag(state: SessionState, mark: str) -> None:
    if mark == "start":
        state.started = True
    elif mark in ("buffering", "buffered"):
        state.buffering = mark == "buffering"
    elif mark in ("paused", "resumed"):
        state.paused = mark == "paused"
    elif mark == "end":
        state.ended = True


def expire(
    state: SessionState, watermark_ms: int, policy: SessionPolicy = DEFAULT_POLICY
) -> SessionSummary | None:
    """Close an open session idle for the inactivity timeout (event time); else None."""
    if state.closed or state.event_count == 0:
        return None
    if state.last_event_ms + policy.inactivity_timeout_ms > watermark_ms:
        return None
    return _close(state, "timeout")


def forgettable(
    state: SessionState, watermark_ms: int, policy: SessionPolicy = DEFAULT_POLICY
) -> bool:
    """True when a closed session is past its retention and its state can be deleted."""
    return state.closed and state.last_event_ms + policy.closed_retention_ms <= watermark_ms


def _close(state: SessionState, ended_by: EndedBy) -> SessionSummary:
    state.closed = True
    state.ended_by = ended_by
    state.revision += 1
    return summarize(state)


def summarize(state: SessionState) -> SessionSummary:
    """The summary of a session as it stands now."""
    end_ms = state.ended_ms if state.ended_ms is not None else state.last_event_ms
    playing = metrics.playing_intervals(state.transitions, end_ms)
    watch_source: Literal["player", "estimated"]
    if state.player_watched_ms is not None:
        watch_ms, watch_source = state.player_watched_ms, "player"
    else:
        watch_ms, watch_source = sum(e - s for s, e in playing), "estimated"
    outcome = metrics.start_outcome(
        state.play_requested_ms is not None, state.first_frame_ms, state.first_fatal_ms
    )
    failed = metrics.playback_failed(state.first_fatal_ms)
    startup = (
        metrics.startup_ms(state.play_requested_ms, state.first_frame_ms, state.reported_startup_ms)
        if state.first_frame_ms is not None
        else None
    )
    if state.player_watched_ms is not None:
        seeks = [t for t, _, mark in state.transitions if mark == "seek"]
        playing = metrics.trim_seek_buffering(playing, seeks, state.player_watched_ms)
    avg_kbps = metrics.time_weighted_bitrate(state.bitrate_samples, end_ms, playing)
    d = state.dims
    scores = metrics.session_scores(
        startup=startup,
        rebuffer_ms=state.rebuffer_ms,
        watch_ms=watch_ms,
        rebuffer_count=state.rebuffer_count,
        avg_kbps=avg_kbps,
        device_type=str(d.get("device_type", "")),
        outcome=outcome,
        failed=failed,
    )
    return SessionSummary(
        session_id=state.session_id,
        revision=max(state.revision, 0),
        ended_by=state.ended_by or "timeout",
        late_events=state.late_events,
        duplicate_events=state.duplicates,
        event_count=state.event_count,
        **d,
        first_event_at=from_ms(state.first_event_ms),
        last_event_at=from_ms(state.last_event_ms),
        play_requested_at=_opt(state.play_requested_ms),
        first_frame_at=_opt(state.first_frame_ms),
        ended_at=_opt(state.ended_ms),
        exit_reason=state.exit_reason,
        start_outcome=outcome,
        playback_failed=failed,
        in_play_failure=metrics.in_play_failure(state.first_frame_ms, state.first_fatal_ms),
        startup_ms=startup,
        watch_ms=watch_ms,
        watch_source=watch_source,
        rebuffer_ms=state.rebuffer_ms,
        rebuffer_count=state.rebuffer_count,
        rebuffer_pct=metrics.rebuffer_pct(state.rebuffer_ms, watch_ms),
        rebuffers_per_minute=metrics.rebuffer_per_minute(state.rebuffer_count, watch_ms),
        avg_bitrate_kbps=avg_kbps,
        upshifts=state.upshifts,
        downshifts=state.downshifts,
        pauses=state.pauses,
        seeks=state.seeks,
        fatal_error_code=state.fatal_code,
        errors=sorted(state.errors, key=lambda e: e.at),
        score_startup=scores.startup,
        score_smoothness=scores.smoothness,
        score_quality=scores.quality,
        score_success=scores.success,
        score_aggregate=scores.aggregate,
    )


def _opt(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


class Sessionizer:
    """In-memory driver over many sessions (tests, benchmarks, replay tools).

    The Faust app does the same with a table instead of a dict.
    """

    def __init__(self, policy: SessionPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.states: dict[str, SessionState] = {}
        self.watermark_ms = 0

    def feed(self, event: Event) -> Applied:
        """Apply one event; the caller collects `summary` when set."""
        state = self.states.get(event.session_id)
        if state is None:
            state = self.states[event.session_id] = new_state(event.session_id)
        self.watermark_ms = max(self.watermark_ms, to_ms(event.event_time))
        return apply(state, event, self.policy)

    def advance(self, watermark_ms: int | None = None) -> list[SessionSummary]:
        """Close idle sessions and forget old closed ones; returns the new summaries."""
        if watermark_ms is not None:
            self.watermark_ms = max(self.watermark_ms, watermark_ms)
        out: list[SessionSummary] = []
        for sid in list(self.states):
            st = self.states[sid]
            summary = expire(st, self.watermark_ms, self.policy)
            if summary is not None:
                out.append(summary)
            elif forgettable(st, self.watermark_ms, self.policy):
                del self.states[sid]
        return out
