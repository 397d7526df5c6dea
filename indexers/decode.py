"""Consumed record → flat record, or the reason it cannot be one (bad records are data)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from contract.tables import TABLE_BY_TOPIC, TableSpec
from indexers.documents import document_id, flatten
from indexers.sink_loop import Record
from streamwatch.settings import Settings


# Not frozen, with slots: one is made per consumed record, and a frozen dataclass's
# `__init__` (object.__setattr__ per field) cost as much as the JSON parse.
@dataclass(slots=True)
class Decoded:
    """A record that decoded into a flat row of `table`, keyed by `doc_id`."""

    record: Record
    table: TableSpec
    row: dict[str, Any]
    doc_id: str


@dataclass(frozen=True)
class Undecodable:
    """A record that cannot become a row; goes to the dead-letter topic."""

    record: Record
    reason: str
    detail: str
    event_id: str | None = None


def logical_topic(settings: Settings, topic: str) -> str:
    """`telemetry.events.v1` for `<prefix>telemetry.events.v1`."""
    prefix = settings.topic_prefix
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def loads(data: bytes) -> Any:
    """JSON → Python with orjson (a third of `json`'s time); `json` decides what orjson refuses.

    orjson refuses integers beyond 64 bits and NaN/Infinity, which `json` accepts: the
    fallback keeps what decodes (and what is rejected, with `json`'s message) as before.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def decode(
    settings: Settings, record: Record, now: datetime | None = None
) -> Decoded | Undecodable:
    """Parse, flatten and stamp provenance; never raises for bad input."""
    return Decoder(settings).decode(record, (now or datetime.now(UTC)).isoformat())


class Decoder:
    """`decode` for a sink's stream of polls: the topic → table lookup is cached."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tables: dict[str, TableSpec | None] = {}

    def table_of(self, topic: str) -> TableSpec | None:
        """The table a topic feeds (None for a topic without one)."""
        try:
            return self._tables[topic]
        except KeyError:
            table = TABLE_BY_TOPIC.get(logical_topic(self.settings, topic))
            self._tables[topic] = table
            return table

    def decode(self, record: Record, ingested_at: str) -> Decoded | Undecodable:
        """One record; `ingested_at` is the poll's ISO stamp. Never raises for bad input."""
        table = self.table_of(record.topic)
        if table is None:
            return Undecodable(record, "unknown_topic", f"no table for topic {record.topic}")
        try:
            obj = loads(record.value or b"")
        except ValueError as exc:
            return Undecodable(record, "undecodable_json", str(exc))
        if not isinstance(obj, dict):
            return Undecodable(
                record, "not_an_object", f"expected a JSON object, got {type(obj).__name__}"
            )
        row = flatten(obj, table)
        row["source_partition"] = record.partition
        row["source_offset"] = record.offset
        row["ingested_at"] = ingested_at
        doc_id = document_id(row, table)
        if doc_id is None:
            return Undecodable(
                record, "missing_key", f"{table.name} record lacks {'/'.join(table.key)}"
            )
        return Decoded(record, table, row, doc_id)
