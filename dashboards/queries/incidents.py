"""Incidents: the list, the metric around one incident, and who it hit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import duckdb
import pandas as pd

from contract.dimensions import DIMENSIONS
from contract.metrics import SQL_METRICS
from dashboards.filters import Filters
from dashboards.queries.common import SESSION_TIME, query_df

# Incident metric (contract.records.IncidentMetric) -> the session-level SQL of that metric.
INCIDENT_METRIC_SQL: Final[dict[str, str]] = {
    "rebuffer_pct": SQL_METRICS["session_rebuffer_pct"],
    "playback_failure_pct": SQL_METRICS["session_playback_failure_pct"],
    "startup_p95_ms": SQL_METRICS["session_startup_p95_ms"],
    "start_failure_pct": SQL_METRICS["session_start_failure_pct"],
    # The cohort's share of the minute's plays (a dimension value whose plays vanish).
    # (metric_around groups by minute and cohort, explicitly: GROUP BY ALL rejects this.)
    "plays_share_pct": "100.0 * count(*) / sum(count(*)) OVER (PARTITION BY minute)",
}
# Incident metrics charted from the minute rollups (complete per minute), and the rollup
# columns they are sums of.
ROLLUP_METRICS: Final = frozenset({"rebuffer_pct", "playback_failure_pct", "start_failure_pct"})
ROLLUP_ADDITIVE: Final = (
    "active_sessions", "ended_sessions", "failed_sessions", "start_failures",
    "rebuffer_ms", "watch_ms",
)  # fmt: skip
# Control-plane incident metric (dimension "service") -> its SQL over `service_minute`.
SERVICE_METRIC_SQL: Final[dict[str, str]] = {
    "service_error_pct": "100.0 * sum(errors) / nullif(sum(requests), 0)",
    "service_latency_p50_ms": "sum(latency_p50_ms * requests) / nullif(sum(requests), 0)",
    "service_fallback_pct": "100.0 * sum(fallbacks) / nullif(sum(requests), 0)",
}
METRIC_UNITS: Final[dict[str, str]] = {
    "rebuffer_pct": "%",
    "playback_failure_pct": "%",
    "startup_p95_ms": "ms",
    "start_failure_pct": "%",
    "plays_share_pct": "% of plays",
    "service_error_pct": "% of requests",
    "service_latency_p50_ms": "ms",
    "service_fallback_pct": "% of requests",
}


def list_incidents(
    con: duckdb.DuckDBPyConnection, filters: Filters, status: str | None = None
) -> pd.DataFrame:
    """Incidents overlapping the time range (open first, then newest first)."""
    parts, params = ["true"], []  # type: tuple[list[str], list[Any]]
    if filters.end is not None:
        parts.append("started_at < ?")
        params.append(filters.end)
    if filters.start is not None:
        parts.append("coalesce(resolved_at, last_anomalous_at, started_at) >= ?")
        params.append(filters.start)
    if status is not None:
        parts.append("status = ?")
        params.append(status)
    sql = f"""
    SELECT incident_id, status, severity, metric, dimension, value, started_at, detected_at,
           last_anomalous_at, resolved_at, observed, expected, affected_sessions, explanation
    FROM incidents WHERE {" AND ".join(parts)}
    ORDER BY status = 'open' DESC, started_at DESC, incident_id
    """
    return query_df(con, sql, params)


def incident_window(row: pd.Series) -> tuple[datetime, datetime]:
    """[start, end) of an incident: its start to resolution (or last anomalous minute)."""
    start = row["started_at"].to_pydatetime()
    end_src = row["resolved_at"] if pd.notna(row["resolved_at"]) else row["last_anomalous_at"]
    end = end_src.to_pydatetime() if pd.notna(end_src) else start
    return start, max(end, start + timedelta(minutes=1))


def _dimension_condition(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        return "true"  # "all": the whole traffic
    return f"{dimension} = ?"


def metric_around(
    con: duckdb.DuckDBPyConnection, row: pd.Series, margin: timedelta = timedelta(minutes=15)
) -> pd.DataFrame:
    """The incident's metric per minute, for its dimension value and for the rest.

    Session metrics come from `sessions` (column `sessions`: sessions per minute and
    cohort); a service's metrics from `service_minute`, the named service against the
    other services (column `requests`).
    """
    metric = str(row["metric"])
    if metric in SERVICE_METRIC_SQL:
        return _service_metric_around(con, row, margin)
    if metric in ROLLUP_METRICS and str(row["dimension"]) in DIMENSIONS:
        return _rollup_metric_around(con, row, margin)
    expr = INCIDENT_METRIC_SQL.get(metric, SQL_METRICS["session_rebuffer_pct"])
    start, end = incident_window(row)
    dimension, value = str(row["dimension"]), row["value"]
    is_dim = dimension in DIMENSIONS
    cohort = f"CASE WHEN {dimension} = ? THEN ? ELSE 'rest' END" if is_dim else "'all'"
    params: list[Any] = [value, f"{dimension}={value}"] if is_dim else []
    sql = f"""
    SELECT date_trunc('minute', {SESSION_TIME}) AS minute, {cohort} AS cohort,
           {expr} AS metric_value, count(*) AS sessions
    FROM sessions
    WHERE {SESSION_TIME} >= ? AND {SESSION_TIME} < ?
    GROUP BY 1, 2 ORDER BY 1, 2
    """
    return query_df(con, sql, [*params, start - margin, end + margin])


def _rollup_metric_around(
    con: duckdb.DuckDBPyConnection, row: pd.Series, margin: timedelta
) -> pd.DataFrame:
    """The metric from the minute rollups: the value's minutes against all traffic minus it.

    Session summaries are written when sessions end, so in the newest minutes they hold the
    failed and short sessions and not yet the ones still playing: by session, a failure
    rate there reads far too high (the rest of the traffic "failing" at 50 %). A rollup
    minute counts every session active in it; the rest is the "all" rollup minus the value,
    column by column, since every metric is a ratio of sums.
    """
    start, end = incident_window(row)
    dimension, value = str(row["dimension"]), str(row["value"])
    sums = ", ".join(f"sum({c}) AS {c}" for c in ROLLUP_ADDITIVE)
    rest = ", ".join(f"a.{c} - coalesce(v.{c}, 0) AS {c}" for c in ROLLUP_ADDITIVE)
    expr = SQL_METRICS[str(row["metric"])]
    sql = f"""
    WITH v AS (SELECT window_start AS minute, {sums} FROM qoe_minute
               WHERE dimension = ? AND value = ? AND window_start >= ? AND window_start < ?
               GROUP BY 1),
         a AS (SELECT window_start AS minute, {sums} FROM qoe_minute
               WHERE dimension = 'all' AND window_start >= ? AND window_start < ?
               GROUP BY 1),
         rest AS (SELECT a.minute, {rest} FROM a LEFT JOIN v USING (minute))
    SELECT minute, ? AS cohort, {expr} AS metric_value, sum(active_sessions) AS sessions
    FROM v GROUP BY 1
    UNION ALL
    SELECT minute, 'rest', {expr}, sum(active_sessions) FROM rest GROUP BY 1
    ORDER BY 1, 2
    """
    lo, hi = start - margin, end + margin
    return query_df(con, sql, [dimension, value, lo, hi, lo, hi, f"{dimension}={value}"])


def _service_metric_around(
    con: duckdb.DuckDBPyConnection, row: pd.Series, margin: timedelta
) -> pd.DataFrame:
    start, end = incident_window(row)
    service = str(row["value"])
    sql = f"""
    SELECT minute, CASE WHEN service = ? THEN ? ELSE 'rest' END AS cohort,
           {SERVICE_METRIC_SQL[str(row["metric"])]} AS metric_value,
           sum(requests) AS requests
    FROM service_minute
    WHERE minute >= ? AND minute < ?
    GROUP BY 1, 2 ORDER BY 1, 2
    """
    return query_df(con, sql, [service, f"service={service}", start - margin, end + margin])


def affected_members(con: duckdb.DuckDBPyConnection, row: pd.Series, limit: int = 500) -> list[str]:
    """Members with a session in the incident's dimension value during the incident."""
    start, end = incident_window(row)
    dimension = str(row["dimension"])
    cond = _dimension_condition(dimension)
    params: list[Any] = [row["value"]] if dimension in DIMENSIONS else []
    rows = con.execute(
        f"""SELECT DISTINCT member_id FROM sessions
        WHERE {cond} AND {SESSION_TIME} < ? AND coalesce(ended_at, last_event_at) >= ?
          AND member_id IS NOT NULL ORDER BY 1 LIMIT ?""",
        [*params, end, start, limit],
    ).fetchall()
    return [str(r[0]) for r in rows]


def affected_sessions(con: duckdb.DuckDBPyConnection, row: pd.Series) -> int:
    """Sessions in the incident's dimension value that overlapped the incident."""
    start, end = incident_window(row)
    dimension = str(row["dimension"])
    params: list[Any] = [row["value"]] if dimension in DIMENSIONS else []
    r = con.execute(
        f"""SELECT count(*) FROM sessions WHERE {_dimension_condition(dimension)}
        AND {SESSION_TIME} < ? AND coalesce(ended_at, last_event_at) >= ?""",
        [*params, end, start],
    ).fetchone()
    return int(r[0]) if r else 0
