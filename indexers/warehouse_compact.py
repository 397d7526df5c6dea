"""Compaction: many small Parquet files of a closed hour → one deduplicated file.

The sink writes a file per flush, so a busy hour holds hundreds of files and every query pays
for opening them. Compaction rewrites a closed partition (older than `min_age`) as a single
file, deduplicated with the same order the views use, written atomically like every file.

Readers must never fail, so the small files are not deleted at once: they are listed in the
partition's `_retired.json` and stay readable (the views deduplicate the overlap; only the
`*_all` views briefly count those rows twice) until a later run, at least `grace` later,
deletes them — long after any query that globbed them has finished opening them.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from contract.tables import TABLES, TableSpec
from indexers import naming
from streamwatch.settings import Settings

RETIRED = "_retired.json"


@dataclass(frozen=True)
class CompactionReport:
    """What one compaction run did."""

    partitions_compacted: int
    files_retired: int
    files_deleted: int


def _partition_time(path: Path) -> datetime | None:
    try:
        day = path.parent.name.removeprefix("date=")
        hour = int(path.name.removeprefix("hour="))
        return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
    except ValueError:
        return None


def _read_retired(directory: Path) -> dict[str, str]:
    path = directory / RETIRED
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def _write_retired(directory: Path, retired: dict[str, str]) -> None:
    tmp = directory / f".{RETIRED}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(retired))
    os.replace(tmp, directory / RETIRED)


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _compact_partition(directory: Path, spec: TableSpec, files: list[Path]) -> Path:
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = directory / f".{name}.tmp"
    key = ", ".join(spec.key)
    con = duckdb.connect(":memory:")
    try:
        con.execute(
            f"COPY (SELECT * FROM read_parquet({_sql_list(files)}, union_by_name=true) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {spec.latest_first}) = 1) "
            f"TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION zstd)"
        )
    finally:
        con.close()
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    final = directory / name
    os.replace(tmp, final)
    return final


def compact(
    settings: Settings,
    min_age: timedelta = timedelta(hours=2),
    grace: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
) -> CompactionReport:
    """Compact closed partitions and delete files retired more than `grace` ago."""
    now = now or datetime.now(UTC)
    root = naming.warehouse_root(settings)
    compacted = retired_count = deleted = 0
    for spec in TABLES:
        for directory in sorted((root / spec.name).glob("date=*/hour=*")):
            retired = _read_retired(directory)
            # 1. Delete what was retired long enough ago.
            keep: dict[str, str] = {}
            for file_name, when in retired.items():
                if datetime.fromisoformat(when) <= now - grace:
                    (directory / file_name).unlink(missing_ok=True)
                    deleted += 1
                else:
                    keep[file_name] = when
            if keep != retired:
                _write_retired(directory, keep)
            # 2. Compact a closed partition with several live files (none still retiring).
            started = _partition_time(directory)
            if keep or started is None or started + timedelta(hours=1) > now - min_age:
                continue
            live = sorted(directory.glob("*.parquet"))
            if len(live) < 2:
                continue
            _compact_partition(directory, spec, live)
            _write_retired(directory, {p.name: now.isoformat() for p in live})
            compacted += 1
            retired_count += len(live)
    return CompactionReport(compacted, retired_count, deleted)
