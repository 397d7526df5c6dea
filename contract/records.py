"""Records the streams box publishes: session summaries, minute rollups, incidents.

These are the public contract of `qoe.sessions.v1`, `qoe.minute.v1` and `ops.incidents.v1`.
Every record carries `metrics_version` (the formulas it was computed with) and a
`revision`: a later revision of the same key supersedes an earlier one (late events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract import metrics
from contract.sketch import LatencySketch

EndedBy = Literal["playback_end", "timeout"]
IncidentMetric = Literal[
    "playback_failure_pct", "start_failure_pct", "rebuffer_pct", "startup_p95_ms",
    "plays_share_pct",
    # Control-plane incidents (streams.service_detector): a service at fault.
    "service_error_pct", "service_latency_p50_ms", "service_fallback_pct",
]  # fmt: skip
IncidentStatus = Literal["open", "resolved"]
Severity = Literal["minor", "major", "critical"]


class SessionError(BaseModel):
    """One error a session hit."""

    model_config = ConfigDict(frozen=True)

    code: str
    category: str
    severity: Literal["fatal", "warning"]
    at: datetime
    http_status: int | None = None


class SessionSummary(BaseModel):
    """Everything known about one playback session when it closed."""

    model_config = ConfigDict(frozen=True)

    metrics_version: str = metrics.METRICS_VERSION
    session_id: str
    revision: int = 0
    ended_by: EndedBy
    late_events: int = Field(0, description="Events that arrived after the session closed.")
    duplicate_events: int = 0
    event_count: int

    member_id: str
    profile_id: str
    title_id: str
    device_id: str
    device_type: str
    device_model: str
    os: str
    app_version: str
    country: str
    region: str
    isp: str
    asn: int
    oca_id: str
    cdn_tier: str
    connection_type: str
    genre: str | None = None
    device_family: str | None = None
    oca_site: str | None = None
    # Custom dimensions (Settings.custom_dimensions) of the session's first event.
    dimensions: dict[str, str] = Field(default_factory=dict)

    first_event_at: datetime
    last_event_at: datetime
    play_requested_at: datetime | None
    first_frame_at: datetime | None
    ended_at: datetime | None
    exit_reason: str | None

    start_outcome: metrics.StartOutcome
    playback_failed: bool
    in_play_failure: bool
    startup_ms: int | None
    watch_ms: int
    watch_source: Literal["player", "estimated"]
    rebuffer_ms: int
    rebuffer_count: int
    rebuffer_pct: float | None
    rebuffers_per_minute: float | None
    avg_bitrate_kbps: float | None
    upshifts: int
    downshifts: int
    pauses: int
    seeks: int
    fatal_error_code: str | None
    errors: list[SessionError]

    score_startup: float | None
    score_smoothness: float | None
    score_quality: float | None
    score_success: float
    score_aggregate: float


_ADDITIVE: tuple[str, ...] = (
    "events",
    "plays",
    "active_sessions",
    "concurrent_viewers",
    "ended_sessions",
    "failed_sessions",
    "failed_starts",
    "start_failures",
    "exits_before_start",
    "in_play_failures",
    "rebuffer_ms",
    "rebuffer_count",
    "rebuffering_sessions",
    "watch_ms",
    "bitrate_kbps_ms",
    "bitrate_ms",
    "upshifts",
    "downshifts",
)


class MinuteCounts(BaseModel):
    """Additive aggregates of one minute for one dimension value (merge = add)."""

    model_config = ConfigDict(extra="forbid")

    events: int = 0
    plays: int = 0
    active_sessions: int = 0
    concurrent_viewers: int = 0
    ended_sessions: int = 0
    failed_sessions: int = 0
    failed_starts: int = Field(
        default=0, description="Sessions whose start failed (fatal before first frame) now."
    )
    start_failures: int = 0
    exits_before_start: int = 0
    in_play_failures: int = 0
    startup: LatencySketch = Field(default_factory=LatencySketch)
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    rebuffering_sessions: int = Field(
        default=0, description="Sessions with a stall ending this minute."
    )
    watch_ms: int = 0
    bitrate_kbps_ms: float = 0.0
    bitrate_ms: int = 0
    upshifts: int = 0
    downshifts: int = 0
    errors_by_code: dict[str, int] = Field(default_factory=dict)

    def clone(self) -> MinuteCounts:
        """`model_copy(deep=True)`, without the generic deepcopy (the detector copies
        every dimension value's counts each minute): the sketch and the error counts are
        the mutable fields."""
        if type(self) is not MinuteCounts:  # a subclass may have more of them
            return self.model_copy(deep=True)
        out = self.__copy__()  # fields and fields-set copied, as `model_copy` does
        f = out.__dict__
        f["startup"] = self.startup.clone()
        f["errors_by_code"] = dict(self.errors_by_code)
        return out

    def merge_in(self, other: MinuteCounts) -> None:
        """Add `other` into this one."""
        # Plain numbers, no validation on assignment: what `setattr` does through
        # pydantic's `__setattr__`, field values and fields-set alike, per field.
        f, o = self.__dict__, other.__dict__
        for name in _ADDITIVE:
            f[name] += o[name]
        self.__pydantic_fields_set__.update(_ADDITIVE)
        self.startup.merge_in(other.startup)
        errors = self.errors_by_code
        for code, n in other.errors_by_code.items():
            errors[code] = errors.get(code, 0) + n

    def minus(self, other: MinuteCounts) -> MinuteCounts:
        """This aggregate without `other` (a part of it): "everything but this value"."""
        out = _EMPTY_COUNTS.__copy__()  # `MinuteCounts()`, its two mutable fields new below
        f, a, b = out.__dict__, self.__dict__, other.__dict__
        for name in _ADDITIVE:
            f[name] = a[name] - b[name]
        f["startup"] = self.startup.minus(other.startup)
        f["errors_by_code"] = {}
        out.__pydantic_fields_set__.update(_MINUS_SET)
        return out

    # Derived metrics, always from the one metrics module.
    @property
    def rebuffer_pct(self) -> float | None:
        """Rebuffer % of this minute."""
        return metrics.rebuffer_pct(self.rebuffer_ms, self.watch_ms)

    @property
    def playback_failure_pct(self) -> float | None:
        """Sessions failing this minute / sessions active this minute."""
        return metrics.ratio_pct(self.failed_sessions, self.active_sessions)

    @property
    def failed_start_pct(self) -> float | None:
        """Starts that failed this minute / plays requested this minute (live VSF)."""
        return metrics.ratio_pct(self.failed_starts, self.plays)

    @property
    def ebvs_pct(self) -> float | None:
        """Exits before video start / sessions ended this minute."""
        return metrics.ratio_pct(self.exits_before_start, self.ended_sessions)

    @property
    def start_failure_pct(self) -> float | None:
        """Start failures / sessions ended this minute."""
        return metrics.ratio_pct(self.start_failures, self.ended_sessions)

    @property
    def avg_bitrate_kbps(self) -> float | None:
        """Time-weighted average bitrate over the minute's watch time."""
        return self.bitrate_kbps_ms / self.bitrate_ms if self.bitrate_ms else None


_EMPTY_COUNTS = MinuteCounts()  # copied by `minus`, never changed
_MINUS_SET = (*_ADDITIVE, "startup")  # the fields `minus` sets


class MinuteRollup(BaseModel):
    """One tumbling event-time minute for one dimension value, from one partial.

    Workers roll up the partitions they own, so a minute of one dimension value may come as
    several partials (`partial` = source partition); every count is additive, so readers
    sum partials (latest revision of each) and compute ratios with `metrics.SQL_METRICS`.
    """

    model_config = ConfigDict(frozen=True)

    metrics_version: str = metrics.METRICS_VERSION
    window_start: datetime
    window_end: datetime
    dimension: str
    value: str
    partial: str
    revision: int = 0
    late_events: int = Field(0, description="Events that arrived after the window closed.")
    counts: MinuteCounts

    startup_p50_ms: float | None = None
    startup_p95_ms: float | None = None
    rebuffer_pct: float | None = None
    playback_failure_pct: float | None = None
    ebvs_pct: float | None = None
    avg_bitrate_kbps: float | None = None

    @property
    def key(self) -> str:
        """Kafka key: one per minute x dimension value x partial."""
        return f"{self.window_start.isoformat()}|{self.dimension}|{self.value}|{self.partial}"

    @classmethod
    def of(
        cls,
        *,
        window_start: datetime,
        window_end: datetime,
        dimension: str,
        value: str,
        partial: str,
        counts: MinuteCounts,
        revision: int = 0,
        late_events: int = 0,
    ) -> MinuteRollup:
        """Build a rollup with its derived metrics filled in."""
        return cls(
            window_start=window_start,
            window_end=window_end,
            dimension=dimension,
            value=value,
            partial=partial,
            revision=revision,
            late_events=late_events,
            counts=counts,
            startup_p50_ms=counts.startup.quantile(0.5),
            startup_p95_ms=counts.startup.quantile(0.95),
            rebuffer_pct=counts.rebuffer_pct,
            playback_failure_pct=counts.playback_failure_pct,
            ebvs_pct=counts.ebvs_pct,
            avg_bitrate_kbps=counts.avg_bitrate_kbps,
        )


class Incident(BaseModel):
    """An anomaly in a QoE metric, localised to the dimension value that explains it."""

    model_config = ConfigDict(frozen=True)

    metrics_version: str = metrics.METRICS_VERSION
    incident_id: str
    status: IncidentStatus
    revision: int = 0
    metric: IncidentMetric
    dimension: str
    value: str
    started_at: datetime
    detected_at: datetime = Field(description="End of the minute whose data raised it.")
    last_anomalous_at: datetime
    resolved_at: datetime | None = None
    observed: float
    expected: float
    affected_sessions: int
    severity: Severity
    explanation: str
    # Control-plane incidents only (dimension "service"): where the service is at fault.
    service: str | None = None
    endpoint: str | None = None
    region: str | None = None
    instance_group: str | None = None
