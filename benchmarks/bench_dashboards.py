"""Benchmark: the QoE overview's queries over N events, cold (new connection) and warm.

Builds a synthetic warehouse at scale with DuckDB itself (sessions of ~`--events-per-session`
events, written as Parquet by the warehouse's own layout), then times `headline`,
`per_minute` and `worst_offenders`. The reference is DuckDB's bare scan of the same sessions
(`SELECT count(*), sum(watch_ms) FROM sessions`) measured in the same run.

    .venv/bin/python -m benchmarks.bench_dashboards --events 5000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from contract.dimensions import DIMENSIONS
from dashboards import warehouse
from dashboards.filters import Filters
from dashboards.queries import overview
from streamwatch.settings import Settings

# Dimensions the query below spells out; every other contract dimension gets a few values, so
# that a dimension added to the contract needs no change here.
_SPELLED_OUT = frozenset({"title_id", "device_type", "app_version", "region", "isp", "oca_id"})


def build(root: Path, events: int, per_session: int) -> int:
    sessions = max(1, events // per_session)
    other_dimensions = "".join(
        f"'{d}-' || (i % 4) AS {d}, " for d in DIMENSIONS if d not in _SPELLED_OUT
    )
    out = root / "sessions" / "date=2026-01-01" / "hour=12"
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"""
    COPY (
      SELECT 's-' || i AS session_id, 'm-' || (i % 50000) AS member_id,
        't-' || (i % 500) AS title_id, ['tv','mobile','web'][1 + i % 3] AS device_type,
        ['5.1.0','5.2.0'][1 + i % 2] AS app_version, ['us-east','us-west','eu-west'][1 + i % 3]
        AS region, 'isp-' || (i % 20) AS isp, 'oca-' || (i % 60) AS oca_id,
        CASE WHEN i % 10 = 0 THEN 'origin' ELSE 'edge' END AS cdn_tier, {other_dimensions}
        TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 86400000 // {sessions})
          AS first_event_at,
        first_event_at AS play_requested_at,
        first_event_at + to_milliseconds(1000 + i % 3000) AS first_frame_at,
        first_frame_at + to_milliseconds(60000 + i % 1800000) AS ended_at,
        ended_at AS last_event_at,
        CASE WHEN i % 50 = 0 THEN 'exit_before_start' ELSE 'started' END AS start_outcome,
        i % 40 = 0 AS playback_failed, 1000 + i % 3000 AS startup_ms,
        60000 + i % 1800000 AS watch_ms, (i % 7) * 500 AS rebuffer_ms, i % 3 AS rebuffer_count,
        3000.0 + i % 5000 AS avg_bitrate_kbps, 0 AS revision,
        TIMESTAMPTZ '2026-01-01 00:00:00+00' AS ingested_at, i AS source_offset
      FROM range({sessions}) t(i)
    ) TO '{out}/part-0.parquet' (FORMAT parquet)""")
    return sessions


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--events-per-session", type=int, default=25)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = build(root, args.events, args.events_per_session)
        settings = Settings(warehouse_dir=root)
        f = Filters()

        def overview_queries(con: duckdb.DuckDBPyConnection) -> None:
            overview.headline(con, f)
            overview.worst_offenders(con, f, "rebuffer_pct")

        cold = timed(lambda: overview_queries(warehouse.connect(settings)))
        con = warehouse.connect(settings)
        overview_queries(con)
        warm = min(timed(lambda: overview_queries(con)) for _ in range(3))
        ref = min(
            timed(lambda: con.execute("SELECT count(*), sum(watch_ms) FROM sessions").fetchall())
            for _ in range(3)
        )
        print(f"events={args.events:,} sessions={n:,}")
        print(
            f"overview cold {cold:.3f}s  warm {warm:.3f}s  reference scan {ref:.3f}s  "
            f"ratio warm/reference {warm / max(ref, 1e-9):.1f}x"
        )


if __name__ == "__main__":
    main()
