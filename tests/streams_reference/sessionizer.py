"""Per-session state machine: events in (any order, duplicated) -> one SessionSummary out.

Pure logic, no Kafka: the Faust agent keeps one `SessionState` per session_id in a
changelogged table and calls `apply` / `expire`. A session closes on its first
`playback_end` or after `inactivity_timeout_ms` of event time without events. An event that
arrives after the close is still applied (it is real data), counted in `late_events`, and
produces a new `revision` of the summary, so the latest revision is always the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
from streams.sessionizer import SessionPolicy

# The error code of a fatal error whose code the player did not send (CMCD `sta=f`).
_UNKNOWN_CODE = "unknown"
# Event types that show the viewer is watching at that instant (counts towards concurrency).
_PLAYING_TYPES = frozenset({"first_frame", "resume", "rebuffer_end", "bitrate_change"})


DEFAULT_POLICY = SessionPolicy()


def to_ms(t: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def minute_of(ms: int) -> int:
    """Start (epoch ms) of the minute holding `ms`."""
    return ms - ms % 60_000


class SessionState(BaseModel):
    """Everything needed to summarise a session; JSON-serializable for the changelog."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    dims: dict[str, Any] = Field(default_factory=dict)
    dims_from_ms: int | None = None
    seen_ids: list[str] = Field(default_factory=list)
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
    errors: list[SessionError] = Field(default_factory=list)
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    pauses: int = 0
    seeks: int = 0
    upshifts: int = 0
    downshifts: int = 0
    bitrate_samples: list[tuple[int, int]] = Field(default_factory=list)
    # (event time, arrival seq, mark) marks: order-independent watch time and bitrate.
    transitions: list[tuple[int, int, str]] = Field(default_factory=list)
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
    active_minutes: list[int] = Field(default_factory=list)
    playing_minutes: list[int] = Field(default_factory=list)
    rebuffer_minutes: list[int] = Field(default_factory=list)
    # Closing.
    closed: bool = False
    ended_by: EndedBy | None = None
    revision: int = -1
    late_events: int = 0


@dataclass(frozen=True)
class Applied:
    """What one event changed: the increments a minute rollup needs, and any summary."""

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


_DUPLICATE = Applied(duplicate=True)


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
    if minute in minutes:
        return False
    minutes.append(minute)
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
    """
    if _is_duplicate(state, event, policy, offset):
        return _DUPLICATE
    t = to_ms(event.event_time)
    late = state.closed
    _count(state, event, t)
    minute = minute_of(t)
    new_active = _mark_minute(state.active_minutes, minute, policy.max_minutes_tracked)
    watch_kbps = state.current_kbps
    watch, in_order = _advance_clock(state, t, policy)
    step = _Step(playing_now=event.event_type in _PLAYING_TYPES)
    _PAYLOAD_STEPS[event.payload.event_type](_Ctx(state, event, t, minute, in_order, policy), step)
    for mark in step.marks:
        state.transitions.append((t, state.event_count, mark))
        if in_order:
            _set_flag(state, mark)
    new_playing = step.playing_now and _mark_minute(
        state.playing_minutes, minute, policy.max_minutes_tracked
    )
    closed_now, summary = _closing(state, event, late)
    return Applied(
        late=late,
        new_play=step.new_play,
        new_active_minute=new_active,
        new_playing_minute=new_playing,
        new_failure=step.new_failure,
        new_start_failure=step.new_start_failure,
        new_rebuffer_minute=step.new_rebuffer_minute,
        startup_ms=step.startup_ms,
        watch_ms=watch,
        bitrate_kbps=watch_kbps,
        rebuffer_ms=step.rebuffer_ms,
        rebuffer_count=step.rebuffer_count,
        upshift=step.upshift,
        downshift=step.downshift,
        error_code=step.error_code,
        closed_now=closed_now,
        summary=summary,
    )


@dataclass
class _Step:
    """What an event's payload changed beyond the session state (typed, for `Applied`)."""

    playing_now: bool
    marks: list[metrics.Mark] = field(default_factory=list)
    new_play: bool = False
    startup_ms: int | None = None
    upshift: int = 0
    downshift: int = 0
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    new_rebuffer_minute: bool = False
    error_code: str | None = None
    new_failure: bool = False
    new_start_failure: bool = False


@dataclass(frozen=True)
class _Ctx:
    """One event being applied: the state, the event and what `apply` derived from it."""

    state: SessionState
    event: Event
    t: int
    minute: int
    in_order: bool
    policy: SessionPolicy


def _is_duplicate(
    state: SessionState, event: Event, policy: SessionPolicy, offset: int | None
) -> bool:
    """Whether the event was applied already (by offset, else by id); records it if not."""
    if offset is not None:
        if state.max_offset is not None and offset <= state.max_offset:
            return True
        state.max_offset = offset
    if policy.max_seen_ids > 0:
        # 60 random bits of the UUID are plenty within one session and keep state small.
        eid = event.event_id.hex[:16]
        if eid in state.seen_ids:
            if offset is None:
                state.duplicates += 1
            return True
        state.seen_ids.append(eid)
        del state.seen_ids[: -policy.max_seen_ids]
    return False


def _count(state: SessionState, event: Event, t: int) -> None:
    """Event count, first/last event time, and the dimensions of the earliest event."""
    if state.event_count == 0:
        state.first_event_ms = state.last_event_ms = t
    state.event_count += 1
    state.first_event_ms = min(state.first_event_ms, t)
    state.last_event_ms = max(state.last_event_ms, t)
    # Dimensions come from the earliest event (normally play_requested).
    if state.dims_from_ms is None or t < state.dims_from_ms or event.event_type == "play_requested":
        state.dims = _envelope_dims(event)
        state.dims_from_ms = t


def _advance_clock(state: SessionState, t: int, policy: SessionPolicy) -> tuple[int, bool]:
    """Watch time credited since the previous in-order event (if playing), and whether
    this event is in order."""
    if state.clock_ms is not None and t < state.clock_ms:
        return 0, False
    watch = 0
    if state.clock_ms is not None and _playing(state):
        watch = min(t - state.clock_ms, policy.max_watch_gap_ms)
        state.watch_est_ms += watch
    state.clock_ms = t
    return watch, True


def _closing(state: SessionState, event: Event, late: bool) -> tuple[bool, SessionSummary | None]:
    """(closed by this event, the summary to publish): a playback_end closes; an event
    after the close publishes a new revision."""
    ends = event.payload.event_type == "playback_end"
    if late:
        state.late_events += 1
        # A late playback_end still tells how the session really ended.
        ended_by: EndedBy = "playback_end" if ends else (state.ended_by or "timeout")
        return False, _close(state, ended_by)
    if ends:
        return True, _close(state, "playback_end")
    return False, None


def _on_play_requested(c: _Ctx, step: _Step) -> None:
    st = c.state
    step.new_play = st.play_requested_ms is None
    st.play_requested_ms = c.t if st.play_requested_ms is None else min(c.t, st.play_requested_ms)


def _on_first_frame(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, FirstFrame)
    if st.first_frame_ms is None:
        # A player that cannot measure startup (CMCD) leaves it null: the event times
        # tell it (play_requested -> first_frame).
        step.startup_ms = metrics.startup_ms(st.play_requested_ms, c.t, p.startup_ms)
        st.reported_startup_ms = p.startup_ms
        st.first_frame_ms = c.t
    elif c.t < st.first_frame_ms:
        st.first_frame_ms = c.t
    if p.bitrate_kbps is not None:
        st.bitrate_samples.append((c.t, p.bitrate_kbps))
        if c.in_order:
            st.current_kbps = p.bitrate_kbps
    step.marks.append("start")


def _on_heartbeat(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, Heartbeat)
    # Heartbeats repeat what is already known most of the time; in order, only a change
    # is worth a sample or a mark (the timeline result is the same).
    if p.bitrate_kbps is not None:
        if not c.in_order or p.bitrate_kbps != st.current_kbps:
            st.bitrate_samples.append((c.t, p.bitrate_kbps))
        if c.in_order:
            st.current_kbps = p.bitrate_kbps
    # playing None: the player did not say (a CMCD report without a state).
    step.playing_now = bool(p.playing) if p.playing is not None else _playing(st)
    if p.playing is not None and (not c.in_order or p.playing == st.paused):
        step.marks.append("resumed" if p.playing else "paused")


def _on_bitrate_change(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, BitrateChange)
    st.bitrate_samples.append((c.t, p.to_kbps))
    # An unknown starting rendition (CMCD) falls back to the last one seen.
    from_kbps = p.from_kbps if p.from_kbps is not None else st.current_kbps
    shifts = [] if from_kbps is None else [(from_kbps, p.to_kbps)]
    step.upshift, step.downshift = metrics.shift_counts(shifts)
    st.upshifts += step.upshift
    st.downshifts += step.downshift
    if c.in_order:
        st.current_kbps = p.to_kbps


def _on_rebuffer_end(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, RebufferEnd)
    duration = p.duration_ms
    if duration is None:
        # Not reported (CMCD): from the stall's own start, when it was seen.
        duration = _since_last_mark(st, c.t, "buffering")
    st.rebuffer_ms += duration
    st.rebuffer_count += 1
    step.rebuffer_ms, step.rebuffer_count = duration, 1
    # Sessions, not stalls, are the unit of "how many viewers stalled".
    step.new_rebuffer_minute = _mark_minute(
        st.rebuffer_minutes, c.minute, c.policy.max_minutes_tracked
    )
    step.marks.append("buffered")


def _on_error(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, PlaybackError)
    step.error_code = p.code
    if len(st.errors) < c.policy.max_errors:
        st.errors.append(
            SessionError(
                code=p.code,
                category=p.category,
                severity=p.severity,
                at=c.event.event_time,
                http_status=p.http_status,
            )
        )
    if p.severity != "fatal":
        return
    if st.first_fatal_ms is None:
        step.new_failure = True
        step.new_start_failure = st.first_frame_ms is None
    if st.first_fatal_ms is None or c.t < st.first_fatal_ms:
        st.first_fatal_ms = c.t
        st.fatal_code = p.code
    elif st.fatal_code == _UNKNOWN_CODE and p.code != _UNKNOWN_CODE:
        # A failed state reported without its code (CMCD), then the code itself.
        st.fatal_code = p.code
    step.marks.append("end")


def _on_playback_end(c: _Ctx, step: _Step) -> None:
    st, p = c.state, c.event.payload
    assert isinstance(p, PlaybackEnd)
    if st.ended_ms is None or c.t > st.ended_ms:
        st.ended_ms = c.t
        st.exit_reason = p.exit_reason
        st.player_watched_ms = p.watched_ms
    step.marks.append("end")


def _on_pause(c: _Ctx, step: _Step) -> None:
    c.state.pauses += 1
    step.marks.append("paused")


def _on_seek(c: _Ctx, step: _Step) -> None:
    c.state.seeks += 1
    step.marks.append("seek")  # no effect on playing; where unreported buffering starts


def _mark_only(mark: metrics.Mark) -> Callable[[_Ctx, _Step], None]:
    def step_of(c: _Ctx, step: _Step) -> None:
        step.marks.append(mark)

    return step_of


def _nothing(c: _Ctx, step: _Step) -> None:
    return None


# What each event type's payload does to a session (one function per type).
_PAYLOAD_STEPS: dict[str, Callable[[_Ctx, _Step], None]] = {
    "play_requested": _on_play_requested,
    "manifest_loaded": _nothing,
    "license_acquired": _nothing,
    "first_frame": _on_first_frame,
    "heartbeat": _on_heartbeat,
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
