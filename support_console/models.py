"""What the console shows: members, sessions, errors, incidents and a lookup's result.

These are view models: built from search documents (`support_console.readers`), never
written back. Field names follow the upstream records (`contract.records.SessionSummary`,
`contract.records.Incident`) so a reader can map one to the other at a glance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.dimensions import DIMENSIONS

Outcome = Literal["ok", "degraded", "exit_before_start", "start_failure", "failed"]
LookupStatus = Literal["found", "not_found", "invalid", "refused", "empty_index", "unavailable"]
IdKind = Literal["member_id", "profile_id", "session_id", "device_id", "email"]

# Outcomes an agent must look at; correlation only marks these.
TROUBLED: frozenset[str] = frozenset({"degraded", "exit_before_start", "start_failure", "failed"})


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class MemberRecord(_View):
    """One member from the member directory (no raw email: only its mask)."""

    member_id: str
    profiles: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    email_masked: str | None = None
    country: str | None = None
    plan: str | None = None


class ErrorView(_View):
    """One error a session hit, with what the catalog says about it."""

    code: str
    category: str
    severity: Literal["fatal", "warning"]
    at: datetime
    http_status: int | None = None
    title: str = ""
    meaning: str = ""
    agent_action: str = ""
    in_catalog: bool = False


class IncidentView(_View):
    """An incident from the incidents index."""

    incident_id: str
    status: Literal["open", "resolved"]
    metric: str = ""
    dimension: str
    value: str
    started_at: datetime
    ended_at: datetime | None = Field(default=None, description="None while still open.")
    severity: str = ""
    explanation: str = ""


class IncidentMark(_View):
    """A session was hit during a known incident on one of its dimensions."""

    incident_id: str
    metric: str = ""
    dimension: str
    value: str
    started_at: datetime
    ended_at: datetime | None
    status: Literal["open", "resolved"]
    explanation: str = ""


class SessionView(_View):
    """One playback session with its QoE numbers, errors and incident marks."""

    session_id: str
    member_id: str
    profile_id: str = ""
    title_id: str = ""
    device_id: str = ""
    device_type: str = ""
    device_model: str = ""
    device_family: str | None = None
    os: str = ""
    app_version: str = ""
    country: str = ""
    region: str = ""
    isp: str = ""
    oca_id: str = ""
    cdn_tier: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome
    exit_reason: str | None = None
    startup_ms: int | None = None
    watch_ms: int = 0
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    rebuffer_pct: float | None = None
    avg_bitrate_kbps: float | None = None
    score: float | None = None
    fatal_error_code: str | None = None
    errors: tuple[ErrorView, ...] = ()
    incidents: tuple[IncidentMark, ...] = ()
    # The session's value of each rollup dimension (`contract.dimensions`), as incidents name
    # it; when not given, taken from the fields above of the same names.
    rollup_values: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rollup_values_from_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rollup_values" not in data:
            values = {d: str(data[d]) for d in DIMENSIONS if data.get(d) not in (None, "")}
            return {**data, "rollup_values": values}
        return data

    @property
    def troubled(self) -> bool:
        """Whether an agent should look at this session."""
        return self.outcome in TROUBLED

    @property
    def device_label(self) -> str:
        """How an agent names the device to a member: model and type."""
        model = self.device_model or self.device_family or "unknown device"
        return f"{model} ({self.device_type})" if self.device_type else model


class HeartbeatPoint(_View):
    """One sample of a session's playback state for the drill-down chart."""

    at: datetime
    event_type: str
    bitrate_kbps: int | None = None
    buffer_ms: int | None = None
    rebuffering: bool = False
    error_code: str | None = None


class LookupResult(_View):
    """Everything one lookup found, and the text an agent reads and copies."""

    status: LookupStatus
    message: str
    query_kind: IdKind | None = None
    member: MemberRecord | None = None
    period_start: datetime
    period_end: datetime
    sessions: tuple[SessionView, ...] = ()
    incidents: tuple[IncidentView, ...] = ()
    summary: str = ""
    case_note: str = ""
    audit_id: str | None = None
