"""Server-side spans of the control plane, and their per-minute rollup.

A `Span` is one request a service handled (or one call it made), shaped after
OpenTelemetry's span model so that an OTLP source could feed `telemetry.spans.v1` later:
`trace_id`/`span_id`/`parent_span_id`, `name`, `kind`, start and end time, a status, and
the resource attributes `service.name`, `service.instance.id` and `cloud.region` as flat
fields. A play's spans share one `trace_id`, derived from its playback `session_id`
(`trace_id_of`), which is how support joins the player's events with the server's view.
Requests outside a play (login, signup, browse, search, home) carry `session_id=None`
and a trace of their own.

A `ServiceMinute` is the additive rollup of one minute of spans for one
(service, endpoint, region) — requests, errors, fallbacks, cache hits, a latency
sketch — published on `ops.service_minute.v1` and read by the detector, the sinks and
the control-plane page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SPAN_SCHEMA_VERSION = 1

# The services a play (and a member's other requests) goes through, in call order.
Service = Literal[
    "gateway", "playback", "manifest", "license", "steering", "cache", "auth", "discovery"
]
SERVICES: tuple[Service, ...] = (
    "gateway", "playback", "manifest", "license", "steering", "cache", "auth", "discovery"
)  # fmt: skip
SpanKind = Literal["server", "client", "internal"]
StatusCode = Literal["ok", "error", "unset"]


def trace_id_of(session_id: str) -> str:
    """The 32-hex-digit OpenTelemetry trace id of a playback session (its UUID's hex)."""
    return session_id.replace("-", "").lower()


class Span(BaseModel):
    """One server-side request or call, OpenTelemetry-shaped (flattened attributes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SPAN_SCHEMA_VERSION
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    parent_span_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    name: str = Field(description="Operation, e.g. 'POST /playback/start'.")
    kind: SpanKind = "server"
    start_time: datetime
    end_time: datetime
    duration_ms: float = Field(ge=0)
    status_code: StatusCode
    status_message: str | None = None

    # Resource attributes (service.name, service.instance.id, cloud.region).
    service: Service
    instance_id: str
    instance_group: str = Field(description="The deploy group the instance belongs to.")
    region: str

    # Span attributes.
    endpoint: str = Field(description="The route, e.g. '/license/acquire'.")
    http_status: int | None = None
    error_code: str | None = None
    attempt: int = Field(default=1, ge=1, description="1 for the first try, 2+ for retries.")
    cache_hit: bool | None = None
    fallback_used: bool = False
    circuit_open: bool = False

    # Links to the playback world.
    session_id: str | None = None
    member_id: str | None = None
    country: str | None = None


class GroupCounts(BaseModel):
    """Requests and errors of one instance group within a `ServiceMinute`."""

    model_config = ConfigDict(extra="forbid")

    requests: int = 0
    errors: int = 0


class ServiceMinute(BaseModel):
    """One minute of spans for one (service, endpoint, region): additive counts."""

    model_config = ConfigDict(extra="forbid")

    minute: datetime
    service: Service
    endpoint: str
    region: str
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    cache_lookups: int = 0
    cache_hits: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    revision: int = 0
    # Additive: the latency histogram (log buckets of `contract.sketch`, index -> count),
    # so minutes merge exactly; and requests/errors per instance group (a bad deploy).
    latency_buckets: dict[int, int] = Field(default_factory=dict)
    instance_groups: dict[str, GroupCounts] = Field(default_factory=dict)
