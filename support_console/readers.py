"""Search documents → the console's view models.

The sessions and incidents indices are written by the search sink from the streams records,
flattened into the columns of `contract.tables`; this module reads those columns by their
contract names (a name that is not a column fails loudly instead of reading nothing).
Unparseable documents are skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from contract.dimensions import DIMENSIONS
from contract.tables import TABLE_BY_NAME
from ingest.error_catalog import ErrorCatalog, load_catalog
from support_console.catalog import explain
from support_console.models import (
    ErrorView,
    HeartbeatPoint,
    IncidentView,
    MemberRecord,
    Outcome,
    SessionView,
)

Doc = Mapping[str, Any]


def _reader(table: str) -> Callable[[Doc, str], Any]:
    names = frozenset(TABLE_BY_NAME[table].column_names)

    def read(doc: Doc, column: str) -> Any:
        if column not in names:
            raise KeyError(f"{column!r} is not a column of the {table} table (contract.tables)")
        return doc.get(column)

    return read


_session = _reader("sessions")
_incident = _reader("incidents")
_event = _reader("events")


def as_time(value: Any) -> datetime | None:
    """ISO text or epoch ms → aware UTC datetime; None when absent or unreadable."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def outcome_of(doc: Doc, has_warnings: bool) -> Outcome:
    """Classify a session from its start outcome, failure and stalls."""
    start = _session(doc, "start_outcome")
    if start == "start_failure":
        return "start_failure"
    if _session(doc, "playback_failed") is True:
        return "failed"
    if start == "exit_before_start":
        return "exit_before_start"
    rebuffer_count = _int(_session(doc, "rebuffer_count")) or 0
    rebuffer_pct = _float(_session(doc, "rebuffer_pct")) or 0.0
    # A session that played but stalled noticeably is worth an agent's look too.
    if has_warnings or rebuffer_count >= 3 or rebuffer_pct >= 5.0:
        return "degraded"
    return "ok"


def errors_of(doc: Doc, catalog: ErrorCatalog) -> tuple[ErrorView, ...]:
    """The session's errors, each explained from the catalog, in time order."""
    raw = _session(doc, "session_errors")
    out: list[ErrorView] = []
    if isinstance(raw, list):
        for e in raw:
            if not isinstance(e, Mapping) or not e.get("code"):
                continue
            at = as_time(e.get("at"))
            severity: Literal["fatal", "warning"] = (
                "fatal" if e.get("severity") == "fatal" else "warning"
            )
            out.append(
                explain(
                    code=str(e["code"]),
                    category=_str(e.get("category")) or "unknown",
                    severity=severity,
                    at=at or datetime.min.replace(tzinfo=UTC),
                    http_status=_int(e.get("http_status")),
                    catalog=catalog,
                )
            )
    fatal = _session(doc, "fatal_error_code")
    if fatal and not any(e.code == fatal for e in out):
        # The search columns keep the fatal code even when the error list is not indexed.
        at = _ended_at(doc) or datetime.now(UTC)
        entry = catalog.get(str(fatal))
        out.append(
            explain(
                code=str(fatal),
                category=entry.category if entry else "unknown",
                severity="fatal",
                at=at,
                catalog=catalog,
            )
        )
    return tuple(sorted(out, key=lambda e: e.at))


def _ended_at(doc: Doc) -> datetime | None:
    # A session closed by timeout has no end event: it ended with its last event.
    return as_time(_session(doc, "ended_at")) or as_time(_session(doc, "last_event_at"))


def session_from_doc(doc: Doc, catalog: ErrorCatalog | None = None) -> SessionView | None:
    """A session view, or None when the document lacks a session id, member or start."""
    catalog = catalog or load_catalog()
    # A session without a play request (its first events were lost) starts at its first event.
    started = as_time(_session(doc, "play_requested_at")) or as_time(
        _session(doc, "first_event_at")
    )
    session_id = _session(doc, "session_id")
    member_id = _session(doc, "member_id")
    if started is None or not session_id or not member_id:
        return None
    errors = errors_of(doc, catalog)
    return SessionView(
        session_id=str(session_id),
        member_id=str(member_id),
        profile_id=_str(_session(doc, "profile_id")),
        title_id=_str(_session(doc, "title_id")),
        device_id=_str(_session(doc, "device_id")),
        device_type=_str(_session(doc, "device_type")),
        device_model=_str(_session(doc, "device_model")),
        device_family=_session(doc, "device_family"),
        os=_str(_session(doc, "os")),
        app_version=_str(_session(doc, "app_version")),
        country=_str(_session(doc, "country")),
        region=_str(_session(doc, "region")),
        isp=_str(_session(doc, "isp")),
        oca_id=_str(_session(doc, "oca_id")),
        cdn_tier=_str(_session(doc, "cdn_tier")),
        started_at=started,
        ended_at=as_time(_ended_at(doc)),
        outcome=outcome_of(doc, has_warnings=bool(errors)),
        exit_reason=_session(doc, "exit_reason"),
        startup_ms=_int(_session(doc, "startup_ms")),
        watch_ms=_int(_session(doc, "watch_ms")) or 0,
        rebuffer_ms=_int(_session(doc, "rebuffer_ms")) or 0,
        rebuffer_count=_int(_session(doc, "rebuffer_count")) or 0,
        rebuffer_pct=_float(_session(doc, "rebuffer_pct")),
        avg_bitrate_kbps=_float(_session(doc, "avg_bitrate_kbps")),
        score=_float(_session(doc, "score_aggregate")),
        fatal_error_code=_session(doc, "fatal_error_code"),
        errors=errors,
        rollup_values={d: str(v) for d in DIMENSIONS if (v := _session(doc, d)) not in (None, "")},
    )


def incident_from_doc(doc: Doc) -> IncidentView | None:
    """An incident view, or None when the document lacks its id, dimension or start."""
    started = as_time(_incident(doc, "started_at"))
    iid = _incident(doc, "incident_id")
    dim = _incident(doc, "dimension")
    value = _incident(doc, "value")
    if started is None or not iid or not dim or value is None:
        return None
    status: Literal["open", "resolved"] = (
        "resolved" if _incident(doc, "status") == "resolved" else "open"
    )
    ended = as_time(_incident(doc, "resolved_at"))
    if ended is None and status == "resolved":
        ended = as_time(_incident(doc, "last_anomalous_at"))
    return IncidentView(
        incident_id=str(iid),
        status=status,
        metric=_str(_incident(doc, "metric")),
        dimension=str(dim),
        value=str(value),
        started_at=started,
        ended_at=ended,
        severity=_str(_incident(doc, "severity")),
        explanation=_str(_incident(doc, "explanation")),
    )


def member_from_doc(doc: Doc) -> MemberRecord | None:
    """A directory entry; the email hash stays in the index, only the mask is read."""
    member_id = doc.get("member_id")
    if not member_id:
        return None
    return MemberRecord(
        member_id=str(member_id),
        profiles=tuple(str(p) for p in doc.get("profiles") or ()),
        device_ids=tuple(str(d) for d in doc.get("device_ids") or ()),
        email_masked=doc.get("email_masked"),
        country=doc.get("country"),
        plan=doc.get("plan"),
    )


def point_from_event(doc: Doc) -> HeartbeatPoint | None:
    """One drill-down sample from a flat event document (the columns of `events`)."""
    at = as_time(_event(doc, "event_time"))
    etype = _event(doc, "event_type")
    if at is None or not etype:
        return None
    bitrate = _event(doc, "to_kbps" if etype == "bitrate_change" else "bitrate_kbps")
    return HeartbeatPoint(
        at=at,
        event_type=str(etype),
        bitrate_kbps=_int(bitrate),
        buffer_ms=_int(_event(doc, "buffer_ms")),
        rebuffering=etype == "rebuffer_start",
        error_code=_event(doc, "error_code") if etype == "error" else None,
    )
