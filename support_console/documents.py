"""Search documents → the console's view models.

The sessions and incidents indices are written by the search sink from the streams records
(`streams.records.SessionSummary`, `Incident`), flattened by `indexers.documents`: a record
field without a search column lands in the document's `extra` map. So each reader here
looks for a field at the top level first and then in `extra`, and accepts the few names
that differ between the record and the column list (`value` / `dimension_value`,
`started_at` / `opened_at`, ...). Unparseable documents are skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

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


def field(doc: Doc, *names: str) -> Any:
    """The first of `names` present in `doc` or its `extra` map (also as `prefix.name`)."""
    extra = doc.get("extra")
    extra_map: Mapping[str, Any] = extra if isinstance(extra, Mapping) else {}
    for name in names:
        value = doc.get(name)
        if value is not None:
            return value
        value = extra_map.get(name)
        if value is not None:
            return value
        for key, v in extra_map.items():
            if v is not None and key.endswith(f".{name}"):
                return v
    return None


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
    """Classify a session from either the summary's fields or the search columns."""
    start = field(doc, "start_outcome")
    failed = field(doc, "playback_failed", "playback_failure")
    if start == "start_failure" or field(doc, "video_start_failure") is True:
        return "start_failure"
    if failed is True:
        return "failed"
    if start == "exit_before_start" or field(doc, "exit_before_video_start") is True:
        return "exit_before_start"
    rebuffer_count = _int(field(doc, "rebuffer_count")) or 0
    rebuffer_pct = _float(field(doc, "rebuffer_pct")) or 0.0
    # A session that played but stalled noticeably is worth an agent's look too.
    if has_warnings or rebuffer_count >= 3 or rebuffer_pct >= 5.0:
        return "degraded"
    return "ok"


def errors_of(doc: Doc, catalog: ErrorCatalog) -> tuple[ErrorView, ...]:
    """The session's errors, each explained from the catalog, in time order."""
    raw = field(doc, "session_errors", "errors")
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
    fatal = field(doc, "fatal_error_code")
    if fatal and not any(e.code == fatal for e in out):
        # The search columns keep the fatal code even when the error list is not indexed.
        at = as_time(field(doc, "ended_at", "last_event_at")) or datetime.now(UTC)
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


def session_from_doc(doc: Doc, catalog: ErrorCatalog | None = None) -> SessionView | None:
    """A session view, or None when the document lacks a session id, member or start."""
    catalog = catalog or load_catalog()
    started = as_time(field(doc, "started_at", "play_requested_at", "first_event_at"))
    session_id = field(doc, "session_id")
    member_id = field(doc, "member_id")
    if started is None or not session_id or not member_id:
        return None
    errors = errors_of(doc, catalog)
    return SessionView(
        session_id=str(session_id),
        member_id=str(member_id),
        profile_id=_str(field(doc, "profile_id")),
        title_id=_str(field(doc, "title_id")),
        device_id=_str(field(doc, "device_id")),
        device_type=_str(field(doc, "device_type")),
        device_model=_str(field(doc, "device_model")),
        device_family=field(doc, "device_family"),
        os=_str(field(doc, "os")),
        app_version=_str(field(doc, "app_version")),
        country=_str(field(doc, "country")),
        region=_str(field(doc, "region")),
        isp=_str(field(doc, "isp")),
        oca_id=_str(field(doc, "oca_id")),
        cdn_tier=_str(field(doc, "cdn_tier")),
        started_at=started,
        ended_at=as_time(field(doc, "ended_at", "last_event_at")),
        outcome=outcome_of(doc, has_warnings=bool(errors)),
        exit_reason=field(doc, "exit_reason"),
        startup_ms=_int(field(doc, "startup_ms")),
        watch_ms=_int(field(doc, "watch_ms")) or 0,
        rebuffer_ms=_int(field(doc, "rebuffer_ms")) or 0,
        rebuffer_count=_int(field(doc, "rebuffer_count")) or 0,
        rebuffer_pct=_float(field(doc, "rebuffer_pct")),
        avg_bitrate_kbps=_float(field(doc, "avg_bitrate_kbps")),
        score=_float(field(doc, "score_aggregate", "aggregate_score")),
        fatal_error_code=field(doc, "fatal_error_code"),
        errors=errors,
    )


def incident_from_doc(doc: Doc) -> IncidentView | None:
    """An incident view, or None when the document lacks its id, dimension or start."""
    started = as_time(field(doc, "started_at", "opened_at"))
    iid = field(doc, "incident_id")
    dim = field(doc, "dimension")
    value = field(doc, "value", "dimension_value")
    if started is None or not iid or not dim or value is None:
        return None
    status: Literal["open", "resolved"] = (
        "resolved" if field(doc, "status") == "resolved" else "open"
    )
    ended = as_time(field(doc, "resolved_at"))
    if ended is None and status == "resolved":
        ended = as_time(field(doc, "last_anomalous_at", "updated_at"))
    return IncidentView(
        incident_id=str(iid),
        status=status,
        metric=_str(field(doc, "metric")),
        dimension=str(dim),
        value=str(value),
        started_at=started,
        ended_at=ended,
        severity=_str(field(doc, "severity")),
        explanation=_str(field(doc, "explanation", "summary")),
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
    """One drill-down sample from a flat (or nested) event document."""
    at = as_time(doc.get("event_time"))
    etype = doc.get("event_type")
    if at is None or not etype:
        return None
    payload = doc.get("payload") if isinstance(doc.get("payload"), Mapping) else {}
    assert isinstance(payload, Mapping)

    def get(flat: str, nested: str) -> Any:
        return doc.get(flat, payload.get(nested))

    bitrate = get("bitrate_kbps", "bitrate_kbps")
    if etype == "bitrate_change":
        bitrate = get("to_kbps", "to_kbps")
    return HeartbeatPoint(
        at=at,
        event_type=str(etype),
        bitrate_kbps=_int(bitrate),
        buffer_ms=_int(get("buffer_ms", "buffer_ms")),
        rebuffering=etype == "rebuffer_start",
        error_code=get("error_code", "code") if etype == "error" else None,
    )
