"""The session trace (Edgar-like): a play's player events and server spans on one time axis.

For one playback session the console reads the player's startup and error events from the
event indices and the control plane's spans of the same play from the span indices
(`trace_id = contract.spans.trace_id_of(session_id)`), puts both on one time line, marks the
failing spans, and says in words what happened, e.g. "license service answered 503 in
eu-west-1, 3 retries, the player gave up with DRM-2001 (License server unavailable)".
A member's logins and signups (auth spans outside any play) are summed up the same way.

Every body sent uses only `term`, `terms`, `range` and `bool` (the console's query rule,
`support_console.queries`). Showing a trace is audited as a session view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contract.spans import trace_id_of
from indexers.search_queries import filtered_in_time, time_range
from indexers.span_search import spans_alias
from ingest.error_catalog import ErrorCatalog
from support_console import audit, indices
from support_console.audit import Surface
from support_console.backend import hits
from support_console.identity import AgentIdentity
from support_console.service import SupportService

Doc = Mapping[str, Any]
StepStatus = Literal["ok", "warning", "error"]

PLAYER_LANE = "player"
# Player events that mark the steps of a play (heartbeats would bury them).
TRACE_EVENT_TYPES: tuple[str, ...] = (
    "play_requested", "manifest_loaded", "license_acquired", "first_frame",
    "rebuffer_start", "rebuffer_end", "error", "playback_end",
)  # fmt: skip
MAX_SPANS = 500


class TraceStep(BaseModel):
    """One thing on the time line: a player event (a point) or a server span (an interval)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    end: datetime | None = None
    lane: str
    source: Literal["player", "server"]
    label: str
    status: StepStatus = "ok"
    detail: str = ""
    highlighted: bool = False
    service: str | None = None
    endpoint: str | None = None
    region: str | None = None
    http_status: int | None = None
    attempt: int | None = None
    duration_ms: float | None = None
    span_id: str | None = None
    parent_span_id: str | None = None


class SessionTrace(BaseModel):
    """A play as the player and the control plane saw it, with the verdict in words."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    trace_id: str
    member_id: str = ""
    steps: tuple[TraceStep, ...] = ()
    span_count: int = 0
    failing: tuple[TraceStep, ...] = ()
    summary: str = ""

    @property
    def clean(self) -> bool:
        """Server spans were found and none of them failed."""
        return self.span_count > 0 and not self.failing


class AccountRequests(BaseModel):
    """A member's login and signup requests (auth spans outside any play) in a period."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    steps: tuple[TraceStep, ...] = ()
    summary: str = ""

    @property
    def problems(self) -> tuple[TraceStep, ...]:
        """The failed ones."""
        return tuple(s for s in self.steps if s.status == "error")


# --- bodies ------------------------------------------------------------------------------


def trace_spans_body(trace_id: str, size: int = MAX_SPANS) -> dict[str, Any]:
    """Every span of one trace, in start order."""
    filters = [{"term": {"trace_id": trace_id}}]
    return filtered_in_time(filters, "start_time", size=size, order="asc", may_be_unmapped=True)


def player_events_body(session_id: str, size: int = 1000) -> dict[str, Any]:
    """The play's startup, stall, error and end events, in time order."""
    filters: list[dict[str, Any]] = [
        {"term": {"session_id": session_id}},
        {"terms": {"event_type": list(TRACE_EVENT_TYPES)}},
    ]
    return filtered_in_time(filters, "event_time", size=size, order="asc", may_be_unmapped=True)


def account_requests_body(
    member_id: str, start: datetime, end: datetime, size: int = 200
) -> dict[str, Any]:
    """A member's auth spans (login, signup) in [start, end], newest first."""
    filters = [
        {"term": {"member_id": member_id}},
        {"term": {"service": "auth"}},
        time_range("start_time", start, end, until_inclusive=True),
    ]
    return filtered_in_time(filters, "start_time", size=size, may_be_unmapped=True)


# --- pure builders -----------------------------------------------------------------------


def as_time(value: Any) -> datetime | None:
    """ISO text (or a datetime) → aware UTC datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def step_from_span(doc: Doc) -> TraceStep | None:
    """A server span as a step; failing spans are highlighted."""
    start = as_time(doc.get("start_time"))
    if start is None:
        return None
    failed = doc.get("status_code") == "error"
    attempt = doc.get("attempt")
    label = str(doc.get("name") or doc.get("endpoint") or "span")
    if isinstance(attempt, int) and attempt > 1:
        label += f" (retry {attempt - 1})"
    detail_parts = [
        f"HTTP {doc['http_status']}" if doc.get("http_status") else "",
        str(doc.get("error_code") or ""),
        str(doc.get("status_message") or ""),
        "fallback" if doc.get("fallback_used") else "",
        "circuit open" if doc.get("circuit_open") else "",
        {True: "cache hit", False: "cache miss"}.get(doc.get("cache_hit"), "")  # type: ignore[arg-type]
        if isinstance(doc.get("cache_hit"), bool)
        else "",
        f"{doc.get('instance_id')} ({doc.get('region')})" if doc.get("instance_id") else "",
    ]
    detail_parts = list(dict.fromkeys(p for p in detail_parts if p))  # code == message often
    return TraceStep(
        at=start,
        end=as_time(doc.get("end_time")),
        lane=str(doc.get("service") or "server"),
        source="server",
        label=label,
        status="error" if failed else ("warning" if doc.get("fallback_used") else "ok"),
        detail=" · ".join(detail_parts),
        highlighted=failed,
        service=doc.get("service"),
        endpoint=doc.get("endpoint"),
        region=doc.get("region"),
        http_status=doc.get("http_status"),
        attempt=attempt if isinstance(attempt, int) else None,
        duration_ms=doc.get("duration_ms"),
        span_id=doc.get("span_id"),
        parent_span_id=doc.get("parent_span_id"),
    )


def step_from_event(doc: Doc, catalog: ErrorCatalog) -> TraceStep | None:
    """A player event as a step; errors carry the catalog's title."""
    at = as_time(doc.get("event_time"))
    etype = doc.get("event_type")
    if at is None or not etype:
        return None
    status: StepStatus = "ok"
    detail = ""
    label = str(etype)
    if etype == "error":
        code = str(doc.get("error_code") or "")
        entry = catalog.get(code)
        fatal = doc.get("error_severity") == "fatal"
        status = "error" if fatal else "warning"
        label = f"error {code}"
        detail = entry.title if entry else str(doc.get("error_message") or "")
    elif etype in ("rebuffer_start", "rebuffer_end"):
        status = "warning"
    elif etype == "first_frame" and doc.get("startup_ms") is not None:
        detail = f"startup {doc['startup_ms']} ms"
    elif etype == "playback_end":
        detail = f"exit: {doc.get('exit_reason') or '-'}"
    elif doc.get("latency_ms") is not None:
        detail = f"{doc['latency_ms']} ms"
    return TraceStep(
        at=at, lane=PLAYER_LANE, source="player", label=label, status=status, detail=detail
    )


def build_trace(
    session_id: str,
    member_id: str,
    events: Sequence[Doc],
    spans: Sequence[Doc],
    catalog: ErrorCatalog,
) -> SessionTrace:
    """Join the player's events and the server's spans on one time axis, with a summary."""
    server = [s for s in (step_from_span(d) for d in spans) if s is not None]
    player = [s for s in (step_from_event(d, catalog) for d in events) if s is not None]
    steps = sorted([*player, *server], key=lambda s: (s.at, s.source != "player"))
    failing = tuple(s for s in server if s.status == "error")
    return SessionTrace(
        session_id=session_id,
        trace_id=trace_id_of(session_id),
        member_id=member_id,
        steps=tuple(steps),
        span_count=len(server),
        failing=failing,
        summary=summarize(server, player, catalog),
    )


def _player_error(player: Sequence[TraceStep]) -> TraceStep | None:
    fatal = [p for p in player if p.label.startswith("error ") and p.status == "error"]
    return fatal[-1] if fatal else None


# Where to look when every server call answered OK: what the player's error is about.
_LOOK_AT: dict[str, str] = {
    "cdn": "look at the session's cache (OCA) and the member's network",
    "network": "look at the member's network and ISP",
    "decoder": "look at the device and the title's encoding",
    "device": "look at the device and app version",
}


def _where_to_look(gave_up: TraceStep | None, catalog: ErrorCatalog) -> str:
    entry = catalog.get(gave_up.label.removeprefix("error ")) if gave_up else None
    return _LOOK_AT.get(entry.category if entry else "", "look at device or network")


def summarize(
    server: Sequence[TraceStep], player: Sequence[TraceStep], catalog: ErrorCatalog
) -> str:
    """The trace in words: which service failed where, how often it was retried, the end."""
    gave_up = _player_error(player)
    ending = ""
    if gave_up is not None:
        code = gave_up.label.removeprefix("error ")
        ending = f"the player gave up with {code}" + (
            f" ({gave_up.detail})" if gave_up.detail else ""
        )
    if not server:
        text = "No server spans are indexed for this play (no trace from the control plane)"
        return text + (f"; {ending}." if ending else ".")
    failing = [s for s in server if s.status == "error"]
    if not failing:
        services = ", ".join(dict.fromkeys(s.lane for s in server))
        text = f"Clean trace: all {len(server)} server calls of this play answered OK ({services})"
        if ending:
            look = _where_to_look(gave_up, catalog)
            return f"{text}; {ending}, which no server call explains ({look})."
        return text + "."
    # The cause is a failing span none of whose calls failed; its failing callers only
    # passed the failure on (the gateway answering the player 503 because license did).
    failed_parents = {s.parent_span_id for s in failing if s.parent_span_id}
    causes = [s for s in failing if s.span_id not in failed_parents] or failing
    first = causes[0]
    key = (first.service, first.endpoint, first.region)
    # Every try of the cause from its first failure on: the player's and the services' own
    # retries alike.
    tries = sorted(
        (s for s in server if (s.service, s.endpoint, s.region) == key and s.at >= first.at),
        key=lambda s: s.at,
    )
    text = _cause(first, len(tries) - 1, ending, recovered=tries[-1].status == "ok")
    others = sorted(
        {f"{s.service} ({s.http_status})" for s in causes if s.service != first.service}
    )
    passed_on = sorted({f"{s.service} ({s.http_status})" for s in failing if s not in causes})
    if others:
        text += f"; also failing: {', '.join(others)}"
    if passed_on:
        text += f"; passed on by {', '.join(passed_on)}"
    return text[0].upper() + text[1:] + "."


def _cause(first: TraceStep, retries: int, ending: str, *, recovered: bool) -> str:
    where = first.region or "an unknown region"
    if first.http_status is not None:
        head = f"{first.service} service answered {first.http_status} in {where}"
    elif "CIRCUIT_OPEN" in first.detail or "circuit open" in first.detail:
        head = f"{first.service} service's circuit breaker was open in {where}"
    else:
        head = f"{first.service} service failed in {where} ({first.detail or 'no detail'})"
    parts = [head, f"{retries} retr{'y' if retries == 1 else 'ies'}" if retries else "no retry"]
    if ending:
        parts.append(ending)
    elif recovered:
        parts.append("the last try got through and the play went on")
    return ", ".join(parts)


def summarize_account(member_id: str, steps: Sequence[TraceStep]) -> str:
    """A member's logins and signups in words."""
    if not steps:
        return "No login or signup requests from this member in the period."
    bad = [s for s in steps if s.status == "error"]
    kinds = ", ".join(sorted({(s.endpoint or "").rsplit("/", 1)[-1] or "auth" for s in steps}))
    if not bad:
        return f"Login and signup: {len(steps)} requests ({kinds}), all answered OK."
    last = bad[0]
    return (
        f"Login and signup: {len(bad)} of {len(steps)} requests failed; the newest, "
        f"{last.at:%Y-%m-%d %H:%M} UTC: auth service answered {last.http_status} in "
        f"{last.region or 'an unknown region'}" + (f" ({last.detail})" if last.detail else "") + "."
    )


# --- reads (audited) ---------------------------------------------------------------------


def session_trace(
    service: SupportService,
    agent: AgentIdentity | None,
    session_id: str,
    member_id: str,
    *,
    surface: Surface = "console",
    case_id: str = "",
) -> SessionTrace | None:
    """One play's trace; None (and a refusal in the audit log) without an agent."""
    if agent is None:
        service.audit_log.write(
            audit.refused(
                surface=surface, query=session_id, reason="", case_id=case_id,
                claimed_agent=None, detail="session trace without agent identity",
            )
        )  # fmt: skip
        return None
    service.audit_log.write(
        audit.for_agent(
            agent, surface, action="session_view", outcome="shown", query_kind="session_id",
            query=session_id, member_id=member_id, shown_session_ids=(session_id,),
            case_id=case_id[:128], detail="session trace (player events and server spans)",
        )
    )  # fmt: skip
    settings = service.settings
    events = hits(service.backend, indices.events(settings), player_events_body(session_id))
    spans = hits(service.backend, spans_alias(settings), trace_spans_body(trace_id_of(session_id)))
    return build_trace(session_id, member_id, events, spans, service.catalog)


def account_requests(
    service: SupportService, member_id: str, start: datetime, end: datetime
) -> AccountRequests:
    """The member's logins and signups in [start, end] (shown with an audited lookup)."""
    docs = hits(
        service.backend, spans_alias(service.settings), account_requests_body(member_id, start, end)
    )
    steps = [s for s in (step_from_span(d) for d in docs) if s is not None]
    return AccountRequests(
        member_id=member_id, steps=tuple(steps), summary=summarize_account(member_id, steps)
    )
