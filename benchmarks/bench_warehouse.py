"""Warehouse append throughput vs DuckDB's own Arrow insert, same table, same run.

    .venv/bin/python -m benchmarks.bench_warehouse --events 1000000

Prints rows/s of (1) our append: one Arrow table → immutable date/hour Parquet partitions
(what the sink does after decoding), (2) the sink step end to end: Kafka record bytes →
flat rows → typed Arrow → Parquet, pipelined as the sink loop runs it, and (3) the
reference: DuckDB `INSERT INTO ... SELECT * FROM arrow_table` into a DuckDB table on disk,
once before and once after (2), their mean time; then the ratios, and the time of a
deduplicated count through the read-only views.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from aiokafka.structs import ConsumerRecord

from contract.tables import EVENT_COLUMNS, TABLE_BY_NAME
from indexers.arrow_rows import rows_to_table
from indexers.deadletters import DeadLetterWriter
from indexers.documents import flatten_event
from indexers.sink_loop import Record
from indexers.warehouse_reader import connect_readonly
from indexers.warehouse_sink import WarehouseSink
from indexers.warehouse_writer import write_partitioned
from streamwatch.settings import Settings
from testkit.event_json import events


async def _sink_step(settings: Settings, records: list[Record], batch: int) -> tuple[float, float]:
    """The sink as `run_sink_loop` drives it: the next batch is decoded while the previous
    one's files are written (the write runs in a thread and releases the GIL).

    Returns (wall seconds, CPU seconds of this process, all its threads)."""
    sink = WarehouseSink(settings, DeadLetterWriter(settings))  # no letters: never started
    t, cpu = time.perf_counter(), time.process_time()
    inflight: asyncio.Task[None] | None = None
    for start in range(0, len(records), batch):
        sink.add(records[start : start + batch])
        if inflight is not None:
            await inflight
        inflight = asyncio.create_task(sink.flush())
        await asyncio.sleep(0)  # let the flush take its batch before the next add
    if inflight is not None:
        await inflight
    if sink.pending():
        raise RuntimeError(f"{sink.pending()} rows left unwritten")
    return time.perf_counter() - t, time.process_time() - cpu


def _duckdb_insert(path: Path, arrow_table: pa.Table, batch: int) -> tuple[float, float]:
    """(Wall, CPU) seconds of DuckDB's own insert of `arrow_table` in `batch`-row slices into
    a table in a new database file, checkpointed (the reference)."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE events AS SELECT * FROM arrow_table LIMIT 0")
        t, cpu = time.perf_counter(), time.process_time()
        for start in range(0, arrow_table.num_rows, batch):
            part = arrow_table.slice(start, batch)  # noqa: F841 - read by DuckDB's replacement scan
            con.execute("INSERT INTO events SELECT * FROM part")
        con.execute("CHECKPOINT")
        return time.perf_counter() - t, time.process_time() - cpu
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per sink flush")
    args = parser.parse_args()
    n = args.events
    root = Path(tempfile.mkdtemp(prefix="bench-warehouse-"))
    try:
        now = datetime.now(UTC)
        t = time.perf_counter()
        payloads = [
            json.dumps(e).encode() for e in events(n, seed=1, end=now, span=timedelta(hours=6))
        ]
        print(f"generated {n:,} events in {time.perf_counter() - t:.1f}s")

        records = [
            ConsumerRecord("telemetry.events.v1", i % 6, i, 0, 0, None, p, None, 0, len(p), [])
            for i, p in enumerate(payloads)
        ]
        stamp = now.isoformat()
        rows = []
        for r in records:
            row = flatten_event(json.loads(r.value))
            row.update(source_partition=r.partition, source_offset=r.offset, ingested_at=stamp)
            rows.append(row)
        arrow_table, bad = rows_to_table(rows, EVENT_COLUMNS)
        assert not bad

        # (1) our append: Arrow → partitioned, fsynced, renamed Parquet files
        t = time.perf_counter()
        spec = TABLE_BY_NAME["events"]
        for start in range(0, n, args.batch):
            write_partitioned(root / "append", spec, arrow_table.slice(start, args.batch))
        append_s = time.perf_counter() - t

        # Warm-up, untimed: one batch through each side (a running sink has its decoders,
        # DuckDB connection and memory pools warm; so does a running DuckDB).
        _duckdb_insert(root / "warm.duckdb", arrow_table.slice(0, args.batch), args.batch)
        asyncio.run(_sink_step(Settings(warehouse_dir=root / "warm"), records[: args.batch],
                               args.batch))  # fmt: skip

        # (3) reference, before and after the sink step (the load of a shared machine drifts
        # within a minute: one reference after the step gave 0.30, 0.85 and 0.61 in a row)
        before, before_cpu = _duckdb_insert(root / "ref-before.duckdb", arrow_table, args.batch)

        # (2) the sink step: bytes → rows → Arrow → Parquet (no Kafka, no commit)
        settings = Settings(warehouse_dir=root / "sink")
        step_s, step_cpu = asyncio.run(_sink_step(settings, records, args.batch))

        after, after_cpu = _duckdb_insert(root / "ref-after.duckdb", arrow_table, args.batch)
        ref_s, ref_cpu = (before + after) / 2, (before_cpu + after_cpu) / 2

        reader = connect_readonly(settings)
        t = time.perf_counter()
        count = reader.execute("SELECT count(*) FROM events").fetchone()
        count_s = time.perf_counter() - t
        assert count == (n,), count

        print(f"rows: {n:,}  batch: {args.batch:,}  load average: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs (shared machine)")  # fmt: skip
        print(f"our append (Arrow -> Parquet partitions): {n / append_s:12,.0f} rows/s")
        print(f"sink step (bytes -> Arrow -> Parquet):    {n / step_s:12,.0f} rows/s")
        print(f"DuckDB INSERT ... SELECT FROM arrow:      {n / ref_s:12,.0f} rows/s "
              f"({n / before:,.0f} before the sink step, {n / after:,.0f} after)")  # fmt: skip
        print(f"ratio append / DuckDB insert:  {ref_s / append_s:.2f}")
        print(f"ratio sink step / DuckDB insert: {ref_s / step_s:.2f}")
        # CPU time (all threads of this process) moves less with a shared machine's load.
        print(f"CPU per row: sink step {step_cpu / n * 1e6:.2f} us, DuckDB insert "
              f"{ref_cpu / n * 1e6:.2f} us; ratio {ref_cpu / step_cpu:.2f}")  # fmt: skip
        print(f"deduplicated count(*) over {n:,} rows via read-only views: {count_s * 1000:.0f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
