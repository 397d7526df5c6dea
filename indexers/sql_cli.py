"""`streamwatch sql "SELECT ..."`: query the warehouse views, print table / csv / json."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from indexers import naming
from indexers.warehouse_reader import connect_readonly
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings

# Statement types an analyst's read-only query may use: SELECT covers WITH, DESCRIBE, SHOW
# and SUMMARIZE. Everything else is refused before it runs, with the reason.
_ALLOWED = frozenset({"SELECT", "EXPLAIN"})
_REASONS: dict[str, str] = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the attached databases",
    "LOAD": "INSTALL and LOAD add extensions",
    "SET": "SET, RESET and USE change the configuration, which is locked",
    "PRAGMA": "PRAGMA changes or inspects the engine's configuration",
    "CALL": "CALL runs engine procedures",
}
READ_ONLY = (
    "streamwatch sql is read-only: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN over "
    "the warehouse views"
)


class QueryRefused(StreamwatchError):
    """A statement `streamwatch sql` does not run (a write, a file access, a setting)."""


def check_read_only(con: Any, query: str) -> None:
    """Refuse any statement that is not a read of the warehouse, with a one-line reason."""
    import duckdb

    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise StreamwatchError(f"query failed: {_one_line(exc)}") from exc
    if not statements:
        raise QueryRefused("refused: no statement to run")
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind not in _ALLOWED:
            why = _REASONS.get(kind, f"{kind} changes the warehouse views or tables")
            raise QueryRefused(f"refused: {why}; {READ_ONLY}")


def lock_down(con: Any, settings: Settings) -> None:
    """No file but the warehouse's, no setting changed after this (DuckDB's own guards)."""
    root = naming.warehouse_root(settings).resolve()
    con.execute("SET allowed_directories = [?]", [f"{root}/"])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _one_line(exc: Exception) -> str:
    # DuckDB appends the query with a caret line after " LINE n:"; the reason comes first.
    return " ".join(str(exc).split(" LINE ")[0].split())


def run_query(settings: Settings, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of `query` over the warehouse views (read-only, locked down)."""
    import duckdb

    con = connect_readonly(settings)
    try:
        lock_down(con, settings)
        check_read_only(con, query)
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description or []]
        return names, cursor.fetchall()
    except duckdb.PermissionException as exc:
        raise QueryRefused(
            f"refused: {_one_line(exc)}; streamwatch sql reads only the warehouse files"
        ) from exc
    except duckdb.Error as exc:
        raise StreamwatchError(f"query failed: {_one_line(exc)}") from exc
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
