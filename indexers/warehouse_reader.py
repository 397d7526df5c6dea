"""Read-only access to the warehouse: an in-memory DuckDB with views over the Parquet files.

Readers never open the writer's files for writing and there is no shared database file, so
no reader can ever hit a DuckDB lock error while the sink writes. Views are re-bound at every
query, so a long-lived connection sees new files as they land; only a table that had no file
at all when the connection was made needs `refresh_views` once its first file exists.

Views (see docs/warehouse.md): `events`, `sessions`, `qoe_minute`, `incidents`, `deadletters`
(deduplicated), `errors` (error events), and `<table>_all` (every stored row, duplicates
included).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from contract.tables import TABLES, TableSpec
from indexers import naming
from streamwatch.settings import Settings

ERRORS_VIEW = """
CREATE OR REPLACE VIEW errors AS
SELECT event_id, event_time, date, hour, member_id, profile_id, session_id, title_id,
       device_id, device_type, device_model, os, app_version,
       country, region, isp, asn, oca_id, cdn_tier, connection_type,
       error_code, error_category, error_severity, http_status, error_message
FROM events
WHERE event_type = 'error'
"""


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _glob(root: Path, table: str) -> str:
    return str(root / table / "date=*" / "hour=*" / "*.parquet")


def _has_files(root: Path, table: str) -> bool:
    return any((root / table).glob("date=*/hour=*/*.parquet"))


def _all_view_sql(root: Path, spec: TableSpec) -> str:
    if _has_files(root, spec.name):
        source = (
            f"read_parquet({_sql_literal(_glob(root, spec.name))}, hive_partitioning=true, "
            "hive_types={'date': DATE, 'hour': INTEGER}, union_by_name=true)"
        )
        return f"CREATE OR REPLACE VIEW {spec.name}_all AS SELECT * FROM {source}"
    # No file yet: an empty view with the same typed columns.
    cols = ", ".join(f"CAST(NULL AS {c.duckdb_type}) AS {c.name}" for c in spec.columns)
    return (
        f"CREATE OR REPLACE VIEW {spec.name}_all AS SELECT {cols}, "
        "CAST(NULL AS DATE) AS date, CAST(NULL AS INTEGER) AS hour WHERE false"
    )


def _dedup_view_sql(spec: TableSpec, extra_columns: str = "") -> str:
    key = ", ".join(spec.key)
    return (
        f"CREATE OR REPLACE VIEW {spec.name} AS SELECT *{extra_columns} FROM {spec.name}_all "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {spec.latest_first}) = 1"
    )


def _dimension_columns(con: duckdb.DuckDBPyConnection, spec: TableSpec, names: list[str]) -> str:
    """`, <expr> AS dim_<name>` per custom dimension (Settings.custom_dimensions)."""
    if not names or not any(c.name == "dimensions" for c in spec.columns):
        return ""
    present = {row[0] for row in con.execute(f"DESCRIBE {spec.name}_all").fetchall()}
    # Files written before the column existed have none: the dimension is NULL there.
    # Names are checked by Settings (lower-case identifiers), so they are safe to splice.
    return "".join(
        f", json_extract_string(dimensions, '$.{name}') AS dim_{name}"
        if "dimensions" in present
        else f", CAST(NULL AS VARCHAR) AS dim_{name}"
        for name in names
    )


def refresh_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """(Re)create every view; call again when a table that was empty gets its first file.

    `events` and `sessions` carry one `dim_<name>` column per custom dimension.
    """
    root = naming.warehouse_root(settings)
    for spec in TABLES:
        con.execute(_all_view_sql(root, spec))
        extra = _dimension_columns(con, spec, settings.custom_dimensions)
        con.execute(_dedup_view_sql(spec, extra))
    con.execute(ERRORS_VIEW)


def connect_readonly(settings: Settings, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the warehouse views; never locks the sink out."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    # Files are immutable once renamed into place, so caching their footers is always safe.
    con.execute("SET parquet_metadata_cache = true")
    refresh_views(con, settings)
    return con
