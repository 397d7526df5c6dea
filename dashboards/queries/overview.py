"""QoE overview: headline figures, the minute-by-minute series, and what hurts most."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import duckdb
import pandas as pd

from contract.dimensions import DIMENSIONS
from contract.metrics import SQL_METRICS
from dashboards.filters import Filters
from dashboards.queries.common import PLAY_END, PLAY_START, SESSION_TIME, query_df, sessions_cte
from dashboards.warehouse import columns

# Minutes at the end of a session-based series shaded as incomplete (sessions are summarised
# when they end; most sessions of the stub and of real services end within this).
SESSION_TAIL_MIN: Final = 30

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


def headline(
    con: duckdb.DuckDBPyConnection, filters: Filters, series: pd.DataFrame | None = None
) -> dict[str, float | None]:
    """Headline QoE figures over the filtered sessions, plus plays/min and peak concurrency
    (from `series`, the page's minute series, when given)."""
    cte, params = sessions_cte(filters)
    select = ", ".join(f"{expr} AS {name}" for name, expr in HEADLINE_SQL.items())
    row = con.execute(f"{cte} SELECT {select} FROM s", params).fetchone()
    out: dict[str, float | None] = {
        name: (None if v is None else float(v))
        for name, v in zip(HEADLINE_SQL, row or (), strict=False)
    }
    if series is None:
        series = minute_series(con, filters).frame
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

    Concurrent viewers follow `contract.metrics.concurrent_viewers`: sessions whose playing
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


# Minute series from the streams' 1-minute rollups (qoe_minute): a minute is published once
# every partition has closed it, so each minute present is complete, whatever sessions are
# still playing. Ratios are the one metrics module's expressions over summed partials.
ROLLUP_SQL: Final[dict[str, str]] = {
    "plays": SQL_METRICS["plays"],
    "concurrent_viewers": SQL_METRICS["concurrent_viewers"],
    "rebuffer_pct": SQL_METRICS["rebuffer_pct"],
    "playback_failure_pct": SQL_METRICS["playback_failure_pct"],
    "ebvs_pct": SQL_METRICS["ebvs_pct"],
    "avg_bitrate_kbps": SQL_METRICS["avg_bitrate_kbps"],
}


@dataclass(frozen=True)
class MinuteSeries:
    """The overview's minute series and the span still in progress (shaded, not drawn)."""

    frame: pd.DataFrame
    in_progress: tuple[datetime, datetime] | None
    source: str  # "rollups" | "sessions"

    def note(self) -> str:
        """What the page says under the charts about the newest minutes."""
        if self.source == "sessions":
            return (
                "Several dimension filters: the series come from session summaries, which are "
                "written when a session ends, so the newest minutes (shaded) are incomplete."
            )
        if self.in_progress is None:
            return "Every minute shown is complete."
        start, end = self.in_progress
        return (
            f"{start:%H:%M} to {end:%H:%M} UTC is in progress (shaded) and left out: a minute is "
            "shown once every partition of the stream has closed it."
        )


def _sketch_quantiles(sketches: list[str], qs: tuple[float, ...]) -> list[float | None]:
    from contract.sketch import LatencySketch

    merged = LatencySketch()
    for text in sketches:
        if text:
            merged.merge_in(LatencySketch.model_validate_json(text))
    return [merged.quantile(q) for q in qs]


def rollup_series(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame | None:
    """Minute series from `qoe_minute` (None when the filters span several dimensions, which
    single-dimension rollups cannot answer)."""
    if len(filters.dims) > 1:
        return None
    dimension, values = filters.dims[0] if filters.dims else ("all", ("all",))
    where, params = Filters(filters.start, filters.end).where("window_start")
    have = columns(con, "qoe_minute")
    sketch = "list(startup_sketch)" if "startup_sketch" in have else "list(NULL::VARCHAR)"
    select = ", ".join(f"{expr} AS {name}" for name, expr in ROLLUP_SQL.items())
    frame = query_df(
        con,
        f"""SELECT window_start AS minute, {select}, {sketch} AS sketches
        FROM qoe_minute
        WHERE {where} AND dimension = ? AND value IN ({", ".join("?" for _ in values)})
        GROUP BY 1 ORDER BY 1""",
        [*params, dimension, *values],
    )
    p50, p95 = [], []
    for sketches in frame["sketches"]:
        a, b = _sketch_quantiles(list(sketches), (0.5, 0.95))
        p50.append(a)
        p95.append(b)
    frame = frame.drop(columns=["sketches"])
    frame["startup_p50_ms"] = pd.array(p50, dtype="Float64")
    frame["startup_p95_ms"] = pd.array(p95, dtype="Float64")
    return frame


def newest_event_time(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """Event time of the newest stored event (where the data ends)."""
    row = con.execute("SELECT max(event_time) FROM events").fetchone()
    return None if row is None or row[0] is None else pd.Timestamp(row[0]).to_pydatetime()


def last_whole_minute(partials: Sequence[tuple[datetime, int]]) -> datetime | None:
    """The newest minute whose rollups from every partition are stored.

    `partials` = (minute, partitions whose own partial of the "all" value is stored). Each
    partition publishes its partial when it closes the minute and the warehouse sink writes
    them as they come, so the newest minutes can hold only some partitions' counts: drawn,
    they read as a drop in plays and viewers. Only the newest minutes are held back; an
    earlier minute without some partition (no traffic there) is as complete as it gets.
    """
    if not partials:
        return None
    expected = max(n for _, n in partials)
    for minute, n in sorted(partials, reverse=True):
        if n >= expected:
            return minute
    return None


def _stored_partials(con: duckdb.DuckDBPyConnection, since: datetime) -> list[tuple[datetime, int]]:
    rows = con.execute(
        """SELECT window_start, count(DISTINCT partial) FROM qoe_minute
        WHERE dimension = 'all' AND window_start >= ? AND partial NOT LIKE '%.late.%'
        GROUP BY 1""",
        [since],
    ).fetchall()
    return [(pd.Timestamp(m).to_pydatetime(), int(n)) for m, n in rows]


def _open_minutes(
    last_complete: datetime, newest: datetime | None
) -> tuple[datetime, datetime] | None:
    """The minutes after the last complete one, up to the newest event's (None: none)."""
    open_from = last_complete + timedelta(minutes=1)
    if newest is None or newest < open_from:
        return None
    return open_from, newest.replace(second=0, microsecond=0) + timedelta(minutes=1)


def in_progress_band(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """The minutes not yet rolled up by every partition, up to the newest event.

    The band the overview shades, without its series: pages that only shade it (incidents,
    capacity) read two small aggregates instead of the whole minute series.
    """
    row = con.execute("SELECT max(window_start) FROM qoe_minute WHERE dimension = 'all'").fetchone()
    if row is None or row[0] is None:
        return None
    newest_rollup = pd.Timestamp(row[0]).to_pydatetime()
    whole = last_whole_minute(_stored_partials(con, newest_rollup - timedelta(minutes=30)))
    return _open_minutes(whole or newest_rollup, newest_event_time(con))


def minute_series(con: duckdb.DuckDBPyConnection, filters: Filters) -> MinuteSeries:
    """The overview's series: complete minutes from rollups, the rest marked in progress."""
    frame = rollup_series(con, filters)
    newest = newest_event_time(con)
    if frame is not None and len(frame):
        since = pd.Timestamp(frame["minute"].max()).to_pydatetime() - timedelta(minutes=30)
        whole = last_whole_minute(_stored_partials(con, since))
        if whole is not None:
            frame = frame[frame["minute"] <= pd.Timestamp(whole)]
    if frame is not None and len(frame):
        last_complete = pd.Timestamp(frame["minute"].max()).to_pydatetime()
        return MinuteSeries(frame, _open_minutes(last_complete, newest), "rollups")
    sessions = per_minute(con, filters)
    if sessions.empty or len(filters.dims) <= 1:
        return MinuteSeries(sessions, None, "sessions" if len(filters.dims) > 1 else "rollups")
    # Session summaries arrive when sessions end: the last minutes hold only the short ones.
    cut = pd.Timestamp(sessions["minute"].max()).to_pydatetime() - timedelta(
        minutes=SESSION_TAIL_MIN
    )
    complete = sessions[sessions["minute"] < cut]
    end = pd.Timestamp(sessions["minute"].max()).to_pydatetime() + timedelta(minutes=1)
    return MinuteSeries(complete, (cut, end), "sessions")


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
        f"SELECT DISTINCT {dimension} FROM sessions WHERE {dimension} IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def custom_dimension_values(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    """Distinct values of a custom dimension (Settings.custom_dimensions), for the pickers."""
    rows = con.execute(
        "SELECT DISTINCT json_extract_string(dimensions, '$.' || ?) AS v FROM sessions "
        "WHERE v IS NOT NULL ORDER BY 1",
        [name],
    ).fetchall()
    return [str(r[0]) for r in rows]


def time_bounds(con: duckdb.DuckDBPyConnection) -> tuple[object, object]:
    """First and last session time in the warehouse (None, None when empty)."""
    row = con.execute(f"SELECT min({SESSION_TIME}), max({PLAY_END}) FROM sessions").fetchone()
    return (row[0], row[1]) if row else (None, None)
