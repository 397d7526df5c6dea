"""Record → document / row: flattening upstream records into a table's columns.

Upstream topics carry JSON: `telemetry.events.v1` holds `contract.events.Event` JSON (maybe
enriched by streams), `qoe.sessions.v1` / `qoe.minute.v1` / `ops.incidents.v1` hold the
records of `contract/records.py`. Each is flattened into one flat dict whose keys are the
columns of `contract.tables`; whatever has no column is kept in `extra`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contract.columns import SOURCE_COLUMNS
from contract.tables import EVENT_COLUMNS, TABLES, TableSpec

# The column each differently named record field lands in, derived from `Column.source`.
_PAYLOAD_COLUMNS: dict[str, str] = {
    c.source.removeprefix("payload."): c.name
    for c in EVENT_COLUMNS
    if c.source and c.source.startswith("payload.")
}
_FIELD_COLUMNS: dict[str, dict[str, str]] = {
    t.name: {c.source: c.name for c in t.columns if c.source} for t in TABLES
}
_EVENT_COLUMN_NAMES = frozenset(c.name for c in EVENT_COLUMNS)


def flatten_event(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Event JSON → flat record (values as they came; typing happens in the store)."""
    # Hot path of both sinks: plain loops, one helper call per event, none per field.
    names = _EVENT_COLUMN_NAMES
    flat: dict[str, Any] = {}
    raw_extra = obj.get("extra")
    extra: dict[str, Any] = dict(raw_extra) if isinstance(raw_extra, Mapping) else {}
    for key, value in obj.items():
        if (key == "device" or key == "network") and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if sub in names and sub not in flat and sub not in _SOURCE_NAMES:
                    flat[sub] = sub_value
                else:
                    extra[f"{key}.{sub}"] = sub_value
        elif key == "payload" and isinstance(value, Mapping):
            _lift_payload(flat, extra, value)
        elif key != "extra":
            if key in names and key not in flat and key not in _SOURCE_NAMES:
                flat[key] = value
            else:
                extra[key] = value
    if extra:
        _lift_enrichment(flat, extra)
    return flat


def _lift_payload(flat: dict[str, Any], extra: dict[str, Any], payload: Mapping[str, Any]) -> None:
    """Put payload fields in their event columns, the rest in `extra` as `payload.<key>`."""
    names = _EVENT_COLUMN_NAMES
    for sub, sub_value in payload.items():
        if sub == "event_type":
            continue  # the payload's discriminator repeats the envelope's event_type
        name = _PAYLOAD_COLUMNS.get(sub, sub)
        if name in names and name not in flat and name not in _SOURCE_NAMES:
            flat[name] = sub_value
        else:
            extra[f"payload.{sub}"] = sub_value


def _lift_enrichment(flat: dict[str, Any], extra: dict[str, Any]) -> None:
    # Enrichment may arrive as top-level fields or inside `extra`: lift it to its column.
    for name in _ENRICHMENT:
        if name not in flat and name in extra:
            flat[name] = extra.pop(name)
    if extra:
        flat["extra"] = extra


_ENRICHMENT = ("genre", "device_family", "oca_site")


def flatten_record(obj: Mapping[str, Any], table: TableSpec) -> dict[str, Any]:
    """A session / minute / incident / dead-letter record → flat record.

    Nested maps without a column of their own (e.g. a rollup's `counts`) are lifted one level.
    """
    names = frozenset(table.column_names)
    renames = _FIELD_COLUMNS[table.name]
    flat: dict[str, Any] = {}
    raw_extra = obj.get("extra")
    extra: dict[str, Any] = dict(raw_extra) if isinstance(raw_extra, Mapping) else {}
    for key, value in obj.items():
        if key == "extra":
            continue
        name = renames.get(key, key)
        if isinstance(value, Mapping) and name not in names:
            for sub, sub_value in value.items():
                _put(flat, extra, str(renames.get(sub, sub)), sub_value, names, f"{key}.")
        else:
            _put(flat, extra, name, value, names, "")
    if extra:
        flat["extra"] = extra
    return flat


def flatten(obj: Mapping[str, Any], table: TableSpec) -> dict[str, Any]:
    """Flat record for `table` from one upstream JSON object."""
    return flatten_event(obj) if table.name == "events" else flatten_record(obj, table)


def _put(
    flat: dict[str, Any],
    extra: dict[str, Any],
    key: str,
    value: Any,
    names: frozenset[str],
    origin: str,
) -> None:
    if key in names and key not in flat and key not in _SOURCE_NAMES:
        flat[key] = value
    else:
        extra[f"{origin}{key}"] = value


_SOURCE_NAMES = frozenset(c.name for c in SOURCE_COLUMNS)


def document_id(flat: Mapping[str, Any], table: TableSpec) -> str | None:
    """Search `_id` of a flat record: its dedupe key (None when a key part is missing)."""
    parts = [flat.get(k) for k in table.key]
    if any(p is None or p == "" for p in parts):
        return None
    return "|".join(str(p) for p in parts)


def source_fields(partition: int, offset: int, ingested_at: str) -> dict[str, Any]:
    """Provenance columns added to every record by the sinks."""
    return {"source_partition": partition, "source_offset": offset, "ingested_at": ingested_at}


def all_column_names(tables: Sequence[TableSpec] = TABLES) -> set[str]:
    """Every column name of every table (used to check docs/warehouse.md)."""
    return {c.name for t in tables for c in t.columns}
