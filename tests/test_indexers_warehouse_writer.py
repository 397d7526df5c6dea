"""Hour partitions of the warehouse writer: every row in its hour's file, in poll order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contract.tables import TABLE_BY_NAME
from indexers.warehouse_writer import partition_dir, write_partitioned

SPEC = TABLE_BY_NAME["events"]
BASE = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def _table(minutes: list[int | None]) -> pa.Table:
    """Rows `i` at BASE + minutes[i] (None: no event_time), ingested at BASE + 9 h."""
    fields = {f.name: f.type for f in (pa.field(c.name, c.arrow_type) for c in SPEC.columns)}
    n = len(minutes)
    columns = {
        "event_id": pa.array([f"e-{i}" for i in range(n)], fields["event_id"]),
        SPEC.time_column: pa.array(
            [None if m is None else BASE + timedelta(minutes=m) for m in minutes],
            fields[SPEC.time_column],
        ),
        "ingested_at": pa.array([BASE + timedelta(hours=9)] * n, fields["ingested_at"]),
    }
    arrays = [
        columns[name] if name in columns else pa.nulls(n, type_) for name, type_ in fields.items()
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields.items()))


def _written(paths: list[Path]) -> dict[Path, list[str]]:
    return {p.parent: pq.read_table(p)["event_id"].to_pylist() for p in paths}


def _hour_dir(root: Path, hour: int) -> Path:
    return partition_dir(root, SPEC.name, "2026-11-30", hour)


@pytest.mark.parametrize("order", ["in time order", "shuffled"])
def test_each_hour_gets_one_file_with_its_rows_in_poll_order(tmp_path: Path, order: str) -> None:
    minutes: list[int | None] = [5, 20, 70, 80, 130, 200]
    if order == "shuffled":
        minutes = [130, 5, 70, 200, 20, 80]
    minutes.append(None)  # no event_time: falls back to ingested_at (16:00)
    table = _table(minutes)
    got = _written(write_partitioned(tmp_path, SPEC, table))
    expected: dict[Path, list[str]] = {}
    for i, m in enumerate(minutes):
        hour = 16 if m is None else 7 + m // 60
        expected.setdefault(_hour_dir(tmp_path, hour), []).append(f"e-{i}")
    assert got == expected
    assert sum(len(v) for v in got.values()) == table.num_rows


def test_one_hour_is_one_file_of_the_whole_table(tmp_path: Path) -> None:
    table = _table([1, 2, 3])
    paths = write_partitioned(tmp_path, SPEC, table)
    assert len(paths) == 1
    assert pq.read_table(paths[0]).equals(table)


def test_no_rows_no_files(tmp_path: Path) -> None:
    assert write_partitioned(tmp_path, SPEC, _table([]).slice(0, 0)) == []
    assert not (tmp_path / SPEC.name).exists()


def test_near_unique_columns_are_written_without_a_dictionary(tmp_path: Path) -> None:
    """A dictionary only where values repeat; the rows read back are the same either way."""
    table = _table([1, 2, 3])
    (path,) = write_partitioned(tmp_path, SPEC, table)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    for name in ("event_id", "event_time", "received_at", "source_offset"):
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert "RLE_DICTIONARY" in encodings["member_id"]
    assert pq.read_table(path).equals(table)
