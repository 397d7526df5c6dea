"""Capacity: concurrency, egress, edge share, control plane, telemetry ingest, storage."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd

from dashboards.filters import Filters
from dashboards.queries.common import PLAY_END, PLAY_START, query_df
from dashboards.queries.overview import minutes_cte

# Control-plane calls a player makes per play (playback API, manifest, licence) are seen
# as these events; their rate is the control plane's request rate.
CONTROL_PLANE_EVENTS: Final = ("play_requested", "manifest_loaded", "license_acquired")


def concurrency_and_egress(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Per minute: concurrent viewers, egress Gbps (total, edge, origin).

    A session's bits (avg bitrate x watch time, `dashboards.capacity.egress_bits`) are
    spread evenly over its playing interval, the one `concurrent_viewers` counts it in.
    """
    cte, params = minutes_cte(filters)
    span_ms = f"epoch_ms({PLAY_END}) - epoch_ms({PLAY_START})"
    overlap_ms = (
        f"greatest(0, least(epoch_ms({PLAY_END}), epoch_ms(m.minute) + 60000) "
        f"- greatest(epoch_ms({PLAY_START}), epoch_ms(m.minute)))"
    )
    bits = (
        f"CASE WHEN {span_ms} > 0 THEN coalesce(avg_bitrate_kbps, 0) * 1000.0 "
        f"* greatest(coalesce(watch_ms, 0), 0) / 1000.0 * {overlap_ms} / ({span_ms}) ELSE 0 END"
    )
    sql = f"""
    {cte}
    SELECT m.minute,
      count(s.{PLAY_START}) AS concurrent_viewers,
      coalesce(sum({bits}), 0) / 60.0 / 1e9 AS egress_gbps,
      coalesce(sum({bits}) FILTER (WHERE s.cdn_tier = 'edge'), 0) / 60.0 / 1e9 AS edge_gbps,
      coalesce(sum({bits}) FILTER (WHERE s.cdn_tier IS DISTINCT FROM 'edge'), 0)
        / 60.0 / 1e9 AS origin_gbps
    FROM m LEFT JOIN s
      ON s.{PLAY_START} < m.minute + INTERVAL 1 MINUTE AND {PLAY_END} > m.minute
    GROUP BY 1 ORDER BY 1
    """
    return query_df(con, sql, params)


# Origin servers are named `origin-<region>` by the platform; every other OCA is an edge.
ORIGIN_OCA_LIKE = "origin-%"


def concurrency_and_egress_rollups(
    con: duckdb.DuckDBPyConnection, filters: Filters
) -> pd.DataFrame | None:
    """The same per-minute figures from the streams' minute rollups (per OCA), so each
    minute is complete when shown; None with dimension filters (rollups are per dimension).

    Egress = bitrate x time played in the minute (`bitrate_kbps_ms`), over 60 s.
    """
    if filters.dims:
        return None
    where, params = Filters(filters.start, filters.end).where("window_start")
    gbps = "/ 60000.0 / 1e6"
    frame = query_df(
        con,
        f"""SELECT window_start AS minute,
          sum(concurrent_viewers) AS concurrent_viewers,
          coalesce(sum(bitrate_kbps_ms), 0) {gbps} AS egress_gbps,
          coalesce(sum(bitrate_kbps_ms) FILTER (WHERE value NOT LIKE ?), 0) {gbps} AS edge_gbps,
          coalesce(sum(bitrate_kbps_ms) FILTER (WHERE value LIKE ?), 0) {gbps} AS origin_gbps
        FROM qoe_minute WHERE dimension = 'oca_id' AND {where}
        GROUP BY 1 ORDER BY 1""",
        [ORIGIN_OCA_LIKE, ORIGIN_OCA_LIKE, *params],
    )
    return frame if len(frame) else None


def members_seen(con: duckdb.DuckDBPyConnection, filters: Filters) -> int:
    """Distinct members with a session in range (the base of per-member behaviour)."""
    where, params = filters.where("coalesce(play_requested_at, first_event_at)")
    row = con.execute(
        f"SELECT count(DISTINCT member_id) FROM sessions WHERE {where}", params
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def telemetry_per_second(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Per second with traffic: telemetry events, their JSON bytes, control-plane requests.

    Event size is the JSON size of the stored row: what a player sends, give or take the
    envelope fields the collector adds.
    """
    where, params = Filters(filters.start, filters.end).where("event_time")
    cp = ", ".join(f"'{e}'" for e in CONTROL_PLANE_EVENTS)
    sql = f"""
    SELECT date_trunc('second', e.event_time) AS second,
           count(*) AS events,
           sum(strlen(CAST(to_json(e) AS VARCHAR))) AS bytes,
           count(*) FILTER (WHERE e.event_type IN ({cp})) AS control_plane_requests
    FROM events e WHERE {where} GROUP BY 1 ORDER BY 1
    """
    return query_df(con, sql, params)


def ingest_per_minute(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Per minute: events/s, MB/s, control-plane requests/s (means over the minute)."""
    per_s = telemetry_per_second(con, filters)
    if per_s.empty:
        return pd.DataFrame(
            columns=["minute", "events_per_s", "mb_per_s", "control_plane_rps", "peak_events_per_s"]
        )
    per_s["minute"] = per_s["second"].dt.floor("min")
    g = per_s.groupby("minute")
    out = pd.DataFrame(
        {
            "events_per_s": g["events"].sum() / 60.0,
            "mb_per_s": g["bytes"].sum() / 60.0 / 1e6,
            "control_plane_rps": g["control_plane_requests"].sum() / 60.0,
            "peak_events_per_s": g["events"].max().astype(float),
        }
    ).reset_index()
    return out


def storage_by_day(root: Path) -> pd.DataFrame:
    """Bytes per day per store of the Parquet warehouse, from its `date=` partitions."""
    rows: list[dict[str, object]] = []
    if root.is_dir():
        for table_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in table_dir.glob("**/*.parquet"):
                day = next((p.split("=", 1)[1] for p in f.parts if p.startswith("date=")), None)
                if day is None:
                    day = datetime.fromtimestamp(os.stat(f).st_mtime, UTC).date().isoformat()
                rows.append(
                    {"store": f"warehouse/{table_dir.name}", "day": day, "bytes": f.stat().st_size}
                )
    df = pd.DataFrame(rows, columns=["store", "day", "bytes"])
    if df.empty:
        return df
    return df.groupby(["store", "day"], as_index=False)["bytes"].sum().sort_values(["day", "store"])
