"""Sessions read from the indexed events alone, for sessions that have no summary yet.

A session summary is written when a session closes (its end, or minutes of silence); until
then, and for players whose members are in no directory, the events are all there is. This
folds one member's events into session documents with the columns of the sessions index, so
the console shows them the same way (`readers.session_from_doc`). It computes only what
the events say directly (start, end, startup as reported or from the event times, rebuffers,
errors); scores and watch time stay empty until the summary exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from contract.tables import DEVICE_NETWORK_COLUMNS
from support_console.readers import as_time

# Event types the fold reads (heartbeats repeat state and are left out of the query).
SESSION_EVENT_TYPES: tuple[str, ...] = (
    "play_requested",
    "first_frame",
    "rebuffer_end",
    "bitrate_change",
    "error",
    "playback_end",
    "pause",
    "seek",
)
# Session fields taken from the session's first event: who, what, and the device and network.
_DIMENSIONS = (
    "member_id",
    "profile_id",
    "title_id",
    "device_family",
    *(c.name for c in DEVICE_NETWORK_COLUMNS),
)


def sessions_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One session document per session id in `events` (flat event documents)."""
    by_session: dict[str, list[tuple[datetime, Mapping[str, Any]]]] = {}
    for doc in events:
        sid, at = doc.get("session_id"), as_time(doc.get("event_time"))
        if sid and at is not None:
            by_session.setdefault(str(sid), []).append((at, doc))
    return [_fold(sid, sorted(docs, key=lambda p: p[0])) for sid, docs in by_session.items()]


def _fold(session_id: str, docs: list[tuple[datetime, Mapping[str, Any]]]) -> dict[str, Any]:
    first_at, first = docs[0]
    session: dict[str, Any] = {
        "session_id": session_id,
        **{k: first.get(k) for k in _DIMENSIONS if first.get(k) is not None},
        "first_event_at": first_at.isoformat(),
        "last_event_at": docs[-1][0].isoformat(),
        "rebuffer_ms": 0,
        "rebuffer_count": 0,
        "summary_pending": True,
    }
    errors: list[dict[str, Any]] = []
    requested: datetime | None = None
    first_frame: datetime | None = None
    fatal_at: datetime | None = None
    for at, doc in docs:
        kind = doc.get("event_type")
        if kind == "play_requested" and requested is None:
            requested = at
            session["play_requested_at"] = at.isoformat()
        elif kind == "first_frame" and first_frame is None:
            first_frame = at
            session["first_frame_at"] = at.isoformat()
            reported = doc.get("startup_ms")
            if isinstance(reported, int):
                session["startup_ms"] = reported
        elif kind == "rebuffer_end":
            session["rebuffer_count"] += 1
            duration = doc.get("duration_ms")
            session["rebuffer_ms"] += duration if isinstance(duration, int) else 0
        elif kind == "error" and doc.get("error_code"):
            errors.append(
                {
                    "code": doc.get("error_code"),
                    "category": doc.get("error_category"),
                    "severity": doc.get("error_severity"),
                    "at": at.isoformat(),
                    "http_status": doc.get("http_status"),
                }
            )
            if doc.get("error_severity") == "fatal" and fatal_at is None:
                fatal_at = at
                session["fatal_error_code"] = doc.get("error_code")
        elif kind == "playback_end":
            session["ended_at"] = at.isoformat()
            session["exit_reason"] = doc.get("exit_reason")
    if "startup_ms" not in session and requested is not None and first_frame is not None:
        session["startup_ms"] = int((first_frame - requested).total_seconds() * 1000)
    session["session_errors"] = errors
    session["playback_failed"] = fatal_at is not None
    if fatal_at is not None and (first_frame is None or fatal_at < first_frame):
        session["start_outcome"] = "start_failure"
    elif first_frame is not None:
        session["start_outcome"] = "started"
    return session
