"""Consumed record → flat record, or the reason it cannot be one (bad records are data)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.tables import TABLE_BY_TOPIC, TableSpec
from indexers.documents import document_id, flatten
from indexers.sink_loop import Record
from streamwatch.settings import Settings


@dataclass(frozen=True)
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


def decode(
    settings: Settings, record: Record, now: datetime | None = None
) -> Decoded | Undecodable:
    """Parse, flatten and stamp provenance; never raises for bad input."""
    table = TABLE_BY_TOPIC.get(logical_topic(settings, record.topic))
    if table is None:
        return Undecodable(record, "unknown_topic", f"no table for topic {record.topic}")
    try:
        obj = json.loads(record.value or b"")
    except ValueError as exc:
        return Undecodable(record, "undecodable_json", str(exc))
    if not isinstance(obj, dict):
        return Undecodable(
            record, "not_an_object", f"expected a JSON object, got {type(obj).__name__}"
        )
    row = flatten(obj, table)
    row["source_partition"] = record.partition
    row["source_offset"] = record.offset
    row["ingested_at"] = (now or datetime.now(UTC)).isoformat()
    doc_id = document_id(row, table)
    if doc_id is None:
        return Undecodable(
            record, "missing_key", f"{table.name} record lacks {'/'.join(table.key)}"
        )
    return Decoded(record, table, row, doc_id)
