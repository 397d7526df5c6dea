"""Kafka topic names: the public contract between the boxes of the data flow."""

from __future__ import annotations

from dataclasses import dataclass

RAW = "telemetry.raw.v1"
EVENTS = "telemetry.events.v1"
DEADLETTER = "telemetry.deadletter.v1"
SESSIONS = "qoe.sessions.v1"
MINUTE = "qoe.minute.v1"
INCIDENTS = "ops.incidents.v1"
NOTIFICATIONS = "ops.notifications.v1"
DELIVERIES = "ops.deliveries.v1"
ALERT_ACTIONS = "ops.alert_actions.v1"
SPANS = "telemetry.spans.v1"
SERVICE_MINUTE = "ops.service_minute.v1"

# The stream worker's Faust app id: its consumer group and the prefix of its table changelogs.
STREAMS_APP_ID = "streamwatch-streams"
# The worker's reconciliation counters per raw partition, read by `streamwatch reconcile`:
# JSON {"raw", "valid", "dead_lettered", "duplicates"} (streams.app.ValidateStats).
# The stream worker's per-partition checkpoints, carrying its reconciliation counters.
STREAMS_CHECKPOINTS_CHANGELOG = f"{STREAMS_APP_ID}-checkpoints-changelog"


@dataclass(frozen=True)
class TopicSpec:
    """One topic of DESIGN.md with what it is keyed by and what it carries."""

    name: str
    key: str
    purpose: str
    retention_ms: int = 7 * 24 * 3600 * 1000


ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(RAW, "session_id", "everything the collector or stub accepted"),
    TopicSpec(EVENTS, "session_id", "validated, deduplicated, enriched events"),
    TopicSpec(DEADLETTER, "-", "original bytes + reason + source", 30 * 24 * 3600 * 1000),
    TopicSpec(SESSIONS, "session_id", "one summary per playback session"),
    TopicSpec(MINUTE, "dimension key", "1-minute QoE rollups"),
    TopicSpec(INCIDENTS, "incident_id", "detected incidents", 90 * 24 * 3600 * 1000),
    TopicSpec(
        NOTIFICATIONS, "notification_id", "alert notifications to deliver (the outbox)",
        90 * 24 * 3600 * 1000,
    ),
    TopicSpec(
        DELIVERIES, "notification_id", "delivery log: every attempt and its answer",
        90 * 24 * 3600 * 1000,
    ),
    TopicSpec(
        ALERT_ACTIONS, "alert key / silence id", "silences and acknowledgements (audited)",
        365 * 24 * 3600 * 1000,
    ),
    TopicSpec(SPANS, "trace_id", "control-plane spans (OpenTelemetry-shaped, contract.spans)"),
    TopicSpec(SERVICE_MINUTE, "service|endpoint|region", "1-minute control-plane rollups"),
)  # fmt: skip
