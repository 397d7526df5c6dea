"""QoE overview: headline figures, the minute-by-minute series, and what hurts most."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import duckdb
import pandas as pd

from dashboards.filters import Filters
from dashboards.queries.common import PLAY_END, PLAY_START, SESSION_TIME, query_df, sessions_cte
from dashboards.schema import DIMENSIONS
from streams.metrics import SQL_METRICS

# Headline figure -> SQL over the filtered sessions `s` (from the one metrics module).
HEADLINE_SQL: Final[dict[str, str]] = {
    "sessions": "count(*)",
    "plays": "count(play_requested_at)",
    "startup_p50_ms": SQL_METRICS["session_startup_p50_ms"],
    "startup_p95_ms": SQL_METRICS["session_startup_p95_ms"],
    "rebuffer_pct": SQL_METRICS["session_rebuffer_pct"],
    "playback_failure_pct": SQL_METRICS["session_playback_failure_pct"],
    "ebvs_pct": SQL_METRICS["session_ebvs_pct"],
    "avg_bitrate_kbps": SQL_METRICS["session_avg_bitrate_kbps"],
}


def headline(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, float | None]:
    """Headline QoE figures over the filtered sessions, plus plays/min and peak concurrency."""
    cte, params = sessions_cte(filters)
    select = ", ".join(f"{expr} AS {name}" for name, expr in HEADLINE_SQL.items())
    row = con.execute(f"{cte} SELECT {select} FROM s", params).fetchone()
    out: dict[str, float | None] = {
        name: (None if v is None else float(v))
        for name, v in zip(HEADLINE_SQL, row or (), strict=False)
    }
    series = per_minute(con, filters)
    out["plays_per_minute"] = float(series["plays"].mean()) if len(series) else None
    out["peak_concurrent_viewers"] = (
        float(series["concurrent_viewers"].max()) if len(series) else None
    )
    return out


def minutes_cte(filters: Filters) -> tuple[str, list[object]]:
    """`s` (filtered sessions) plus `m`: every minute from the first play to the last end."""
    cte, params = sessions_cte(filters)
    lo = f"date_trunc('minute', min({SESSION_TIME}))"
    hi = f"date_trunc('minute', max({PLAY_END}))"
    if filters.start is not None:
        lo = f"greatest({lo}, date_trunc('minute', ?::TIMESTAMPTZ))"
        params = [*params, filters.start]
    if filters.end is not None:
        hi = f"least({hi}, date_trunc('minute', ?::TIMESTAMPTZ - INTERVAL 1 MICROSECOND))"
        params = [*params, filters.end]
    sql = (
        f"{cte}, bounds AS (SELECT {lo} AS lo, {hi} AS hi FROM s), "
        "m AS (SELECT unnest(generate_series(lo, hi, INTERVAL 1 MINUTE)) AS minute "
        "FROM bounds WHERE lo IS NOT NULL AND hi >= lo)"
    )
    return sql, params


def per_minute(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """One row per minute: plays, concurrent viewers and the QoE of sessions started then.

    Concurrent viewers follow `streams.metrics.concurrent_viewers`: sessions whose playing
    interval [first frame, end) overlaps the minute. Counted as a running sum of +1 at a
    session's first such minute and -1 after its last, not by joining every minute with
    every session (that range join was most of the overview's time at 200k sessions).
    """
    cte, params = minutes_cte(filters)
    qoe = ", ".join(
        f"{SQL_METRICS[k]} AS {n}"
        for n, k in (
            ("startup_p50_ms", "session_startup_p50_ms"),
            ("startup_p95_ms", "session_startup_p95_ms"),
            ("rebuffer_pct", "session_rebuffer_pct"),
            ("playback_failure_pct", "session_playback_failure_pct"),
            ("ebvs_pct", "session_ebvs_pct"),
            ("avg_bitrate_kbps", "session_avg_bitrate_kbps"),
        )
    )
    sql = f"""
    {cte},
    started AS (
      SELECT date_trunc('minute', {SESSION_TIME}) AS minute, count(play_requested_at) AS plays,
             {qoe}
      FROM s GROUP BY 1),
    spans AS (
      SELECT date_trunc('minute', {PLAY_START}) AS first_minute,
             date_trunc('minute', {PLAY_END} - INTERVAL 1 MICROSECOND) AS last_minute
      FROM s WHERE {PLAY_END} > date_trunc('minute', {PLAY_START})),
    deltas AS (
      SELECT first_minute AS minute, 1 AS d FROM spans
      UNION ALL SELECT last_minute + INTERVAL 1 MINUTE, -1 FROM spans
      UNION ALL SELECT minute, 0 FROM m),
    conc AS (
      SELECT minute, (sum(sum(d)) OVER (ORDER BY minute))::BIGINT AS concurrent_viewers
      FROM deltas GROUP BY minute)
    SELECT m.minute, coalesce(started.plays, 0) AS plays,
           coalesce(conc.concurrent_viewers, 0) AS concurrent_viewers,
           started.* EXCLUDE (minute, plays)
    FROM m LEFT JOIN started USING (minute) LEFT JOIN conc USING (minute)
    ORDER BY m.minute
    """
    return query_df(con, sql, params)


@dataclass(frozen=True)
class HarmMetric:
    """How a dimension value's harm to one metric is measured, in SQL over `per`/`rest`."""

    label: str
    value_sql: str  # the metric for the value's own sessions (from SQL_METRICS)
    rest_sql: str  # the same ratio over every other session, from additive sums
    excess_sql: str  # harm beyond what the rest's rate would give, in `unit`
    unit: str


# `per` holds additive sums per value, `tot` the same sums over all values; `rest` = tot-per.
HARM: Final[dict[str, HarmMetric]] = {
    "rebuffer_pct": HarmMetric(
        "Rebuffer %",
        SQL_METRICS["session_rebuffer_pct"],
        "100.0 * r_reb / nullif(r_watch + r_reb, 0)",
        "(reb - (watch + reb) * coalesce(r_reb / nullif(r_watch + r_reb, 0), 0)) / 60000.0",
        "excess rebuffer minutes",
    ),
    "playback_failure_pct": HarmMetric(
        "Playback failure %",
        SQL_METRICS["session_playback_failure_pct"],
        "100.0 * r_failed / nullif(r_n, 0)",
        "failed - n * coalesce(r_failed / nullif(r_n, 0), 0)",
        "excess failed sessions",
    ),
    "ebvs_pct": HarmMetric(
        "EBVS %",
        SQL_METRICS["session_ebvs_pct"],
        "100.0 * r_ebvs / nullif(r_n, 0)",
        "ebvs - n * coalesce(r_ebvs / nullif(r_n, 0), 0)",
        "excess exits before start",
    ),
    "startup_ms": HarmMetric(
        "Mean startup (ms)",
        "avg(startup_ms)",
        "r_startup_sum / nullif(r_started, 0)",
        "(startup_sum - started * coalesce(r_startup_sum / nullif(r_started, 0), 0)) / 1000.0",
        "excess seconds waited",
    ),
    "avg_bitrate_kbps": HarmMetric(
        "Avg bitrate (kbps)",
        SQL_METRICS["session_avg_bitrate_kbps"],
        "r_br_w / nullif(r_br_ms, 0)",
        # kbps x ms / 1000 -> kbit; / 1e6 -> Gbit not delivered at the rest's bitrate.
        "(br_ms * coalesce(r_br_w / nullif(r_br_ms, 0), 0) - br_w) / 1000.0 / 1e6",
        "Gbit short of the rest's bitrate",
    ),
}

_SUMS = """
  count(*) AS n,
  sum(coalesce(rebuffer_ms, 0))::DOUBLE AS reb,
  sum(coalesce(watch_ms, 0))::DOUBLE AS watch,
  sum(CASE WHEN playback_failed THEN 1 ELSE 0 END)::DOUBLE AS failed,
  sum(CASE WHEN start_outcome = 'exit_before_start' THEN 1 ELSE 0 END)::DOUBLE AS ebvs,
  count(startup_ms)::DOUBLE AS started,
  coalesce(sum(startup_ms), 0)::DOUBLE AS startup_sum,
  coalesce(sum(avg_bitrate_kbps * watch_ms), 0)::DOUBLE AS br_w,
  coalesce(sum(watch_ms) FILTER (WHERE avg_bitrate_kbps IS NOT NULL), 0)::DOUBLE AS br_ms
"""
_SUM_NAMES: Final = (
    "n",
    "reb",
    "watch",
    "failed",
    "ebvs",
    "started",
    "startup_sum",
    "br_w",
    "br_ms",
)


def breakdown(
    con: duckdb.DuckDBPyConnection, filters: Filters, dimension: str, metric: str
) -> pd.DataFrame:
    """Values of `dimension` ranked by how much they hurt `metric`, worst first.

    A value's harm is its excess over what its sessions would have had at the rate of all
    other sessions (e.g. excess rebuffer minutes), so a big ISP slightly worse than the rest
    and a tiny one much worse are compared by impact, not by rate alone. The dimension's own
    filter is ignored so the SRE always sees every value to compare against.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    harm = HARM[metric]
    cte, params = sessions_cte(filters.without(dimension))
    rest = ", ".join(f"tot.{c} - per.{c} AS r_{c}" for c in _SUM_NAMES)
    sql = f"""
    {cte},
    vals AS (SELECT coalesce({dimension}, '(unknown)') AS value, {harm.value_sql} AS metric_value
             FROM s GROUP BY 1),
    per AS (SELECT coalesce({dimension}, '(unknown)') AS value, {_SUMS} FROM s GROUP BY 1),
    tot AS (SELECT {_SUMS} FROM s),
    joined AS (SELECT per.*, {rest} FROM per, tot)
    SELECT '{dimension}' AS dimension, joined.value, joined.n AS sessions,
           vals.metric_value, {harm.rest_sql} AS rest_value, {harm.excess_sql} AS excess
    FROM joined JOIN vals USING (value)
    ORDER BY excess DESC NULLS LAST, sessions DESC, value
    """
    return query_df(con, sql, params)


def worst_offenders(
    con: duckdb.DuckDBPyConnection, filters: Filters, metric: str, top: int = 10
) -> pd.DataFrame:
    """The `top` dimension values (any dimension) that hurt `metric` most."""
    frames = [breakdown(con, filters, d, metric) for d in DIMENSIONS]
    frames = [f for f in frames if len(f)]
    if not frames:
        return breakdown(con, filters, DIMENSIONS[0], metric)
    both = pd.concat(frames, ignore_index=True)
    return (
        both.sort_values("excess", ascending=False, na_position="last")
        .head(top)
        .reset_index(drop=True)
    )


def dimension_values(con: duckdb.DuckDBPyConnection, dimension: str) -> list[str]:
    """Distinct values of a dimension, for the filter pickers."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    rows = con.execute(
        f"SELECT DISTINCT {dimension} FROM dash_sessions WHERE {dimension} IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def custom_dimension_values(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    """Distinct values of a custom dimension (Settings.custom_dimensions), for the pickers."""
    rows = con.execute(
        "SELECT DISTINCT json_extract_string(dimensions, '$.' || ?) AS v FROM dash_sessions "
        "WHERE v IS NOT NULL ORDER BY 1",
        [name],
    ).fetchall()
    return [str(r[0]) for r in rows]


def time_bounds(con: duckdb.DuckDBPyConnection) -> tuple[object, object]:
    """First and last session time in the warehouse (None, None when empty)."""
    row = con.execute(f"SELECT min({SESSION_TIME}), max({PLAY_END}) FROM dash_sessions").fetchone()
    return (row[0], row[1]) if row else (None, None)
