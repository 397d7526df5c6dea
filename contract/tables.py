"""The column specification of every warehouse table and search index family.

Each upstream record is flattened into one flat record whose keys are a table's columns;
the same flat record is the search document and the warehouse row, so support lookups,
SQL, the dashboards and the console all read the names below. A column normally holds the
record field of the same name; `Column.source` names the field when it differs (a payload
key that would be ambiguous as a flat column, or a record field that collides with the
provenance columns every sink adds).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.columns import SOURCE_COLUMNS, Column
from contract.span_tables import SERVICE_MINUTE_COLUMNS, SPAN_COLUMNS
from streamwatch import topics

_C = Column

DEVICE_NETWORK_COLUMNS: tuple[Column, ...] = (
    _C("device_id", "keyword", "Device identifier."),
    _C("device_type", "keyword", "tv | mobile | web | console."),
    _C("device_model", "keyword", "Device model, e.g. 'SmartTV-X1'."),
    _C("os", "keyword", "Operating system and version."),
    _C("app_version", "keyword", "Player application version."),
    _C("country", "keyword", "ISO 3166-1 alpha-2 country of the member's network."),
    _C("region", "keyword", "Region of the member's network."),
    _C("isp", "keyword", "Member's internet service provider."),
    _C("asn", "long", "Autonomous system number of the member's network."),
    _C("oca_id", "keyword", "Open Connect Appliance (edge cache) that served the bytes."),
    _C("cdn_tier", "keyword", "edge | origin."),
    _C("connection_type", "keyword", "wifi | ethernet | cellular | unknown."),
)

EVENT_COLUMNS: tuple[Column, ...] = (
    _C("event_id", "keyword", "UUID of the event; the idempotency key (unique in `events`)."),
    _C("event_type", "keyword", "play_requested, first_frame, heartbeat, error, ... (see ingest)."),
    _C("schema_version", "int", "Version of the event contract."),
    _C("event_time", "timestamp", "When the player says it happened (client clock, clamped)."),
    _C("received_at", "timestamp", "When the collector received it."),
    _C("member_id", "keyword", "Account (member) id."),
    _C("profile_id", "keyword", "Profile within the account."),
    _C("session_id", "keyword", "Playback session (one attempt to play)."),
    _C("title_id", "keyword", "Title being played."),
    *DEVICE_NETWORK_COLUMNS,
    _C("clock_skew_clamped", "bool", "True when the collector clamped event_time."),
    _C("derived_facts", "json", 'Facts the collector derived (v2), e.g. ["network.isp"].'),
    _C("unknown_facts", "json", "Facts nobody knew (v2; value 'unknown', ASN 0, or null)."),
    _C("dimensions", "json", "Custom dimensions sent with the event (v2), as JSON."),
    _C("autoplay", "bool", "play_requested: started by autoplay."),
    _C("resume_position_ms", "long", "play_requested: position playback resumes from."),
    _C("latency_ms", "int", "manifest_loaded / license_acquired: request latency."),
    _C("renditions", "int", "manifest_loaded: number of renditions in the manifest."),
    _C("drm", "keyword", "license_acquired: widevine | playready | fairplay | none."),
    _C("startup_ms", "int", "first_frame: play_requested → first frame (video startup time)."),
    _C("bitrate_kbps", "int", "first_frame / heartbeat: current video bitrate."),
    _C("buffer_ms", "int", "heartbeat: buffer length (CMCD bl)."),
    _C("throughput_kbps", "long", "heartbeat: measured throughput (CMCD mtp)."),
    _C("dropped_frames", "int", "heartbeat: frames dropped since the last heartbeat."),
    _C("position_ms", "long", "heartbeat / rebuffer_start / pause: playhead position."),
    _C("playing", "bool", "heartbeat: true when playing (not paused)."),
    _C("from_kbps", "int", "bitrate_change: previous bitrate."),
    _C("to_kbps", "int", "bitrate_change: new bitrate."),
    _C("duration_ms", "int", "rebuffer_end: length of the stall."),
    _C("paused_ms", "long", "resume: how long playback was paused."),
    _C("seek_from_ms", "long", "seek: position before the seek.", "payload.from_ms"),
    _C("seek_to_ms", "long", "seek: position after the seek.", "payload.to_ms"),
    _C("error_code", "keyword", "error: code from the error catalog.", "payload.code"),
    _C(
        "error_category",
        "keyword",
        "error: network | drm | cdn | manifest | decoder | ...",
        "payload.category",
    ),
    _C("error_severity", "keyword", "error: fatal | warning.", "payload.severity"),
    _C("http_status", "int", "error: HTTP status of the failed request, if any."),
    _C(
        "error_message",
        "text",
        "error: human-readable message (searchable by word).",
        "payload.message",
    ),
    _C("watched_ms", "long", "playback_end: time watched in the session."),
    _C("exit_reason", "keyword", "playback_end: completed | user_exit | error | ..."),
    _C("genre", "keyword", "Genre of the title (streams enrichment), if known."),
    _C("device_family", "keyword", "Device family (streams enrichment), if known."),
    _C("oca_site", "keyword", "Site of the OCA (streams enrichment), if known."),
    _C("extra", "json", "Unknown fields as JSON (never dropped)."),
    *SOURCE_COLUMNS,
)

SESSION_COLUMNS: tuple[Column, ...] = (
    _C("session_id", "keyword", "Playback session id (unique in `sessions`)."),
    _C("revision", "int", "Revision of the summary; a later one supersedes (late events)."),
    _C("metrics_version", "keyword", "Version of contract.metrics the summary was computed with."),
    _C("ended_by", "keyword", "playback_end | timeout."),
    _C("late_events", "int", "Events that arrived after the session closed."),
    _C("duplicate_events", "int", "Duplicate deliveries the sessionizer dropped."),
    _C("event_count", "int", "Events in the session."),
    _C("member_id", "keyword", "Account (member) id."),
    _C("profile_id", "keyword", "Profile within the account."),
    _C("title_id", "keyword", "Title played."),
    *DEVICE_NETWORK_COLUMNS,
    _C("genre", "keyword", "Genre of the title (enrichment), if known."),
    _C("device_family", "keyword", "Device family (enrichment), if known."),
    _C("oca_site", "keyword", "Site of the OCA (enrichment), if known."),
    _C("dimensions", "json", "Custom dimensions of the session (Settings), as JSON."),
    _C("first_event_at", "timestamp", "Time of the session's first event (partitions the table)."),
    _C("last_event_at", "timestamp", "Time of the session's last event."),
    _C("play_requested_at", "timestamp", "play_requested time, if seen."),
    _C("first_frame_at", "timestamp", "first_frame time; null when video never started."),
    _C("ended_at", "timestamp", "playback_end time; null when closed by timeout."),
    _C("exit_reason", "keyword", "Why playback ended."),
    _C("start_outcome", "keyword", "started | start_failure | exit_before_start | not_requested."),
    _C("playback_failed", "bool", "Session ended in a fatal error (any stage)."),
    _C("in_play_failure", "bool", "Fatal error after the first frame (industry VPF)."),
    _C("startup_ms", "int", "Video startup time: play_requested -> first_frame; null if none."),
    _C("watch_ms", "long", "Time spent playing."),
    _C("watch_source", "keyword", "player (reported) | estimated (from heartbeats)."),
    _C("rebuffer_ms", "long", "Time spent rebuffering."),
    _C("rebuffer_count", "int", "Number of rebuffers."),
    _C("rebuffer_pct", "double", "rebuffer_ms / (watch_ms + rebuffer_ms) * 100."),
    _C("rebuffers_per_minute", "double", "Rebuffers per minute watched."),
    _C("avg_bitrate_kbps", "double", "Time-weighted average bitrate."),
    _C("upshifts", "int", "Bitrate upshifts."),
    _C("downshifts", "int", "Bitrate downshifts."),
    _C("pauses", "int", "Pauses."),
    _C("seeks", "int", "Seeks."),
    _C("fatal_error_code", "keyword", "Code of the fatal error, if any."),
    _C(
        "session_errors",
        "json",
        "Errors of the session as JSON [{code, category, severity, at}].",
        "errors",
    ),
    _C("score_startup", "double", "0-100 startup score."),
    _C("score_smoothness", "double", "0-100 smoothness score."),
    _C("score_quality", "double", "0-100 quality score."),
    _C("score_success", "double", "0-100 success score."),
    _C("score_aggregate", "double", "Mean of the available 0-100 scores."),
    _C("extra", "json", "Fields of the summary without a column, as JSON."),
    *SOURCE_COLUMNS,
)

MINUTE_COLUMNS: tuple[Column, ...] = (
    _C("window_start", "timestamp", "Start of the 1-minute event-time window (UTC)."),
    _C("window_end", "timestamp", "End of the window (exclusive)."),
    _C("dimension", "keyword", "all, or one of the rollup dimensions of contract.dimensions."),
    _C("value", "keyword", "Value of the dimension ('all' for the total)."),
    _C("partial", "keyword", "Source partition of this partial; sum partials for the minute."),
    _C("revision", "int", "Revision of the partial; a later one supersedes (late events)."),
    _C("metrics_version", "keyword", "Version of contract.metrics used."),
    _C("late_events", "int", "Events that arrived after the window closed."),
    _C("events", "long", "Events in the window."),
    _C("plays", "long", "Sessions that requested play in the window."),
    _C("active_sessions", "long", "Sessions active in the window."),
    _C("concurrent_viewers", "long", "Sessions playing (not paused) in the window."),
    _C("ended_sessions", "long", "Sessions that ended in the window."),
    _C("failed_sessions", "long", "Sessions that failed (fatal error) in the window."),
    _C("start_failures", "long", "Video start failures in the window."),
    _C("exits_before_start", "long", "Exits before video start in the window."),
    _C("in_play_failures", "long", "Fatal errors after first frame in the window."),
    _C("rebuffer_ms", "long", "Rebuffer time in the window."),
    _C("rebuffer_count", "long", "Rebuffers in the window."),
    _C("watch_ms", "long", "Watch time in the window."),
    _C("bitrate_kbps_ms", "double", "Sum of bitrate x time (for the time-weighted average)."),
    _C("bitrate_ms", "long", "Time with a known bitrate."),
    _C("upshifts", "long", "Bitrate upshifts."),
    _C("downshifts", "long", "Bitrate downshifts."),
    _C("errors_by_code", "json", "Error counts by code as JSON {code: n}."),
    _C(
        "startup_sketch",
        "json",
        "Mergeable startup-time sketch (contract.sketch) as JSON.",
        "startup",
    ),
    _C("startup_p50_ms", "double", "Startup time p50 of this partial."),
    _C("startup_p95_ms", "double", "Startup time p95 of this partial."),
    _C("rebuffer_pct", "double", "Rebuffer % of this partial."),
    _C("playback_failure_pct", "double", "Playback failure % of this partial."),
    _C("ebvs_pct", "double", "Exits before video start % of this partial."),
    _C("avg_bitrate_kbps", "double", "Time-weighted average bitrate of this partial."),
    _C("extra", "json", "Fields of the rollup without a column, as JSON."),
    *SOURCE_COLUMNS,
)

INCIDENT_COLUMNS: tuple[Column, ...] = (
    _C("incident_id", "keyword", "Incident id (unique in `incidents`)."),
    _C("status", "keyword", "open | resolved."),
    _C("revision", "int", "Revision; a later one supersedes."),
    _C("metrics_version", "keyword", "Version of contract.metrics used."),
    _C("metric", "keyword", "Metric that departed (contract.records.IncidentMetric)."),
    _C("dimension", "keyword", "Root-cause dimension, e.g. oca_id."),
    _C("value", "keyword", "Value of that dimension, e.g. 'oca-17'."),
    _C("started_at", "timestamp", "First anomalous minute (partitions the table)."),
    _C("detected_at", "timestamp", "End of the minute whose data raised it."),
    _C("last_anomalous_at", "timestamp", "Last anomalous minute."),
    _C("resolved_at", "timestamp", "When it ended; null while open."),
    _C("observed", "double", "Observed metric value."),
    _C("expected", "double", "Expected (baseline) value."),
    _C("affected_sessions", "long", "Sessions affected."),
    _C("severity", "keyword", "minor | major | critical."),
    _C("explanation", "text", "Human-readable explanation (searchable by word)."),
    _C("extra", "json", "Fields of the incident without a column, as JSON."),
    *SOURCE_COLUMNS,
)

DEADLETTER_COLUMNS: tuple[Column, ...] = (
    _C(
        "reason",
        "keyword",
        "Machine-readable reason, e.g. schema_invalid, search.mapper_parsing_exception.",
    ),
    _C("detail", "text", "Human-readable explanation."),
    _C(
        "source",
        "keyword",
        "Stage that rejected it: collector, streams, sink.search, sink.warehouse.",
    ),
    _C("source_topic", "keyword", "Topic the rejected record was read from, if any."),
    _C("origin_partition", "int", "Partition of the rejected record, if any.", "source_partition"),
    _C("origin_offset", "long", "Offset of the rejected record, if any.", "source_offset"),
    _C("event_id", "keyword", "event_id of the rejected event, when known."),
    _C("original_b64", "keyword", "The rejected bytes, base64."),
    _C("rejected_at", "timestamp", "When it was rejected (partitions the table)."),
    _C("extra", "json", "Fields without a column, as JSON."),
    *SOURCE_COLUMNS,
)


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table / search index family and the topic that feeds it."""

    name: str
    topic: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # dedupe key
    time_column: str  # partitions the Parquet files (date=/hour=)
    latest_first: str  # ORDER BY inside the key: the first row is the one readers see

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)


_LATEST = "revision DESC NULLS LAST, ingested_at DESC, source_offset DESC"
TABLES: tuple[TableSpec, ...] = (
    # First delivery of an event wins (all deliveries are identical).
    TableSpec(
        "events", topics.EVENTS, EVENT_COLUMNS, ("event_id",), "event_time",
        "ingested_at ASC, source_offset ASC",
    ),
    TableSpec(
        "sessions", topics.SESSIONS, SESSION_COLUMNS, ("session_id",), "first_event_at", _LATEST
    ),
    TableSpec(
        "qoe_minute", topics.MINUTE, MINUTE_COLUMNS,
        ("window_start", "dimension", "value", "partial"), "window_start", _LATEST,
    ),
    TableSpec(
        "incidents", topics.INCIDENTS, INCIDENT_COLUMNS, ("incident_id",), "started_at", _LATEST
    ),
    # Each dead-letter message once (keyed by its own coordinates in the dead-letter topic).
    TableSpec(
        "deadletters", topics.DEADLETTER, DEADLETTER_COLUMNS,
        ("source_partition", "source_offset"), "rejected_at",
        "ingested_at ASC",
    ),
    # Control-plane spans (first delivery wins) and their minute rollups (contract.span_tables).
    TableSpec(
        "spans", topics.SPANS, SPAN_COLUMNS, ("trace_id", "span_id"), "start_time",
        "ingested_at ASC, source_offset ASC",
    ),
    TableSpec(
        "service_minute", topics.SERVICE_MINUTE, SERVICE_MINUTE_COLUMNS,
        ("minute", "service", "endpoint", "region"), "minute", _LATEST,
    ),
)  # fmt: skip
TABLE_BY_TOPIC: dict[str, TableSpec] = {t.topic: t for t in TABLES}
TABLE_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
