"""Flat records → a typed Arrow table, column at a time; bad rows are found, not fatal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from contract.columns import COERCE, Column


def _fast_column(values: list[Any], column: Column) -> pa.Array:
    """Vectorised conversion; raises when any value does not fit the column's type."""
    if column.kind == "timestamp":
        if all(v is None or isinstance(v, str) for v in values):
            return pa.array(values, pa.string()).cast(column.arrow_type)
        raise TypeError("mixed timestamp values")
    if column.kind in ("keyword", "text", "json") and not all(
        v is None or isinstance(v, str) for v in values
    ):
        raise TypeError("non-string values")
    if column.kind == "bool" and not all(v is None or isinstance(v, bool) for v in values):
        raise TypeError("non-boolean values")
    return pa.array(values, column.arrow_type)


def rows_to_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column]
) -> tuple[pa.Table, dict[int, str]]:
    """A typed table of the good rows, and {row index: reason} for rows that do not fit."""
    try:
        return _all_rows_fit(rows, columns), {}
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return _row_by_row_check(rows, columns)


def _all_rows_fit(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> pa.Table:
    """Fast path (Arrow's C conversion, column by column); raises if any value does not fit.

    Column lists are gathered with one `dict.get` per value: `Table.from_pylist` does two
    lookups per value (`in`, then `[]`) and was a third of the warehouse step.
    """
    arrays: list[pa.Array] = []
    for column in columns:
        name = column.name
        values = [row.get(name) for row in rows]
        if column.kind == "timestamp":
            # Timestamps arrive as ISO text: read as strings, then cast (parses offsets, 'Z').
            arrays.append(pa.array(values, pa.string()).cast(column.arrow_type))
            continue
        if name == "extra":
            to_json = COERCE["json"]
            values = [v if v is None or isinstance(v, str) else to_json(v) for v in values]
        arrays.append(pa.array(values, column.arrow_type))
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
    return pa.Table.from_arrays(arrays, schema=schema)


def _row_by_row_check(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column]
) -> tuple[pa.Table, dict[int, str]]:
    """Slow path: column by column, value by value, to find exactly which rows do not fit."""
    bad: dict[int, str] = {}
    arrays: dict[str, list[Any] | pa.Array] = {}
    for column in columns:
        values = [row.get(column.name) for row in rows]
        try:
            arrays[column.name] = _fast_column(values, column)
            continue
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        coerce = COERCE[column.kind]
        coerced: list[Any] = []
        for i, value in enumerate(values):
            try:
                coerced.append(coerce(value))
            except (TypeError, ValueError, OverflowError) as exc:
                bad.setdefault(i, f"column {column.name}: {exc}")
                coerced.append(None)
        arrays[column.name] = coerced
    # A value can still overflow the Arrow type after coercion (e.g. int32): find it row-wise.
    built: dict[str, pa.Array] = {}
    for column in columns:
        data = arrays[column.name]
        if isinstance(data, pa.Array):
            built[column.name] = data
            continue
        try:
            built[column.name] = pa.array(data, column.arrow_type)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            fixed = []
            for i, value in enumerate(data):
                try:
                    pa.array([value], column.arrow_type)
                    fixed.append(value)
                except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                    bad.setdefault(i, f"column {column.name}: {exc}")
                    fixed.append(None)
            built[column.name] = pa.array(fixed, column.arrow_type)
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
    table = pa.Table.from_arrays([built[c.name] for c in columns], schema=schema)
    if bad:
        keep = pa.array([i not in bad for i in range(len(rows))])
        table = table.filter(keep)
    return table, bad
