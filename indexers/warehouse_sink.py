"""The warehouse sink step: flat records → typed Arrow tables → immutable Parquet files.

Rows are appended as Arrow batches (never row by row). Dedupe is the readers' job (views keep
the first row per event_id, the latest per session / incident / minute key), so a replay after
a crash only adds rows that the views hide.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from contract.deadletter import DeadLetter
from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.arrow_rows import rows_to_table
from indexers.deadletters import DeadLetterWriter, dead_letter_for
from indexers.decode import Decoded, Decoder
from indexers.event_columns import events_table
from indexers.gc_pause import gc_paused
from indexers.sink_loop import Backpressure, Record
from indexers.warehouse_writer import write_partitioned
from streamwatch import topics
from streamwatch.settings import Settings

SOURCE = "sink.warehouse"
EVENTS = TABLE_BY_NAME["events"]
WAREHOUSE_TOPICS = (
    topics.EVENTS,
    topics.SESSIONS,
    topics.MINUTE,
    topics.INCIDENTS,
    topics.DEADLETTER,
    topics.SPANS,
    topics.SERVICE_MINUTE,
)


@dataclass
class WarehouseSinkStats:
    """What the sink did (cumulative)."""

    rows_written: int = 0
    files_written: int = 0
    dead_lettered: int = 0


class WarehouseSink:
    """`Sink` appending to the Parquet warehouse."""

    name = "sink.warehouse"

    def __init__(self, settings: Settings, deadletters: DeadLetterWriter) -> None:
        self.settings = settings
        self.root: Path = naming.warehouse_root(settings)
        self.deadletters = deadletters
        self._decoder = Decoder(settings)
        self.stats = WarehouseSinkStats()
        self._rows: dict[str, list[Decoded]] = defaultdict(list)
        self._events: list[pa.Table] = []  # polls of events decoded straight into columns
        self._letters: list[DeadLetter] = []

    def pending(self) -> int:
        """Rows not yet in a file."""
        rows = sum(len(v) for v in self._rows.values()) + sum(int(t.num_rows) for t in self._events)
        return rows + len(self._letters)

    def add(self, records: Sequence[Record]) -> None:
        """Decode records into per-table row lists (bad ones become dead-letters)."""
        with gc_paused():
            self._add(records, datetime.now(UTC))

    def _add(self, records: Sequence[Record], now: datetime) -> None:
        # One stamp per poll: a clock read and its ISO text per record showed in profiles.
        stamp = now.isoformat()
        # One lookup per topic, not per record: a poll is usually one partition's records.
        topics_seen = {r.topic for r in records}
        if topics_seen and all(self._decoder.table_of(t) is EVENTS for t in topics_seen):
            table = events_table(records, stamp)
            if table is not None:
                self._events.append(table)
                return
        for record in records:
            decoded = self._decoder.decode(record, stamp)
            if isinstance(decoded, Decoded):
                self._rows[decoded.table.name].append(decoded)
            else:
                self._letters.append(
                    dead_letter_for(record, decoded.reason, decoded.detail, SOURCE)
                )

    async def flush(self) -> None:
        """Write every table pending now; raise `Backpressure` if the disk refuses.

        Rows added while this runs (the loop polls the next batch meanwhile) wait for the
        next flush; on `Backpressure` the unwritten tables go back ahead of them.
        """
        todo, self._rows = self._rows, defaultdict(list)
        columns, self._events = self._events, []
        try:
            if columns or todo.get("events"):
                await self._write("events", todo.pop("events", []), columns)
                columns = []
            for name in list(todo):
                await self._write(name, todo[name])
                del todo[name]
        finally:
            for name, newer in self._rows.items():
                todo[name].extend(newer)
            self._rows = todo
            self._events = columns + self._events
        if self._letters:
            await self.deadletters.send(self._letters)
            self.stats.dead_lettered += len(self._letters)
            self._letters = []

    async def _write(
        self, name: str, pending: list[Decoded], decoded: Sequence[pa.Table] = ()
    ) -> None:
        spec = TABLE_BY_NAME[name]
        table, bad = rows_to_table([d.row for d in pending], spec.columns)
        if decoded:
            table = pa.concat_tables([*decoded, table])
        letters = [
            dead_letter_for(
                pending[index].record,
                "warehouse_type_mismatch",
                reason,
                SOURCE,
                event_id=pending[index].doc_id if name == "events" else None,
            )
            for index, reason in bad.items()
        ]
        try:
            paths = await asyncio.to_thread(write_partitioned, self.root, spec, table)
        except OSError as exc:
            # The rows stay pending (their letters are rebuilt on the retry).
            raise Backpressure(f"warehouse write failed: {exc}") from exc
        self._letters.extend(letters)
        self.stats.rows_written += table.num_rows
        self.stats.files_written += len(paths)
