"""SQL fragments shared by the dashboard queries."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from dashboards.filters import Filters

# The time a session belongs to: when play was requested (or its first event).
SESSION_TIME = "coalesce(play_requested_at, first_event_at)"
# A session's playing interval [first frame, end): the interval of
# `contract.metrics.concurrent_viewers`.
PLAY_START = "first_frame_at"
PLAY_END = "coalesce(ended_at, last_event_at)"


def sessions_cte(filters: Filters) -> tuple[str, list[Any]]:
    """`WITH s AS (...)`: the filtered sessions."""
    where, params = filters.where(SESSION_TIME)
    return f"WITH s AS (SELECT * FROM sessions WHERE {where})", params


def query_df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    """Run `sql` and return a DataFrame."""
    return con.execute(sql, params).df()
