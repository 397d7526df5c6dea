"""`streamwatch sql "SELECT ..."`: query the warehouse views, print table / csv / json."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from indexers.warehouse_reader import connect_readonly
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings


def run_query(settings: Settings, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `query` over the warehouse views."""
    import duckdb

    con = connect_readonly(settings)
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description or []]
        return names, cursor.fetchall()
    except duckdb.Error as exc:
        raise StreamwatchError(f"query failed: {exc}") from exc
    finally:
        con.close()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def render(names: Sequence[str], rows: Sequence[tuple[Any, ...]], fmt: str) -> str:
    """Rows as an aligned table, CSV or a JSON array of objects."""
    if fmt == "json":
        return json.dumps(
            [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows],
            default=str,
            indent=1,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_plain(v) for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    cells = [[("" if v is None else str(_plain(v))) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
