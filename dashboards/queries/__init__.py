"""Data access of the SRE dashboards: pure functions (connection, filters) -> DataFrame.

Every function reads the warehouse views of `contract.tables` (via `dashboards.warehouse`),
takes metric formulas from `contract.metrics.SQL_METRICS`, and does no I/O beyond the given
DuckDB connection, so tests compare their results with SQL run directly against the warehouse.
"""
