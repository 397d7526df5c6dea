"""Record → document / row: the one place that knows the shape of upstream records.

Upstream topics carry JSON: `telemetry.events.v1` holds `ingest.events.Event` JSON (maybe
enriched by streams), `qoe.sessions.v1` / `qoe.minute.v1` / `ops.incidents.v1` hold the
records of `streams/records.py`. Each is flattened into one flat dict whose keys are the
columns below; the same flat record is the search document and the warehouse row, so support
lookups and SQL use the same field names. Whatever has no column is kept in `extra`.

To align with a changed upstream model, edit the column lists and `_RENAMES` here only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indexers.columns import Column
from streamwatch import topics

_C = Column

_SOURCE = (
    _C(
        "ingested_at",
        "timestamp",
        "When the sink wrote the row (UTC); freshness = this - event_time.",
    ),
    _C("source_partition", "int", "Kafka partition the record was read from."),
    _C("source_offset", "long", "Kafka offset the record was read from (tie-break for dedupe)."),
)

_DEVICE_NETWORK = (
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
    *_DEVICE_NETWORK,
    _C("clock_skew_clamped", "bool", "True when the collector clamped event_time."),
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
    _C("seek_from_ms", "long", "seek: position before the seek."),
    _C("seek_to_ms", "long", "seek: position after the seek."),
    _C("error_code", "keyword", "error: code from the error catalog."),
    _C("error_category", "keyword", "error: network | drm | cdn | manifest | decoder | ..."),
    _C("error_severity", "keyword", "error: fatal | warning."),
    _C("http_status", "int", "error: HTTP status of the failed request, if any."),
    _C("error_message", "text", "error: human-readable message (searchable by word)."),
    _C("watched_ms", "long", "playback_end: time watched in the session."),
    _C("exit_reason", "keyword", "playback_end: completed | user_exit | error | ..."),
    _C("extra", "json", "Unknown / enrichment fields as JSON (never dropped)."),
    *_SOURCE,
)

SESSION_COLUMNS: tuple[Column, ...] = (
    _C("session_id", "keyword", "Playback session id (unique in `sessions`)."),
    _C("member_id", "keyword", "Account (member) id."),
    _C("profile_id", "keyword", "Profile within the account."),
    _C("title_id", "keyword", "Title played."),
    *_DEVICE_NETWORK,
    _C("started_at", "timestamp", "play_requested time (or first event of the session)."),
    _C("ended_at", "timestamp", "playback_end / last event time; null while open."),
    _C("status", "keyword", "open | closed (summaries are re-emitted while a session lives)."),
    _C("startup_ms", "int", "Video startup time: play_requested → first_frame; null if none."),
    _C("video_start_failure", "bool", "Fatal error before the first frame."),
    _C("exit_before_video_start", "bool", "Play requested, no first frame, no fatal error."),
    _C("playback_failure", "bool", "Session ended in a fatal error."),
    _C("watch_ms", "long", "Time spent playing."),
    _C("rebuffer_ms", "long", "Time spent rebuffering."),
    _C("rebuffer_count", "int", "Number of rebuffers."),
    _C("rebuffer_pct", "double", "rebuffer_ms / (watch_ms + rebuffer_ms) * 100."),
    _C("avg_bitrate_kbps", "double", "Time-weighted average bitrate."),
    _C("upshifts", "int", "Bitrate upshifts."),
    _C("downshifts", "int", "Bitrate downshifts."),
    _C("error_count", "int", "Errors in the session."),
    _C("fatal_error_code", "keyword", "Code of the fatal error, if any."),
    _C("exit_reason", "keyword", "Why playback ended."),
    _C("startup_score", "double", "0-100 startup score."),
    _C("smoothness_score", "double", "0-100 smoothness score."),
    _C("quality_score", "double", "0-100 quality score."),
    _C("success_score", "double", "0-100 success score."),
    _C("extra", "json", "Fields of the summary without a column, as JSON."),
    *_SOURCE,
)

MINUTE_COLUMNS: tuple[Column, ...] = (
    _C("window_start", "timestamp", "Start of the 1-minute window (UTC)."),
    _C("dimension_key", "keyword", "Key of the dimension set, e.g. 'isp=Comcast|region=us-east'."),
    _C("region", "keyword", "Region dimension (null = all)."),
    _C("country", "keyword", "Country dimension (null = all)."),
    _C("isp", "keyword", "ISP dimension (null = all)."),
    _C("oca_id", "keyword", "OCA dimension (null = all)."),
    _C("device_type", "keyword", "Device type dimension (null = all)."),
    _C("device_model", "keyword", "Device model dimension (null = all)."),
    _C("app_version", "keyword", "App version dimension (null = all)."),
    _C("cdn_tier", "keyword", "CDN tier dimension (null = all)."),
    _C("plays", "long", "Sessions that requested play in the window."),
    _C("concurrent_viewers", "long", "Sessions playing (not paused) in the window."),
    _C("startup_p50_ms", "double", "Video startup time p50."),
    _C("startup_p95_ms", "double", "Video startup time p95."),
    _C("rebuffer_pct", "double", "Rebuffer time / (watch + rebuffer time) * 100."),
    _C("video_start_failure_pct", "double", "Video start failure %."),
    _C("playback_failure_pct", "double", "Playback failure %."),
    _C("avg_bitrate_kbps", "double", "Time-weighted average bitrate."),
    _C("errors", "long", "Error events in the window."),
    _C("extra", "json", "Fields of the rollup without a column, as JSON."),
    *_SOURCE,
)

INCIDENT_COLUMNS: tuple[Column, ...] = (
    _C("incident_id", "keyword", "Incident id (unique in `incidents`)."),
    _C("status", "keyword", "open | resolved."),
    _C("opened_at", "timestamp", "When the anomaly was first detected."),
    _C("updated_at", "timestamp", "Last update of the incident."),
    _C("resolved_at", "timestamp", "When it ended; null while open."),
    _C("metric", "keyword", "Metric that went anomalous, e.g. rebuffer_pct."),
    _C("dimension", "keyword", "Root-cause dimension, e.g. oca_id."),
    _C("dimension_value", "keyword", "Value of that dimension, e.g. 'oca-17'."),
    _C("severity", "keyword", "Severity of the incident."),
    _C("observed", "double", "Observed metric value."),
    _C("baseline", "double", "Baseline (expected) value."),
    _C("summary", "text", "Human-readable description."),
    _C("extra", "json", "Fields of the incident without a column, as JSON."),
    *_SOURCE,
)


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table / search index family and the topic that feeds it."""

    name: str
    topic: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # dedupe key: the latest row per key is the truth
    time_column: str  # partitions the Parquet files (date=/hour=)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)


TABLES: tuple[TableSpec, ...] = (
    TableSpec("events", topics.EVENTS, EVENT_COLUMNS, ("event_id",), "event_time"),
    TableSpec("sessions", topics.SESSIONS, SESSION_COLUMNS, ("session_id",), "started_at"),
    TableSpec(
        "qoe_minute",
        topics.MINUTE,
        MINUTE_COLUMNS,
        ("window_start", "dimension_key"),
        "window_start",
    ),
    TableSpec("incidents", topics.INCIDENTS, INCIDENT_COLUMNS, ("incident_id",), "opened_at"),
)
TABLE_BY_TOPIC: dict[str, TableSpec] = {t.topic: t for t in TABLES}
TABLE_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}

# Payload keys whose name would be ambiguous as a flat column.
_RENAMES: dict[str, dict[str, str]] = {
    "error": {
        "code": "error_code",
        "category": "error_category",
        "severity": "error_severity",
        "message": "error_message",
    },
    "seek": {"from_ms": "seek_from_ms", "to_ms": "seek_to_ms"},
}
# Aliases some upstream records may use for a column (first match wins).
_ALIASES: dict[str, str] = {
    "dimensions_key": "dimension_key",
    "dim_key": "dimension_key",
    "window": "window_start",
    "start": "window_start",
    "description": "summary",
}
_EVENT_COLUMN_NAMES = frozenset(c.name for c in EVENT_COLUMNS)


def flatten_event(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Event JSON → flat record (values as they came; typing happens in the store)."""
    flat: dict[str, Any] = {}
    extra: dict[str, Any] = dict(obj.get("extra") or {})
    event_type = obj.get("event_type")
    for key, value in obj.items():
        if key in ("device", "network") and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                _put(flat, extra, sub, sub_value, _EVENT_COLUMN_NAMES, f"{key}.")
        elif key == "payload" and isinstance(value, Mapping):
            renames = _RENAMES.get(str(event_type), {})
            for sub, sub_value in value.items():
                if sub == "event_type":
                    continue
                _put(
                    flat,
                    extra,
                    str(renames.get(sub, sub)),
                    sub_value,
                    _EVENT_COLUMN_NAMES,
                    "payload.",
                )
        elif key != "extra":
            _put(flat, extra, key, value, _EVENT_COLUMN_NAMES, "")
    if extra:
        flat["extra"] = extra
    return flat


def flatten_record(obj: Mapping[str, Any], table: TableSpec) -> dict[str, Any]:
    """A session / minute / incident record → flat record; nested maps are lifted one level."""
    names = frozenset(table.column_names)
    flat: dict[str, Any] = {}
    extra: dict[str, Any] = (
        dict(obj.get("extra") or {}) if isinstance(obj.get("extra"), Mapping) else {}
    )
    for key, value in obj.items():
        if key == "extra":
            continue
        if isinstance(value, Mapping) and key not in names:
            for sub, sub_value in value.items():
                _put(flat, extra, str(_ALIASES.get(sub, sub)), sub_value, names, f"{key}.")
        else:
            _put(flat, extra, str(_ALIASES.get(key, key)), value, names, "")
    if extra:
        flat["extra"] = extra
    return flat


def flatten(obj: Mapping[str, Any], table: TableSpec) -> dict[str, Any]:
    """Flat record for `table` from one upstream JSON object."""
    return flatten_event(obj) if table.name == "events" else flatten_record(obj, table)


def _put(
    flat: dict[str, Any],
    extra: dict[str, Any],
    key: str,
    value: Any,
    names: frozenset[str],
    origin: str,
) -> None:
    if key in names and key not in flat and key not in _SOURCE_NAMES:
        flat[key] = value
    else:
        extra[f"{origin}{key}"] = value


_SOURCE_NAMES = frozenset(c.name for c in _SOURCE)


def document_id(flat: Mapping[str, Any], table: TableSpec) -> str | None:
    """Search `_id` of a flat record: its dedupe key (None when a key part is missing)."""
    parts = [flat.get(k) for k in table.key]
    if any(p is None or p == "" for p in parts):
        return None
    return "|".join(str(p) for p in parts)


def source_fields(partition: int, offset: int, ingested_at: str) -> dict[str, Any]:
    """Provenance columns added to every record by the sinks."""
    return {"source_partition": partition, "source_offset": offset, "ingested_at": ingested_at}


def all_column_names(tables: Sequence[TableSpec] = TABLES) -> set[str]:
    """Every column name of every table (used to check docs/warehouse.md)."""
    return {c.name for t in tables for c in t.columns}
