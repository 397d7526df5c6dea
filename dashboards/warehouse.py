"""Read-only access to the warehouse for the dashboards.

The warehouse belongs to `indexers/`: `warehouse_reader.connect_readonly(settings)` gives
DuckDB views over immutable Parquet partitions (typed and empty before the first file
lands), so a dashboard never takes the writer's lock and every page renders on an empty
warehouse. The views and their columns are those of `contract.tables`: the dashboards query
them by the contract's names, with no renaming layer of their own.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from indexers import naming
from indexers.warehouse_reader import connect_readonly
from streamwatch.settings import Settings


def warehouse_root(settings: Settings) -> Path:
    """Where the warehouse's Parquet partitions live."""
    return naming.warehouse_root(settings)


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection exposing every warehouse view the dashboards query."""
    return connect_readonly(settings)


def columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    """Column names of one table or view."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = current_schema()",
        [relation],
    ).fetchall()
    return {str(r[0]) for r in rows}
