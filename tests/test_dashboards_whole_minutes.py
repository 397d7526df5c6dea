"""The overview draws a minute only once every partition's rollup of it is stored (issue 11).

Seen in the live demo: the warehouse sink wrote the newest minute's partials one by one, and
for a few seconds the newest drawn minute held 2 of 6 partitions' plays: the charts fell by
a third at their right edge, which reads as an outage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from dashboards.charts import with_gaps
from dashboards.filters import Filters
from dashboards.queries.overview import in_progress_band, last_whole_minute, minute_series

T0 = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)


def _m(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def test_the_newest_minutes_with_some_partitions_missing_are_held_back() -> None:
    partials = [(_m(0), 6), (_m(1), 4), (_m(2), 6), (_m(3), 6), (_m(4), 2), (_m(5), 1)]
    # Minute 1 (a quiet partition) stays: a later minute is whole, so it is as whole as it gets.
    assert last_whole_minute(partials) == _m(3)
    assert last_whole_minute([(_m(0), 3)]) == _m(0)
    assert last_whole_minute([]) is None


def test_the_overview_series_stops_at_the_last_whole_minute() -> None:
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE qoe_minute (window_start TIMESTAMPTZ, dimension VARCHAR, value VARCHAR,
        partial VARCHAR, plays BIGINT, concurrent_viewers BIGINT, active_sessions BIGINT,
        failed_sessions BIGINT, rebuffer_ms BIGINT, watch_ms BIGINT, exits_before_start BIGINT,
        ended_sessions BIGINT, bitrate_kbps_ms DOUBLE, bitrate_ms BIGINT, startup_sketch VARCHAR)"""
    )
    con.execute("CREATE TABLE events (event_time TIMESTAMPTZ)")
    rows = []
    for i in range(5):
        parts = 3 if i < 4 else 1  # minute 4: one partition's partial stored so far
        for p in range(parts):
            rows.append(
                (_m(i), "all", "all", f"p{p}", 10, 100, 100, 0, 0, 60_000, 0, 5, 0.0, 0, None)
            )
    rows.append((_m(2), "all", "all", "p0.late.x", 1, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, None))
    con.executemany(f"INSERT INTO qoe_minute VALUES ({', '.join('?' * 15)})", rows)
    con.execute("INSERT INTO events VALUES (?)", [_m(5) + timedelta(seconds=20)])

    series = minute_series(con, Filters(_m(0), _m(6)))

    minutes = [m.to_pydatetime() for m in series.frame["minute"]]
    assert minutes == [_m(i) for i in range(4)]
    assert list(series.frame["plays"]) == [30, 30, 31, 30]
    assert series.in_progress == (_m(4), _m(6))
    # The pages that only shade the band (incidents, capacity) get the same band.
    assert in_progress_band(con) == series.in_progress
    con.execute("DELETE FROM qoe_minute WHERE window_start = ?", [_m(4)])
    con.execute("DELETE FROM events")
    con.execute("INSERT INTO events VALUES (?)", [_m(3) + timedelta(seconds=5)])
    assert minute_series(con, Filters(_m(0), _m(6))).in_progress is None
    assert in_progress_band(con) is None
    con.execute("DELETE FROM qoe_minute")
    assert in_progress_band(con) is None


def test_a_stretch_without_data_breaks_the_line_instead_of_joining_it() -> None:
    """Seen in the live demo: two hours without data drawn as a straight decline."""
    df = pd.DataFrame(
        {
            "minute": [_m(0), _m(1), _m(90), _m(91), _m(0), _m(5)],
            "plays": [10.0, 11.0, 12.0, 13.0, 1.0, 2.0],
            "cohort": ["a", "a", "a", "a", "b", "b"],
        }
    )

    out = with_gaps(df, "plays", "cohort")

    empty = out[out["plays"].isna()]
    assert sorted(zip(empty["cohort"], empty["minute"], strict=True)) == [
        ("a", pd.Timestamp(_m(2))),
        ("b", pd.Timestamp(_m(1))),
    ]
    assert len(out) == len(df) + 2
    assert with_gaps(df.iloc[:2], "plays", "cohort").equals(df.iloc[:2])
