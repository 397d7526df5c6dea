"""Event record bytes → the warehouse's `events` Arrow table, decoded straight into columns.

The exact path (`decode` → `flatten_event` → `rows_to_table`) builds a dict per event and
converts it value by value; it was two thirds of the warehouse sink step. Here each event is
decoded by msgspec into typed structs and every column is built in one pass over them.

This path only takes a poll it can prove the exact path would turn into the same rows: an
unknown field, a value of another type, a null where an object belongs, a renamed payload
field (`code`, `from_ms`, ...) on an event type it does not belong to, a missing event_id or
a value Arrow cannot hold makes it decline (return None), and the poll takes the exact path,
which finds and dead-letters what is wrong. `tests/test_indexers_event_columns.py` checks both
paths give the same table.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from contract.columns import COERCE, Column
from contract.tables import EVENT_COLUMNS
from indexers.sink_loop import Record

_UNSET: Any = msgspec.UNSET
_Str = str | None
_Int = int | None


class _Device(msgspec.Struct, forbid_unknown_fields=True):
    device_id: _Str = None
    device_type: _Str = None
    device_model: _Str = None
    os: _Str = None
    app_version: _Str = None


class _Network(msgspec.Struct, forbid_unknown_fields=True):
    country: _Str = None
    region: _Str = None
    isp: _Str = None
    asn: _Int = None
    oca_id: _Str = None
    cdn_tier: _Str = None
    connection_type: _Str = None


class _Payload(msgspec.Struct, forbid_unknown_fields=True):
    event_type: _Str = None
    autoplay: bool | None = None
    resume_position_ms: _Int = None
    latency_ms: _Int = None
    renditions: _Int = None
    drm: _Str = None
    startup_ms: _Int = None
    bitrate_kbps: _Int = None
    buffer_ms: _Int = None
    throughput_kbps: _Int = None
    dropped_frames: _Int = None
    position_ms: _Int = None
    playing: bool | None = None
    from_kbps: _Int = None
    to_kbps: _Int = None
    duration_ms: _Int = None
    paused_ms: _Int = None
    http_status: _Int = None
    watched_ms: _Int = None
    exit_reason: _Str = None
    # Renamed into columns for one event type only (documents._RENAMES); elsewhere the exact
    # path keeps them in `extra`, so their presence (UNSET vs null) matters.
    code: str | msgspec.UnsetType | None = msgspec.UNSET
    category: str | msgspec.UnsetType | None = msgspec.UNSET
    severity: str | msgspec.UnsetType | None = msgspec.UNSET
    message: str | msgspec.UnsetType | None = msgspec.UNSET
    from_ms: int | msgspec.UnsetType | None = msgspec.UNSET
    to_ms: int | msgspec.UnsetType | None = msgspec.UNSET


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    event_id: str
    event_type: _Str = None
    schema_version: _Int = None
    event_time: _Str = None
    received_at: _Str = None
    member_id: _Str = None
    profile_id: _Str = None
    session_id: _Str = None
    title_id: _Str = None
    device: _Device = msgspec.field(default_factory=_Device)
    network: _Network = msgspec.field(default_factory=_Network)
    payload: _Payload = msgspec.field(default_factory=_Payload)
    clock_skew_clamped: bool | None = None
    derived_facts: list[Any] | None = None
    unknown_facts: list[Any] | None = None
    dimensions: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    # Enrichment columns: taken from `extra` only when absent at the top (documents.py).
    genre: str | msgspec.UnsetType | None = msgspec.UNSET
    device_family: str | msgspec.UnsetType | None = msgspec.UNSET
    oca_site: str | msgspec.UnsetType | None = msgspec.UNSET


_DECODER = msgspec.json.Decoder(_Event)
_RENAMED = {
    "error_code": ("code", "error"),
    "error_category": ("category", "error"),
    "error_severity": ("severity", "error"),
    "error_message": ("message", "error"),
    "seek_from_ms": ("from_ms", "seek"),
    "seek_to_ms": ("to_ms", "seek"),
}
_ENRICHMENT = ("genre", "device_family", "oca_site")
_JSON_COLUMNS = ("derived_facts", "unknown_facts", "dimensions")
_PROVENANCE = ("source_partition", "source_offset", "ingested_at", "extra")
_DEVICE = frozenset(_Device.__struct_fields__)
_NETWORK = frozenset(_Network.__struct_fields__)
_PAYLOAD = frozenset(_Payload.__struct_fields__)
_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in EVENT_COLUMNS])


class Declined(Exception):
    """The poll holds something only the exact path decides; take that path."""


def _part(name: str) -> str:
    """Which struct holds column `name`: the event, its device, network or payload."""
    for part, fields in (("device", _DEVICE), ("network", _NETWORK), ("payload", _PAYLOAD)):
        if name in fields:
            return part
    return "event"


_PLAIN: dict[str, tuple[str, Callable[[Any], Any]]] = {
    c.name: (_part(c.name), operator.attrgetter(c.name))
    for c in EVENT_COLUMNS
    if c.name not in _RENAMED
    and c.name not in _ENRICHMENT
    and c.name not in _JSON_COLUMNS
    and c.name not in _PROVENANCE
}


def events_table(records: Sequence[Record], ingested_at: str) -> pa.Table | None:
    """The `events` rows of `records` (all from the events topic), or None to decline."""
    try:
        events = [_DECODER.decode(r.value or b"") for r in records]
        values = _columns(events, records, ingested_at)
        arrays = [_array(values[c.name], c) for c in EVENT_COLUMNS]
    except (msgspec.DecodeError, Declined, pa.ArrowException, OverflowError, TypeError):
        return None
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def _columns(events: list[_Event], records: Sequence[Record], stamp: str) -> dict[str, list[Any]]:
    if any(not e.event_id for e in events):
        raise Declined("an event without event_id (the exact path dead-letters it)")
    # One attribute hop per value: the sub-structs are listed once, not reached per column.
    parts: dict[str, list[Any]] = {
        "event": events,
        "device": [e.device for e in events],
        "network": [e.network for e in events],
        "payload": [e.payload for e in events],
    }
    values = {name: list(map(get, parts[part])) for name, (part, get) in _PLAIN.items()}
    event_types = values["event_type"]
    for column, (field, owner) in _RENAMED.items():
        got = list(map(operator.attrgetter(field), parts["payload"]))
        if any(v is not _UNSET and t != owner for v, t in zip(got, event_types, strict=True)):
            raise Declined(f"payload.{field} on an event that is not {owner}")
        values[column] = [None if v is _UNSET else v for v in got]
    for name in _JSON_COLUMNS:
        values[name] = _json_texts([getattr(e, name) for e in events])
    values.update(_enrichment_and_extra(events))
    values["source_partition"] = [r.partition for r in records]
    values["source_offset"] = [r.offset for r in records]
    values["ingested_at"] = [stamp] * len(records)
    return values


def _json_texts(values: list[Any]) -> list[str | None]:
    """`COERCE["json"]` of each value; lists of strings (facts: a handful of distinct ones)
    are encoded once per distinct list."""
    to_json = COERCE["json"]
    cache: dict[tuple[str, ...], str | None] = {}
    out: list[str | None] = []
    for value in values:
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            key = tuple(value)
            if key not in cache:
                cache[key] = to_json(value)
            out.append(cache[key])
        else:
            out.append(None if value is None else to_json(value))
    return out


def _enrichment_and_extra(events: list[_Event]) -> dict[str, list[Any]]:
    """`genre`, `device_family`, `oca_site` and `extra`, exactly as `flatten_event` lifts them."""
    to_json = COERCE["json"]
    out: dict[str, list[Any]] = {name: [] for name in (*_ENRICHMENT, "extra")}
    for e in events:
        extra = dict(e.extra) if e.extra else {}
        for name in _ENRICHMENT:
            top = getattr(e, name)
            if top is _UNSET and name in extra:
                top = extra.pop(name)
            out[name].append(None if top is _UNSET else top)
        out["extra"].append(to_json(extra) if extra else None)
    return out


def _array(values: list[Any], column: Column) -> pa.Array:
    if column.kind == "timestamp":
        # As the exact path: ISO text read as strings, then cast (parses offsets and 'Z').
        return pa.array(values, pa.string()).cast(column.arrow_type)
    if column.name in _ENRICHMENT and not all(v is None or isinstance(v, str) for v in values):
        # Lifted from `extra`, so of any type: the exact path coerces it, value by value.
        raise Declined(f"a non-string {column.name} in extra")
    return pa.array(values, column.arrow_type)
