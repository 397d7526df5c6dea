"""Pipeline health from the warehouse: freshness, stage throughput, dead letters.

Consumer lag and sink state come from Kafka itself (`streamwatch.pipeline_lag`).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboards.filters import Filters
from dashboards.queries.common import query_df

# Freshness is measured from the collector's receipt, not the client's event time: a
# player's clock, a backfill or a replay says nothing about how fast the pipeline is.
_FRESHNESS = "(epoch_ms(ingested_at) - epoch_ms(received_at)) / 1000.0"


def freshness(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, float | None]:
    """End-to-end freshness (collector receipt -> stored in the warehouse), p50/p99 in s."""
    where, params = Filters(filters.start, filters.end).where("received_at")
    row = con.execute(
        f"""SELECT quantile_cont(lag_s, 0.5), quantile_cont(lag_s, 0.99), count(lag_s)
        FROM (SELECT {_FRESHNESS} AS lag_s FROM events WHERE {where})""",
        params,
    ).fetchone()
    p50, p99, n = row if row else (None, None, 0)
    return {
        "freshness_p50_s": None if p50 is None else float(p50),
        "freshness_p99_s": None if p99 is None else float(p99),
        "events_measured": float(n or 0),
    }


def freshness_per_minute(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Freshness p50/p99 per minute of collector receipt."""
    where, params = Filters(filters.start, filters.end).where("received_at")
    return query_df(
        con,
        f"""SELECT date_trunc('minute', received_at) AS minute,
          quantile_cont(lag_s, 0.5) AS p50_s, quantile_cont(lag_s, 0.99) AS p99_s
        FROM (SELECT received_at, {_FRESHNESS} AS lag_s
              FROM events WHERE {where} AND ingested_at IS NOT NULL)
        GROUP BY 1 ORDER BY 1""",
        params,
    )


def stage_rates(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Records per second per stage and minute: received, stored, dead-lettered.

    Each stage is counted at its own clock (received_at, ingested_at, rejected_at), so a
    stage falling behind shows as its curve lagging the one before.
    """
    parts, params = [], []
    for stage, table, col in (
        ("collector (received)", "events", "received_at"),
        ("warehouse (stored)", "events", "ingested_at"),
        ("dead-lettered", "deadletters", "rejected_at"),
    ):
        where, p = Filters(filters.start, filters.end).where(col)
        parts.append(
            f"SELECT '{stage}' AS stage, date_trunc('minute', {col}) AS minute, "
            f"count(*) / 60.0 AS per_s FROM {table} WHERE {col} IS NOT NULL AND {where} GROUP BY 2"
        )
        params.extend(p)
    return query_df(con, " UNION ALL ".join(parts) + " ORDER BY minute, stage", params)


def deadletters_by_reason(con: duckdb.DuckDBPyConnection, filters: Filters) -> pd.DataFrame:
    """Dead letters per reason and source, with their rate over the range."""
    where, params = Filters(filters.start, filters.end).where("rejected_at")
    return query_df(
        con,
        f"""SELECT reason, source, count(*) AS dead_letters,
          count(*) / greatest(1, (epoch_ms(max(rejected_at)) - epoch_ms(min(rejected_at)))
                               / 60000.0) AS per_minute
        FROM deadletters WHERE {where} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""",
        params,
    )


def deadletter_ratio(con: duckdb.DuckDBPyConnection, filters: Filters) -> float | None:
    """Dead letters / (stored events + dead letters) in %, None with no input at all."""
    ew, ep = Filters(filters.start, filters.end).where("received_at")
    dw, dp = Filters(filters.start, filters.end).where("rejected_at")
    row = con.execute(
        f"""SELECT (SELECT count(*) FROM events WHERE {ew}),
                   (SELECT count(*) FROM deadletters WHERE {dw})""",
        [*ep, *dp],
    ).fetchone()
    ok, dead = (int(row[0]), int(row[1])) if row else (0, 0)
    return None if ok + dead == 0 else 100.0 * dead / (ok + dead)
