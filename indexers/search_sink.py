"""The search sink step: flat records → `_bulk`, every item's outcome handled.

- events: `create` into the daily index of their `event_time`, `_id` = event_id; a 409 means
  an earlier delivery already wrote it (counted as a duplicate, not an error);
- sessions / incidents: `index` (latest summary wins), `_id` = session_id / incident_id;
- 429 / 5xx items stay pending and the sink raises `Backpressure` (the loop backs off);
- other 4xx items (mapping conflicts...) go to the dead-letter topic with the engine's reason;
  the rest of the batch is indexed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from contract.columns import parse_timestamp
from contract.deadletter import DeadLetter
from indexers import naming
from indexers.deadletters import DeadLetterWriter, dead_letter_for
from indexers.decode import Decoded, Decoder
from indexers.gc_pause import gc_paused
from indexers.search_backend import BulkOp, SearchBackend, SearchUnavailable
from indexers.sink_loop import Backpressure, Record
from indexers.span_search import span_operation
from streamwatch import topics
from streamwatch.settings import Settings

SOURCE = "sink.search"
SEARCH_TOPICS = (topics.EVENTS, topics.SESSIONS, topics.INCIDENTS, topics.SPANS)


@dataclass
class SearchSinkStats:
    """What the sink did (cumulative)."""

    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried_items: int = 0


class SearchSink:
    """`Sink` writing to a `SearchBackend`."""

    name = "sink.search"

    def __init__(
        self,
        settings: Settings,
        backend: SearchBackend,
        deadletters: DeadLetterWriter,
        chunk_size: int = 2000,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.deadletters = deadletters
        self._decoder = Decoder(settings)
        self.chunk_size = chunk_size
        self.stats = SearchSinkStats()
        self._ops: list[tuple[BulkOp, Record]] = []
        self._letters: list[DeadLetter] = []

    def pending(self) -> int:
        """Operations not yet acknowledged by the engine."""
        return len(self._ops) + len(self._letters)

    def add(self, records: Sequence[Record]) -> None:
        """Turn records into bulk operations (or dead-letters when they cannot be one)."""
        with gc_paused():
            self._add(records, datetime.now(UTC))

    def _add(self, records: Sequence[Record], now: datetime) -> None:
        # One stamp per poll: a clock read and its ISO text per record showed in profiles.
        stamp = now.isoformat()
        for record in records:
            decoded = self._decoder.decode(record, stamp)
            if isinstance(decoded, Decoded):
                op = self._operation(decoded)
                if isinstance(op, BulkOp):
                    self._ops.append((op, record))
                else:
                    self._letters.append(op)
            else:
                self._letters.append(
                    dead_letter_for(record, decoded.reason, decoded.detail, SOURCE)
                )

    def _operation(self, decoded: Decoded) -> BulkOp | DeadLetter:
        table = decoded.table.name
        if table == "spans":
            return span_operation(self.settings, decoded)
        if table == "events":
            try:
                when = parse_timestamp(decoded.row.get("event_time"))
            except (TypeError, ValueError) as exc:
                when, error = None, str(exc)
            else:
                error = "event_time missing"
            if when is None:
                return dead_letter_for(
                    decoded.record, "bad_event_time", error, SOURCE, event_id=decoded.doc_id
                )
            index = naming.events_index(self.settings, when.date())
            return BulkOp("create", index, decoded.doc_id, decoded.row)
        index = (
            naming.sessions_index(self.settings)
            if table == "sessions"
            else naming.incidents_index(self.settings)
        )
        return BulkOp("index", index, decoded.doc_id, decoded.row)

    async def flush(self) -> None:
        """Index what is pending now; raise `Backpressure` while the engine cannot take it.

        Records added while this runs (the loop polls the next batch meanwhile) wait for the
        next flush; on `Backpressure` the unwritten operations go back ahead of them.
        """
        await self._send_letters()
        todo, self._ops = self._ops, []
        try:
            while todo:
                chunk = todo[: self.chunk_size]
                retry = await self._bulk(chunk)
                # Dead-letters are acknowledged before their operations leave the pending list.
                await self._send_letters()
                todo = retry + todo[len(chunk) :]
                if retry:
                    self.stats.retried_items += len(retry)
                    raise Backpressure(f"{len(retry)} bulk items answered 429/5xx")
        finally:
            self._ops = todo + self._ops

    async def _bulk(self, chunk: list[tuple[BulkOp, Record]]) -> list[tuple[BulkOp, Record]]:
        """Send one `_bulk`; the operations to retry (429/5xx items). Rejects become letters."""
        try:
            results = await asyncio.to_thread(self.backend.bulk, [op for op, _ in chunk])
        except SearchUnavailable as exc:
            raise Backpressure(str(exc)) from exc
        retry: list[tuple[BulkOp, Record]] = []
        for (op, record), result in zip(chunk, results, strict=True):
            if result.ok:
                self.stats.indexed += 1
            elif result.already_done:
                self.stats.duplicates += 1
            elif result.retryable:
                retry.append((op, record))
            else:
                self._letters.append(
                    dead_letter_for(
                        record,
                        f"search.{result.error_type or result.status}",
                        f"{result.status} {result.error_type}: {result.error_reason}",
                        SOURCE,
                        event_id=op.doc_id,
                    )
                )
        return retry

    async def _send_letters(self) -> None:
        if self._letters:
            await self.deadletters.send(self._letters)
            self.stats.dead_lettered += len(self._letters)
            self._letters = []
