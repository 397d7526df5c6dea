"""Control plane: requests/s, error %, fallback %, latency and cache hits per service and
endpoint, from the warehouse's `service_minute` view (the streams' 1-minute span rollups).

Rates are over the minutes the rollups cover in the range (`n_minutes`, the same divisor for
every row, so the rows add up to the whole). Latency quantiles cannot be merged exactly from
per-minute quantiles: p50 is the request-weighted mean of the minutes' p50, p99 the worst
minute's p99, and the page says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from dashboards.filters import Filters
from dashboards.queries.common import query_df

RELATION = "service_minute"


def _where(filters: Filters) -> tuple[str, list[Any]]:
    return Filters(filters.start, filters.end).where("minute")


def has_data(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse holds any service minute."""
    row = con.execute(f"SELECT count(*) FROM {RELATION}").fetchone()
    return bool(row and row[0])


def newest_minute(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest minute with control-plane traffic."""
    row = con.execute(f"SELECT max(minute) FROM {RELATION}").fetchone()
    value = row[0] if row else None
    return value if isinstance(value, datetime) else None


def headline(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, float | None]:
    """The whole control plane over the range: requests/s, error %, fallback %, cache hit %."""
    where, params = _where(filters)
    row = con.execute(
        f"""SELECT sum(requests) / (60.0 * count(DISTINCT minute)) AS requests_per_s,
          100.0 * sum(errors) / nullif(sum(requests), 0) AS error_pct,
          100.0 * sum(fallbacks) / nullif(sum(requests), 0) AS fallback_pct,
          100.0 * sum(cache_hits) / nullif(sum(cache_lookups), 0) AS cache_hit_pct
        FROM {RELATION} WHERE {where}""",
        params,
    ).fetchone()
    names = ("requests_per_s", "error_pct", "fallback_pct", "cache_hit_pct")
    return {
        n: (None if row is None or row[i] is None else float(row[i])) for i, n in enumerate(names)
    }


def by_endpoint(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """One row per service and endpoint over the range, busiest first."""
    where, params = _where(filters)
    return query_df(
        con,
        f"""WITH r AS (SELECT * FROM {RELATION} WHERE {where}),
             n AS (SELECT count(DISTINCT minute) AS n_minutes FROM r)
        SELECT service, endpoint,
          sum(requests) AS requests,
          sum(requests) / (60.0 * any_value(n.n_minutes)) AS requests_per_s,
          100.0 * sum(errors) / nullif(sum(requests), 0) AS error_pct,
          100.0 * sum(fallbacks) / nullif(sum(requests), 0) AS fallback_pct,
          sum(latency_p50_ms * requests) / nullif(sum(requests)
            FILTER (WHERE latency_p50_ms IS NOT NULL), 0) AS latency_p50_ms,
          max(latency_p99_ms) AS latency_p99_ms,
          100.0 * sum(cache_hits) / nullif(sum(cache_lookups), 0) AS cache_hit_pct
        FROM r, n GROUP BY service, endpoint
        ORDER BY requests DESC, service, endpoint""",
        params,
    )


def per_minute(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Per minute and service: requests/s, error %, fallback %, worst p99 (for the charts)."""
    where, params = _where(filters)
    return query_df(
        con,
        f"""SELECT minute, service,
          sum(requests) / 60.0 AS requests_per_s,
          100.0 * sum(errors) / nullif(sum(requests), 0) AS error_pct,
          100.0 * sum(fallbacks) / nullif(sum(requests), 0) AS fallback_pct,
          max(latency_p99_ms) AS latency_p99_ms
        FROM {RELATION} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""",
        params,
    )


def load_per_minute(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Per minute: the whole control plane's requests/s (the capacity page's load)."""
    where, params = _where(filters)
    return query_df(
        con,
        f"""SELECT minute, sum(requests) / 60.0 AS control_plane_rps
        FROM {RELATION} WHERE {where} GROUP BY 1 ORDER BY 1""",
        params,
    )


def with_measured_load(
    con: duckdb.DuckDBPyConnection, filters: Filters, ingest: pd.DataFrame
) -> pd.DataFrame:
    """`ingest` with `control_plane_rps` taken from the service minutes where they exist
    (the measured load), instead of the estimate from the players' startup events."""
    measured = load_per_minute(con, filters)
    if measured.empty or ingest.empty:
        return ingest
    merged = ingest.drop(columns=["control_plane_rps"]).merge(measured, on="minute", how="left")
    # Inside the rollups' span a minute without rows had no requests; outside it the load
    # was not measured, so it stays empty (the line stops) rather than drawn as zero.
    inside = merged["minute"].between(measured["minute"].min(), measured["minute"].max())
    merged.loc[inside, "control_plane_rps"] = merged.loc[inside, "control_plane_rps"].fillna(0.0)
    return merged


def cache_hit_pct(con: duckdb.DuckDBPyConnection, filters: Filters) -> float | None:
    """Cache hit ratio (%) over the range; None without cache lookups."""
    return headline(con, filters)["cache_hit_pct"]
