"""Typed column specifications shared by the search mappings and the warehouse schema.

One `Column` says what a field is once: its Arrow type (warehouse), its search-engine type
(mapping) and a sentence of documentation (docs/warehouse.md is checked against these).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

Kind = Literal["keyword", "text", "timestamp", "int", "long", "double", "bool", "json"]

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "keyword": pa.string(),
    "text": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "json": pa.string(),
}

DUCKDB_TYPES: dict[Kind, str] = {
    "keyword": "VARCHAR",
    "text": "VARCHAR",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "int": "INTEGER",
    "long": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "json": "VARCHAR",
}

# Text fields get a keyword sub-field so they can be searched by word and aggregated exactly.
SEARCH_TYPES: dict[Kind, dict[str, Any]] = {
    "keyword": {"type": "keyword", "ignore_above": 256},
    "text": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
    "timestamp": {"type": "date"},
    "int": {"type": "integer"},
    "long": {"type": "long"},
    "double": {"type": "double"},
    "bool": {"type": "boolean"},
    # Free-form maps are kept in _source but not indexed: unknown keys cannot cause mapping
    # conflicts or mapping explosion.
    "json": {"type": "object", "enabled": False},
}


@dataclass(frozen=True)
class Column:
    """One typed, documented field of a table / index."""

    name: str
    kind: Kind
    doc: str
    # The upstream record field it holds when not the one of the same name ("payload.code").
    source: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type in the warehouse."""
        return ARROW_TYPES[self.kind]

    @property
    def duckdb_type(self) -> str:
        """SQL type readers see."""
        return DUCKDB_TYPES[self.kind]


# The provenance columns every sink adds to every table's rows, after the record's own.
SOURCE_COLUMNS: tuple[Column, ...] = (
    Column(
        "ingested_at",
        "timestamp",
        "When the sink wrote the row (UTC); freshness = this - the record's own time.",
    ),
    Column("source_partition", "int", "Kafka partition the record was read from."),
    Column(
        "source_offset", "long", "Kafka offset the record was read from (tie-break for dedupe)."
    ),
)


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 text or epoch milliseconds → aware UTC datetime (naive text is taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise TypeError(f"not a timestamp: {value!r}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            return round(value)
        return int(value)
    return int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"not a boolean: {value!r}")


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


# What `json.dumps(value, separators=(",", ":"), default=str)` writes, with the encoder
# built once: json.dumps builds one per call when given options.
_ENCODE_JSON = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _json(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    return value if isinstance(value, str) else _ENCODE_JSON(value)


COERCE: dict[Kind, Callable[[Any], Any]] = {
    "keyword": _str,
    "text": _str,
    "timestamp": parse_timestamp,
    "int": _int,
    "long": _int,
    "double": _float,
    "bool": _bool,
    "json": _json,
}
