"""The support lookup: one typed call from "who is calling" to "what happened and what to do".

`SupportService.lookup` is what both the Streamlit console and the CLI call:

1. refuse (and audit the refusal) when there is no agent identity;
2. validate the input (`queries.parse_input`): odd input is refused with a message and never
   reaches the engine;
3. find the member in the directory by member / profile / device id or email hash, falling
   back to the sessions index (session ids, members not in the directory);
4. fetch the member's sessions of the period, newest first, with each error explained from
   the catalog;
5. fetch incidents on the dimension values of the troubled sessions and mark overlaps;
6. write the plain-language summary and case note;
7. write one audit record with what is shown, then return. No audit, no data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.error_catalog import ErrorCatalog, load_catalog
from streamwatch.settings import Settings
from support_console import audit, correlation, indices, queries, readers, summary
from support_console.audit import AuditLog, AuditRecord, Surface
from support_console.backend import SearchBackend, SearchUnavailable, hits, open_backend, total
from support_console.event_sessions import SESSION_EVENT_TYPES, sessions_from_events
from support_console.identity import AgentIdentity
from support_console.models import (
    HeartbeatPoint,
    IdKind,
    IncidentView,
    LookupResult,
    MemberRecord,
    SessionView,
)

Clock = Callable[[], datetime]

_PERIOD = re.compile(r"^\s*(\d{1,4})\s*([dhw])\s*$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def parse_period(text: str, settings: Settings) -> timedelta:
    """`7d`, `24h`, `2w` → a period, clamped to [1 hour, retention]. Raises ValueError."""
    m = _PERIOD.match(text)
    if not m:
        raise ValueError(f"period {text!r} is not like 7d, 24h or 2w")
    hours = int(m.group(1)) * _UNIT_HOURS[m.group(2)]
    hours = max(1, min(hours, settings.support_retention_days * 24))
    return timedelta(hours=hours)


@dataclass(frozen=True)
class LookupRequest:
    """One search by an agent."""

    text: str | None
    period: timedelta | None = None  # default: settings.support_default_period_days
    reason: str = ""
    case_id: str = ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SupportService:
    """Member lookups over the search backend, audited."""

    def __init__(
        self,
        backend: SearchBackend,
        settings: Settings,
        *,
        catalog: ErrorCatalog | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.catalog = catalog or load_catalog()
        self.clock = clock
        self.audit_log = AuditLog(backend, settings)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = _utcnow) -> SupportService:
        """A service on the configured backend, with the indices it reads made ready."""
        from indexers.search_setup import ensure_search_ready
        from support_console.directory import ensure_directory_index

        backend = open_backend(settings)
        # Idempotent: the sinks call it too. Ensures the audit index has its mapping (so audit
        # records are searchable by agent) even before any sink has run.
        ensure_search_ready(backend, settings)
        ensure_directory_index(backend, settings)
        return cls(backend, settings, clock=clock)

    # --- the lookup -----------------------------------------------------------------------

    def period_bounds(self, period: timedelta | None) -> tuple[datetime, datetime]:
        """[start, end] of a lookup period ending now, within retention."""
        default = timedelta(days=self.settings.support_default_period_days)
        longest = timedelta(days=self.settings.support_retention_days)
        span = min(max(period or default, timedelta(hours=1)), longest)
        end = self.clock()
        return end - span, end

    def lookup(
        self, agent: AgentIdentity | None, request: LookupRequest, surface: Surface = "console"
    ) -> LookupResult:
        """Everything about one member for an agent; never raises for bad input or no data."""
        start, end = self.period_bounds(request.period)
        if agent is None:
            record = audit.refused(
                surface=surface,
                query=_audit_query(request.text),
                reason=request.reason,
                case_id=request.case_id,
                claimed_agent=None,
                detail="no agent identity",
            )
            return self._finish(
                record,
                LookupResult(
                    status="refused",
                    message="Sign in first: every lookup is made under an agent's name and "
                    "audited. This attempt was recorded as refused.",
                    period_start=start,
                    period_end=end,
                ),
            )
        common = {
            "reason": request.reason[:1000],
            "case_id": request.case_id[:128],
            "period_start": start,
            "period_end": end,
        }
        try:
            parsed = queries.parse_input(request.text, self.settings.support_email_salt)
        except queries.InvalidInput as exc:
            record = audit.for_agent(
                agent,
                surface,
                outcome="invalid_input",
                query=_audit_query(request.text),
                detail=str(exc)[:1000],
                **common,
            )
            return self._finish(
                record,
                LookupResult(
                    status="invalid", message=str(exc), period_start=start, period_end=end
                ),
            )
        try:
            return self._lookup_parsed(agent, parsed, surface, start, end, common)
        except SearchUnavailable as exc:
            record = audit.for_agent(
                agent,
                surface,
                outcome="error",
                query=parsed.display,
                detail=str(exc)[:1000],
                **common,
            )
            message = (
                "The search engine is not answering right now, so nothing can be shown. "
                "Try again in a minute; if it persists, tell the on-call SRE."
            )
            return self._finish(
                record,
                LookupResult(
                    status="unavailable", message=message, period_start=start, period_end=end
                ),
            )

    def _lookup_parsed(
        self,
        agent: AgentIdentity,
        parsed: queries.ParsedInput,
        surface: Surface,
        start: datetime,
        end: datetime,
        common: dict[str, object],
    ) -> LookupResult:
        member, kind = self.find_member(parsed)
        if member is None:
            empty = self._nothing_loaded()
            record = audit.for_agent(
                agent, surface, outcome="not_found", query=parsed.display, **common
            )
            if empty:
                message = (
                    "There is no playback data yet: the sessions index and the member "
                    "directory are empty. Ask an operator to start the pipeline or load members."
                )
                return self._finish(
                    record,
                    LookupResult(
                        status="empty_index", message=message, period_start=start, period_end=end
                    ),
                )
            what = "email" if parsed.kind == "email" else "member, profile, session or device id"
            message = (
                f"No member found for that {what} ({parsed.display}). Check it with the caller."
            )
            return self._finish(
                record,
                LookupResult(
                    status="not_found", message=message, period_start=start, period_end=end
                ),
            )

        sessions = self.sessions_of(member.member_id, start, end)
        incidents = self.incidents_for(sessions, start, end)
        now = self.clock()
        marked = correlation.correlate(sessions, incidents, now)
        text = summary.summarize(marked, start)
        used_incidents = tuple(
            i
            for i in incidents
            if any(m.incident_id == i.incident_id for s in marked for m in s.incidents)
        )
        record = audit.for_agent(
            agent,
            surface,
            outcome="shown",
            query_kind=kind,
            query=parsed.display,
            member_id=member.member_id,
            shown_session_ids=tuple(s.session_id for s in marked),
            shown_incident_ids=tuple(i.incident_id for i in used_incidents),
            shown_error_count=sum(len(s.errors) for s in marked),
            result_count=len(marked),
            **common,
        )
        note = summary.case_note(
            member=member,
            sessions=marked,
            summary=text,
            period_start=start,
            period_end=end,
            agent=agent.name,
            case_id=str(common.get("case_id") or "") or None,
            looked_up_at=now,
        )
        troubled = sum(1 for s in marked if s.troubled)
        message = (
            f"{len(marked)} sessions, {troubled} with problems."
            if marked
            else "This member has no playback sessions in the chosen period."
        )
        result = LookupResult(
            status="found",
            message=message,
            query_kind=kind,
            member=member,
            sessions=marked,
            incidents=used_incidents,
            summary=text,
            case_note=note,
            period_start=start,
            period_end=end,
        )
        return self._finish(record, result)

    def _finish(self, record: AuditRecord, result: LookupResult) -> LookupResult:
        """Write the audit record; only then hand out the result (fail closed)."""
        try:
            self.audit_log.write(record)
        except Exception as exc:
            # No audit record, no member data: show only why.
            return LookupResult(
                status="unavailable",
                message=(
                    "The lookup could not be audit-logged, so nothing is shown "
                    f"({type(exc).__name__}). Try again; if it persists, tell the on-call SRE."
                ),
                period_start=result.period_start,
                period_end=result.period_end,
            )
        return result.model_copy(update={"audit_id": record.audit_id})

    # --- the parts ------------------------------------------------------------------------

    def find_member(self, parsed: queries.ParsedInput) -> tuple[MemberRecord | None, IdKind | None]:
        """The member an input names, and which kind of id it was."""
        directory = indices.members(self.settings)
        if parsed.kind == "email":
            found = hits(self.backend, directory, queries.member_by_email_hash(parsed.value))
            member = readers.member_from_doc(found[0]) if found else None
            return member, ("email" if member else None)
        found = hits(self.backend, directory, queries.member_by_id(parsed.value))
        if found:
            member = readers.member_from_doc(found[0])
            if member is not None:
                return member, _id_kind(member, parsed.value)
        # Not in the directory: maybe a session id, or a member not loaded there yet. Session
        # summaries first; then the events themselves (sessions still open, or a service whose
        # members are in no directory at all: real players' ids come from its own systems).
        activity = hits(
            self.backend, indices.sessions(self.settings), queries.member_of_activity(parsed.value)
        )
        if not activity or not activity[0].get("member_id"):
            activity = hits(
                self.backend,
                indices.events(self.settings),
                queries.member_of_activity(parsed.value),
            )
        if not activity or not activity[0].get("member_id"):
            return None, None
        member_id = str(activity[0]["member_id"])
        kind: IdKind = "member_id" if member_id == parsed.value else "session_id"
        in_directory = hits(self.backend, directory, queries.member_by_id(member_id))
        member = readers.member_from_doc(in_directory[0]) if in_directory else None
        return member or MemberRecord(member_id=member_id), kind

    def sessions_of(
        self, member_id: str, start: datetime, end: datetime
    ) -> tuple[SessionView, ...]:
        """The member's sessions started in [start, end], newest first, one per session id."""
        body = queries.sessions_of_member(member_id, start, end, self.settings.support_max_sessions)
        by_id: dict[str, SessionView] = {}
        for doc in hits(self.backend, indices.sessions(self.settings), body):
            view = readers.session_from_doc(doc, self.catalog)
            if view is not None and start <= view.started_at <= end:
                by_id[view.session_id] = view
        # Sessions with events but no summary yet (still open, or just closed).
        events_body = queries.events_of_member(
            member_id, start, end, SESSION_EVENT_TYPES, _EVENTS_PER_LOOKUP
        )
        events = hits(self.backend, indices.events(self.settings), events_body)
        for doc in sessions_from_events(events):
            if doc["session_id"] in by_id:
                continue
            view = readers.session_from_doc(doc, self.catalog)
            if view is not None and start <= view.started_at <= end:
                by_id[view.session_id] = view
        return tuple(sorted(by_id.values(), key=lambda s: s.started_at, reverse=True))

    def incidents_for(
        self, sessions: tuple[SessionView, ...], start: datetime, end: datetime
    ) -> tuple[IncidentView, ...]:
        """Incidents on the dimension values of troubled sessions that overlap the period."""
        troubled = [s for s in sessions if s.troubled]
        if not troubled:
            return ()
        values = sorted(
            {v for vs in correlation.dimension_values(troubled).values() for v in vs}
            | {correlation.ALL_DIMENSION}
        )
        found = hits(
            self.backend, indices.incidents(self.settings), queries.incidents_for_values(values)
        )
        out: dict[str, IncidentView] = {}
        for doc in found:
            inc = readers.incident_from_doc(doc)
            if inc is None or inc.started_at > end or (inc.ended_at and inc.ended_at < start):
                continue
            out[inc.incident_id] = inc
        return tuple(sorted(out.values(), key=lambda i: i.started_at, reverse=True))

    def session_timeline(
        self,
        agent: AgentIdentity | None,
        session: SessionView,
        *,
        surface: Surface = "console",
        case_id: str = "",
    ) -> list[HeartbeatPoint]:
        """Bitrate, buffer, stalls and errors over one session (audited as a session view)."""
        if agent is None:
            self.audit_log.write(
                audit.refused(
                    surface=surface,
                    query=session.session_id,
                    reason="",
                    case_id=case_id,
                    claimed_agent=None,
                    detail="session view without agent identity",
                )
            )
            return []
        self.audit_log.write(
            audit.for_agent(
                agent,
                surface,
                action="session_view",
                outcome="shown",
                query_kind="session_id",
                query=session.session_id,
                member_id=session.member_id,
                shown_session_ids=(session.session_id,),
                case_id=case_id[:128],
            )
        )
        docs = hits(
            self.backend, indices.events(self.settings), queries.session_events(session.session_id)
        )
        points = [p for p in (readers.point_from_event(d) for d in docs) if p is not None]
        return sorted(points, key=lambda p: p.at)

    def _nothing_loaded(self) -> bool:
        return (
            total(self.backend, indices.sessions(self.settings)) == 0
            and total(self.backend, indices.members(self.settings)) == 0
            and total(self.backend, indices.events(self.settings)) == 0
        )


# Most events one lookup folds into sessions that have no summary yet.
_EVENTS_PER_LOOKUP = 5000


def _id_kind(member: MemberRecord, value: str) -> IdKind:
    if value == member.member_id:
        return "member_id"
    if value in member.profiles:
        return "profile_id"
    return "device_id"


def _audit_query(text: str | None) -> str:
    """What of a refused or odd input goes into the audit log: a short printable preview.

    An email-shaped input is masked: a raw address must not land in the audit index.
    """
    from support_console.masking import looks_like_email, mask_email

    if not text:
        return ""
    if looks_like_email(text[:256]):
        return mask_email(text[:256])
    preview = "".join(ch if ch.isprintable() else "?" for ch in text[:64])
    return preview + ("…" if len(text) > 64 else "")
