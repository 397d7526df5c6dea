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
from pathlib import Path

from contract.deadletter import DeadLetter
from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.arrow_rows import rows_to_table
from indexers.deadletters import DeadLetterWriter, dead_letter_for
from indexers.decode import Decoded, decode
from indexers.sink_loop import Backpressure, Record
from indexers.warehouse_writer import write_partitioned
from streamwatch import topics
from streamwatch.settings import Settings

SOURCE = "sink.warehouse"
WAREHOUSE_TOPICS = (
    topics.EVENTS,
    topics.SESSIONS,
    topics.MINUTE,
    topics.INCIDENTS,
    topics.DEADLETTER,
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
        self.stats = WarehouseSinkStats()
        self._rows: dict[str, list[Decoded]] = defaultdict(list)
        self._letters: list[DeadLetter] = []

    def pending(self) -> int:
        """Rows not yet in a file."""
        return sum(len(v) for v in self._rows.values()) + len(self._letters)

    def add(self, records: Sequence[Record]) -> None:
        """Decode records into per-table row lists (bad ones become dead-letters)."""
        for record in records:
            decoded = decode(self.settings, record)
            if isinstance(decoded, Decoded):
                self._rows[decoded.table.name].append(decoded)
            else:
                self._letters.append(
                    dead_letter_for(record, decoded.reason, decoded.detail, SOURCE)
                )

    async def flush(self) -> None:
        """Write every pending table; raise `Backpressure` if the disk refuses."""
        for name in list(self._rows):
            pending = self._rows[name]
            spec = TABLE_BY_NAME[name]
            table, bad = rows_to_table([d.row for d in pending], spec.columns)
            for index, reason in bad.items():
                d = pending[index]
                self._letters.append(
                    dead_letter_for(
                        d.record,
                        "warehouse_type_mismatch",
                        reason,
                        SOURCE,
                        event_id=d.doc_id if name == "events" else None,
                    )
                )
            try:
                paths = await asyncio.to_thread(write_partitioned, self.root, spec, table)
            except OSError as exc:
                # Keep the rows (and drop the letters built for them: they are rebuilt).
                self._letters = self._letters[: len(self._letters) - len(bad)]
                raise Backpressure(f"warehouse write failed: {exc}") from exc
            self.stats.rows_written += table.num_rows
            self.stats.files_written += len(paths)
            del self._rows[name]
        if self._letters:
            await self.deadletters.send(self._letters)
            self.stats.dead_lettered += len(self._letters)
            self._letters = []
