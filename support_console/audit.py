"""The audit trail: one record per lookup, including refused ones.

Each record says who looked (agent and how they were identified), when, at whom (member),
why (reason / case id) and what was shown (session ids, incident ids). Records are written
under a fresh id (a retry overwrites itself, never duplicates) and before anything is
shown: if the audit write fails, the lookup shows nothing (fail closed).

Field names follow the audit columns of `indexers.search_mappings.AUDIT_COLUMNS`
(`agent_id`, `action`, `member_id`, `query`, `result_count`, `reason`, `at`); the other
fields are kept in the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streamwatch.settings import Settings
from support_console import indices
from support_console.backend import SearchBackend, hits
from support_console.identity import AgentIdentity

AuditOutcome = Literal["shown", "not_found", "invalid_input", "refused", "error"]
AuditAction = Literal["member_lookup", "session_view"]
Surface = Literal["console", "cli", "api"]


class AuditRecord(BaseModel):
    """One audited access to member data (or one refused attempt)."""

    model_config = ConfigDict(frozen=True)

    audit_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    action: AuditAction = "member_lookup"
    surface: Surface
    agent_id: str | None = Field(description="Agent name; None when no identity was presented.")
    agent_source: str | None = None
    outcome: AuditOutcome
    query_kind: str | None = None
    query: str = Field(default="", description="What was searched (an email only masked).")
    member_id: str | None = None
    reason: str = ""
    case_id: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None
    shown_session_ids: tuple[str, ...] = ()
    shown_incident_ids: tuple[str, ...] = ()
    shown_error_count: int = 0
    result_count: int = Field(default=0, description="Sessions shown.")
    detail: str = ""


class AuditLog:
    """Writes audit records to the audit index (created by `indexers.search_setup`)."""

    def __init__(self, backend: SearchBackend, settings: Settings) -> None:
        self._backend = backend
        self._index = indices.audit(settings)

    @property
    def index(self) -> str:
        """The audit index name."""
        return self._index

    def write(self, record: AuditRecord) -> AuditRecord:
        """Store one record durably; raises when it cannot (callers then show nothing)."""
        self._backend.index_document(
            self._index, record.model_dump(mode="json"), doc_id=record.audit_id
        )
        return record

    def records(self, field: str, value: str) -> list[AuditRecord]:
        """Audit records whose keyword `field` equals `value`, oldest first."""
        from support_console.queries import audit_of

        self._backend.refresh(self._index)
        found = hits(self._backend, self._index, audit_of(field, value, size=1000))
        return sorted((AuditRecord.model_validate(d) for d in found), key=lambda r: r.at)


def refused(
    *,
    surface: Surface,
    query: str,
    reason: str,
    case_id: str,
    claimed_agent: str | None,
    detail: str,
) -> AuditRecord:
    """The record of a lookup refused for want of an identity."""
    return AuditRecord(
        surface=surface,
        agent_id=None,
        agent_source=None,
        outcome="refused",
        query=query[:256],
        reason=reason[:1000],
        case_id=case_id[:128],
        detail=(detail + (f" (claimed: {claimed_agent[:64]!r})" if claimed_agent else ""))[:1000],
    )


def for_agent(agent: AgentIdentity, surface: Surface, **fields: Any) -> AuditRecord:
    """A record for an identified agent."""
    return AuditRecord(surface=surface, agent_id=agent.name, agent_source=agent.source, **fields)


def summary_line(record: Mapping[str, Any]) -> str:
    """One readable line of an audit record (for `streamwatch support audit`)."""
    return (
        f"{record.get('at')} {record.get('agent_id') or '-'} {record.get('outcome')} "
        f"{record.get('action')} member={record.get('member_id') or '-'} "
        f"case={record.get('case_id') or '-'} sessions={len(record.get('shown_session_ids') or [])}"
    )
