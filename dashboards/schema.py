"""The warehouse views the dashboards read, and the columns they rely on.

The column lists follow the public records of `streams.records` (flattened as the
warehouse stores them). They serve two purposes: an empty warehouse still answers every
dashboard query (empty typed views instead of "table not found"), and the fixture builder
writes exactly these columns.
"""

from __future__ import annotations

from typing import Final

from streams.rollup import DIMENSIONS as ROLLUP_DIMENSIONS

TIMESTAMP: Final = "TIMESTAMP WITH TIME ZONE"

SESSIONS_COLUMNS: Final[dict[str, str]] = {
    "session_id": "VARCHAR",
    "revision": "INTEGER",
    "metrics_version": "VARCHAR",
    "ended_by": "VARCHAR",
    "event_count": "INTEGER",
    "member_id": "VARCHAR",
    "profile_id": "VARCHAR",
    "title_id": "VARCHAR",
    "device_id": "VARCHAR",
    "device_type": "VARCHAR",
    "device_model": "VARCHAR",
    "os": "VARCHAR",
    "app_version": "VARCHAR",
    "country": "VARCHAR",
    "region": "VARCHAR",
    "isp": "VARCHAR",
    "asn": "BIGINT",
    "oca_id": "VARCHAR",
    "cdn_tier": "VARCHAR",
    "connection_type": "VARCHAR",
    "first_event_at": TIMESTAMP,
    "last_event_at": TIMESTAMP,
    "play_requested_at": TIMESTAMP,
    "first_frame_at": TIMESTAMP,
    "ended_at": TIMESTAMP,
    "exit_reason": "VARCHAR",
    "start_outcome": "VARCHAR",
    "playback_failed": "BOOLEAN",
    "in_play_failure": "BOOLEAN",
    "startup_ms": "BIGINT",
    "watch_ms": "BIGINT",
    "rebuffer_ms": "BIGINT",
    "rebuffer_count": "INTEGER",
    "rebuffer_pct": "DOUBLE",
    "avg_bitrate_kbps": "DOUBLE",
    "fatal_error_code": "VARCHAR",
    "score_aggregate": "DOUBLE",
}

QOE_MINUTE_COLUMNS: Final[dict[str, str]] = {
    "window_start": TIMESTAMP,
    "window_end": TIMESTAMP,
    "dimension": "VARCHAR",
    "value": "VARCHAR",
    "partial": "VARCHAR",
    "revision": "INTEGER",
    "events": "BIGINT",
    "plays": "BIGINT",
    "active_sessions": "BIGINT",
    "concurrent_viewers": "BIGINT",
    "ended_sessions": "BIGINT",
    "failed_sessions": "BIGINT",
    "start_failures": "BIGINT",
    "exits_before_start": "BIGINT",
    "rebuffer_ms": "BIGINT",
    "rebuffer_count": "BIGINT",
    "watch_ms": "BIGINT",
    "bitrate_kbps_ms": "DOUBLE",
    "bitrate_ms": "BIGINT",
}

INCIDENTS_COLUMNS: Final[dict[str, str]] = {
    "incident_id": "VARCHAR",
    "status": "VARCHAR",
    "revision": "INTEGER",
    "metric": "VARCHAR",
    "dimension": "VARCHAR",
    "value": "VARCHAR",
    "started_at": TIMESTAMP,
    "detected_at": TIMESTAMP,
    "last_anomalous_at": TIMESTAMP,
    "resolved_at": TIMESTAMP,
    "observed": "DOUBLE",
    "expected": "DOUBLE",
    "affected_sessions": "BIGINT",
    "severity": "VARCHAR",
    "explanation": "VARCHAR",
}

EVENTS_COLUMNS: Final[dict[str, str]] = {
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "event_time": TIMESTAMP,
    "received_at": TIMESTAMP,
    "warehoused_at": TIMESTAMP,
    "member_id": "VARCHAR",
    "session_id": "VARCHAR",
    "title_id": "VARCHAR",
    "device_type": "VARCHAR",
    "app_version": "VARCHAR",
    "region": "VARCHAR",
    "isp": "VARCHAR",
    "oca_id": "VARCHAR",
    "cdn_tier": "VARCHAR",
}

DEADLETTERS_COLUMNS: Final[dict[str, str]] = {
    "reason": "VARCHAR",
    "detail": "VARCHAR",
    "source": "VARCHAR",
    "source_topic": "VARCHAR",
    "event_id": "VARCHAR",
    "original_b64": "VARCHAR",
    "rejected_at": TIMESTAMP,
}

VIEWS: Final[dict[str, dict[str, str]]] = {
    "sessions": SESSIONS_COLUMNS,
    "qoe_minute": QOE_MINUTE_COLUMNS,
    "incidents": INCIDENTS_COLUMNS,
    "events": EVENTS_COLUMNS,
    "deadletters": DEADLETTERS_COLUMNS,
}

# Names other boxes might give the dead-letter view; the first one present is used.
DEADLETTER_VIEW_NAMES: Final = ("deadletters", "deadletter", "dead_letters")
# Columns that may hold "when the warehouse stored the event" (freshness end point).
STORED_AT_COLUMNS: Final = ("warehoused_at", "indexed_at", "ingested_at", "written_at")

# Dimensions the SRE filters and breaks down by: the rollup dimensions of streams.
DIMENSIONS: Final[tuple[str, ...]] = ROLLUP_DIMENSIONS
DIMENSION_LABELS: Final[dict[str, str]] = {
    "region": "Region",
    "isp": "ISP",
    "oca_id": "OCA",
    "device_type": "Device type",
    "os": "OS",
    "app_version": "App version",
    "title_id": "Title",
}
