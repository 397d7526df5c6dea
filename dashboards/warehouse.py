"""Read-only access to the warehouse for the dashboards.

The warehouse belongs to `indexers/`: its `warehouse_reader.connect_readonly(settings)`
gives DuckDB views over immutable Parquet partitions, so a dashboard never takes the
writer's lock. Until that module exists (and for any view it does not provide), this
module falls back to a clearly-marked ADAPTER: views over `<warehouse>/<view>/**/*.parquet`
when such files exist, otherwise an empty view with the columns of `dashboards.schema`, so
every page renders on an empty warehouse instead of failing with "table not found".
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import duckdb

from dashboards.schema import DEADLETTER_VIEW_NAMES, STORED_AT_COLUMNS, TIMESTAMP, VIEWS
from streamwatch.settings import Settings

log = logging.getLogger(__name__)


def warehouse_root(settings: Settings) -> Path:
    """Where the warehouse's Parquet partitions live."""
    return settings.warehouse_dir or settings.data_dir / "warehouse"


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection exposing every view the dashboards query."""
    con = _indexers_connection(settings)
    if con is None:
        con = duckdb.connect(":memory:")
    ensure_views(con, warehouse_root(settings))
    create_dashboard_views(con)
    return con


def _indexers_connection(settings: Settings) -> duckdb.DuckDBPyConnection | None:
    try:
        reader: Any = importlib.import_module("indexers.warehouse_reader")
    except ModuleNotFoundError as exc:
        if exc.name not in ("indexers.warehouse_reader", "indexers"):
            raise
        return None
    try:
        con: duckdb.DuckDBPyConnection = reader.connect_readonly(settings)
    except Exception:  # a reader bug must not blank the SRE's screen: fall back, loudly
        log.exception("indexers.warehouse_reader failed; using the dashboards' own views")
        return None
    return con


def relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views visible on `con`."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {str(r[0]) for r in rows}


def columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    """Column names of one table or view."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema()",
        [relation],
    ).fetchall()
    return {str(r[0]) for r in rows}


def ensure_views(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """ADAPTER: create each missing view from Parquet files, or empty with its schema."""
    present = relations(con)
    for name, cols in VIEWS.items():
        aliases = DEADLETTER_VIEW_NAMES if name == "deadletters" else (name,)
        existing = next((a for a in aliases if a in present), None)
        if existing == name:
            continue
        if existing is not None:
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {existing}")
            continue
        files = sorted((root / name).glob("**/*.parquet")) if (root / name).is_dir() else []
        if files:
            glob = str(root / name / "**" / "*.parquet").replace("'", "''")
            con.execute(
                f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet('{glob}', "
                "hive_partitioning = true, union_by_name = true)"
            )
        else:
            select = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in cols.items())
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT {select} WHERE false")


# --- normalized views ------------------------------------------------------------------------
# The dashboards query `dash_*` views with the field names of `streams.records` (so the
# expressions of `streams.metrics.SQL_METRICS` apply unchanged). Each field is taken from the
# first warehouse column that holds it, else from the row's `extra` JSON, else NULL: the
# warehouse's column names may still move while the boxes align, the dashboards should not.

_SESSION_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # field: (SQL type, warehouse columns that may hold it, first wins)
    "session_id": ("VARCHAR", ("session_id",)),
    "member_id": ("VARCHAR", ("member_id",)),
    "title_id": ("VARCHAR", ("title_id",)),
    "device_type": ("VARCHAR", ("device_type",)),
    "os": ("VARCHAR", ("os",)),
    "app_version": ("VARCHAR", ("app_version",)),
    "region": ("VARCHAR", ("region",)),
    "isp": ("VARCHAR", ("isp",)),
    "oca_id": ("VARCHAR", ("oca_id",)),
    "cdn_tier": ("VARCHAR", ("cdn_tier",)),
    "dimensions": ("VARCHAR", ("dimensions",)),  # custom dimensions, JSON
    "play_requested_at": (TIMESTAMP, ("play_requested_at", "started_at")),
    "first_event_at": (TIMESTAMP, ("first_event_at", "started_at", "play_requested_at")),
    "first_frame_at": (TIMESTAMP, ("first_frame_at",)),
    "ended_at": (TIMESTAMP, ("ended_at", "last_event_at")),
    "last_event_at": (TIMESTAMP, ("last_event_at", "ended_at")),
    "start_outcome": ("VARCHAR", ("start_outcome",)),
    "playback_failed": ("BOOLEAN", ("playback_failed", "playback_failure")),
    "video_start_failure": ("BOOLEAN", ("video_start_failure",)),
    "exit_before_video_start": ("BOOLEAN", ("exit_before_video_start",)),
    "startup_ms": ("BIGINT", ("startup_ms",)),
    "watch_ms": ("BIGINT", ("watch_ms",)),
    "rebuffer_ms": ("BIGINT", ("rebuffer_ms",)),
    "rebuffer_count": ("BIGINT", ("rebuffer_count",)),
    "avg_bitrate_kbps": ("DOUBLE", ("avg_bitrate_kbps",)),
    "score_aggregate": ("DOUBLE", ("score_aggregate",)),
    "revision": ("BIGINT", ("revision",)),
}

_INCIDENT_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "incident_id": ("VARCHAR", ("incident_id",)),
    "status": ("VARCHAR", ("status",)),
    "metric": ("VARCHAR", ("metric",)),
    "dimension": ("VARCHAR", ("dimension",)),
    "value": ("VARCHAR", ("value", "dimension_value")),
    "started_at": (TIMESTAMP, ("started_at", "opened_at")),
    "detected_at": (TIMESTAMP, ("detected_at", "opened_at", "started_at")),
    "last_anomalous_at": (TIMESTAMP, ("last_anomalous_at", "updated_at")),
    "resolved_at": (TIMESTAMP, ("resolved_at",)),
    "observed": ("DOUBLE", ("observed",)),
    "expected": ("DOUBLE", ("expected", "baseline")),
    "affected_sessions": ("BIGINT", ("affected_sessions",)),
    "severity": ("VARCHAR", ("severity",)),
    "explanation": ("VARCHAR", ("explanation", "summary")),
    "revision": ("BIGINT", ("revision",)),
}

_EVENT_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "event_id": ("VARCHAR", ("event_id",)),
    "event_type": ("VARCHAR", ("event_type",)),
    "event_time": (TIMESTAMP, ("event_time",)),
    "received_at": (TIMESTAMP, ("received_at",)),
    "stored_at": (TIMESTAMP, STORED_AT_COLUMNS),
    "member_id": ("VARCHAR", ("member_id",)),
    "session_id": ("VARCHAR", ("session_id",)),
    "cdn_tier": ("VARCHAR", ("cdn_tier",)),
}

_DEADLETTER_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "reason": ("VARCHAR", ("reason",)),
    "source": ("VARCHAR", ("source",)),
    "rejected_at": (TIMESTAMP, ("rejected_at", "ingested_at")),
    "original_b64": ("VARCHAR", ("original_b64",)),
}


def _field_sql(have: set[str], name: str, sql_type: str, candidates: tuple[str, ...]) -> str:
    sources = [f"TRY_CAST({c} AS {sql_type})" for c in candidates if c in have]
    if "extra" in have:
        # `extra` is JSON text: indexers keep record fields without a column there.
        sources.append(f"TRY_CAST(json_extract_string(extra, '$.{name}') AS {sql_type})")
    if not sources:
        return f"CAST(NULL AS {sql_type}) AS {name}"
    expr = sources[0] if len(sources) == 1 else f"coalesce({', '.join(sources)})"
    return f"{expr} AS {name}"


def _latest_clause(have: set[str], key: str) -> str:
    # Later revisions (late events) supersede earlier ones; the view may already dedupe.
    order = [c for c in ("revision", "ingested_at", "source_offset") if c in have]
    if not order:
        return ""
    by = ", ".join(f"{c} DESC NULLS LAST" for c in order)
    return f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {by}) = 1"


def _create_normalized(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: str,
    fields: dict[str, tuple[str, tuple[str, ...]]],
    key: str | None,
) -> None:
    have = columns(con, source)
    select = ",\n  ".join(_field_sql(have, f, t, c) for f, (t, c) in fields.items())
    latest = _latest_clause(have, key) if key else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT\n  {select}\nFROM {source}{latest}")


def create_dashboard_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create the `dash_*` views the dashboard queries read."""
    _create_normalized(con, "dash_sessions_raw", "sessions", _SESSION_FIELDS, "session_id")
    # Derive what older column sets lack, from the fields they do have.
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW dash_sessions AS SELECT
          * REPLACE (
            coalesce(start_outcome, CASE
              WHEN video_start_failure THEN 'start_failure'
              WHEN exit_before_video_start THEN 'exit_before_start'
              WHEN startup_ms IS NOT NULL THEN 'started'
              WHEN play_requested_at IS NOT NULL THEN 'exit_before_start'
              ELSE 'not_requested' END) AS start_outcome,
            coalesce(first_frame_at,
              play_requested_at + to_milliseconds(startup_ms)) AS first_frame_at,
            coalesce(playback_failed, false) AS playback_failed
          )
        FROM dash_sessions_raw
        """
    )
    _create_normalized(con, "dash_incidents", "incidents", _INCIDENT_FIELDS, "incident_id")
    _create_normalized(con, "dash_events", "events", _EVENT_FIELDS, None)
    _create_normalized(con, "dash_deadletters", "deadletters", _DEADLETTER_FIELDS, None)
