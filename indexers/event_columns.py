"""Event record bytes → the warehouse's `events` Arrow table, decoded straight into columns.

The exact path (`decode` → `flatten_event` → `rows_to_table`) builds a dict per event and
converts it value by value; it was two thirds of the warehouse sink step. Here msgspec decodes
each event into typed structs, which decide whether the poll can take this path, and DuckDB's
C++ JSON reader (`json_transform`) extracts the plain columns of the whole poll at once: a
per-value Python pass over ~45 columns and their Arrow conversion was most of what remained.
Python builds only what DuckDB cannot tell apart (absent vs null): values lifted out of
`extra`, the JSON columns and the renamed-field checks, with whole-column C loops
(`list.count`, `any`) and a per-event loop only where an event needs one.

This path only takes a poll it can prove the exact path would turn into the same rows: an
unknown field, a value of another type, a null where an object belongs, a renamed payload
field (`code`, `from_ms`, ...) on an event type it does not belong to, a missing event_id or
a value Arrow cannot hold makes it decline (return None), and the poll takes the exact path,
which finds and dead-letters what is wrong. `tests/test_indexers_event_columns.py` checks both
paths give the same table.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence
from typing import Annotated, Any

import duckdb
import msgspec
import pyarrow as pa

from contract.columns import COERCE, Column
from contract.tables import EVENT_COLUMNS
from indexers.sink_loop import Record

_UNSET: Any = msgspec.UNSET
_Str = str | None
# Bounded to 64 bits: DuckDB extracts the values as BIGINT, and a wider one (which msgspec
# would accept) must decline, as the exact path's Arrow conversion refuses it.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None


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


_PLAIN: dict[str, str] = {  # column → the struct holding it
    c.name: _part(c.name)
    for c in EVENT_COLUMNS
    if c.name not in _RENAMED
    and c.name not in _ENRICHMENT
    and c.name not in _JSON_COLUMNS
    and c.name not in _PROVENANCE
}
_KIND_SQL = {"int": "BIGINT", "long": "BIGINT", "bool": "BOOLEAN", "double": "DOUBLE"}


def _extract_sql() -> str:
    """The query that reads every plain, renamed and top-level enrichment column out of the
    events' JSON text (DuckDB's C++ reader: the per-value Python work was most of the step)."""
    kinds = {c.name: _KIND_SQL.get(c.kind, "VARCHAR") for c in EVENT_COLUMNS}
    structure: dict[str, dict[str, str]] = {"event": {}, "device": {}, "network": {}, "payload": {}}
    select: list[str] = []
    for name, part in _PLAIN.items():
        structure[part][name] = kinds[name]
        path = "t" if part == "event" else f't."{part}"'
        select.append(f'{path}."{name}" AS "{name}"')
    for column, (field, _owner) in _RENAMED.items():
        structure["payload"][field] = kinds[column]
        select.append(f't."payload"."{field}" AS "{column}"')
    for name in _ENRICHMENT:
        structure["event"][name] = kinds[name]
        select.append(f't."{name}" AS "{name}"')
    shape: dict[str, Any] = dict(structure.pop("event"))
    shape.update(structure)
    text = msgspec.json.encode(shape).decode().replace("'", "''")
    return f"SELECT {', '.join(select)} FROM (SELECT json_transform(j, '{text}') AS t FROM batch)"


_EXTRACT = _extract_sql()
_LOCAL = threading.local()  # one in-memory DuckDB per thread (a connection is not shared)


def _extract(records: Sequence[Record]) -> pa.Table:
    """The columns of `_EXTRACT`, in record order, read by DuckDB from the records' bytes.

    Only called on a poll msgspec has validated: DuckDB reads values, the structs decide."""
    con: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = duckdb.connect()
    batch = pa.table({"j": pa.array([r.value for r in records], pa.string())})
    con.register("batch", batch)
    try:
        return con.sql(_EXTRACT).to_arrow_table()
    finally:
        con.unregister("batch")


def events_table(records: Sequence[Record], ingested_at: str) -> pa.Table | None:
    """The `events` rows of `records` (all from the events topic), or None to decline."""
    try:
        events = [_DECODER.decode(r.value or b"") for r in records]
        python = _checked_columns(events, records, ingested_at)
        extracted = _extract(records)
        if extracted["event_id"].to_pylist() != python["event_id"]:
            # DuckDB keeps the scan's order (preserve_insertion_order); never trust it blindly.
            raise Declined("the extracted rows are not in record order")
        arrays = [
            _array(python[c.name], c) if c.name in python else _cast(extracted[c.name], c)
            for c in EVENT_COLUMNS
        ]
    except (msgspec.DecodeError, Declined, pa.ArrowException, OverflowError, TypeError):
        return None
    except duckdb.Error:
        return None
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def _checked_columns(
    events: list[_Event], records: Sequence[Record], stamp: str
) -> dict[str, list[Any]]:
    """The checks that decide between this path and the exact one, and the columns only
    Python builds (JSON texts, values lifted from `extra`, provenance).

    The checks run on whole columns (`list.count`, `any`, `in`: C loops); a per-event
    Python loop runs only for what needs one (extra present, renamed payload fields set).
    """
    n = len(events)
    ids = list(map(operator.attrgetter("event_id"), events))
    if "" in ids:
        raise Declined("an event without event_id (the exact path dead-letters it)")
    payloads = [e.payload for e in events]
    _check_renamed(payloads, list(map(operator.attrgetter("event_type"), events)), n)
    values = {
        name: _json_texts(list(map(operator.attrgetter(name), events)), n) for name in _JSON_COLUMNS
    }
    values.update(_lifted_from_extra(events))
    values["event_id"] = ids
    values["source_partition"] = [r.partition for r in records]
    values["source_offset"] = [r.offset for r in records]
    values["ingested_at"] = [stamp] * n
    return values


def _check_renamed(payloads: list[_Payload], event_types: list[Any], n: int) -> None:
    """`code`, `from_ms`, ... set (even to null) only on events of their owner type: elsewhere
    the exact path keeps them in `extra`."""
    owners: dict[str, list[int]] = {}
    for field, owner in _RENAMED.values():
        got = list(map(operator.attrgetter(field), payloads))
        unset = got.count(_UNSET)
        if unset == n:
            continue
        if owner not in owners:
            owners[owner] = [i for i, t in enumerate(event_types) if t == owner]
        if n - unset != sum(1 for i in owners[owner] if got[i] is not _UNSET):
            raise Declined(f"payload.{field} on an event that is not {owner}")


def _json_texts(values: list[Any], n: int) -> list[str | None]:
    """`COERCE["json"]` of each value; lists of strings (facts: a handful of distinct ones)
    are encoded once per distinct list."""
    if values.count(None) == n:
        return [None] * n
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


def _lifted_from_extra(events: list[_Event]) -> dict[str, list[Any]]:
    """`extra`, and `genre`, `device_family`, `oca_site` where `flatten_event` lifts them out
    of it (absent at the top, present in `extra`); nothing when no event carries an extra
    (the extracted top-level values are then the columns)."""
    extras = [e.extra for e in events]
    if not any(extras):
        return {"extra": [None] * len(events)}
    to_json = COERCE["json"]
    out: dict[str, list[Any]] = {name: [] for name in (*_ENRICHMENT, "extra")}
    for e, raw in zip(events, extras, strict=True):
        extra = dict(raw) if raw else {}
        for name in _ENRICHMENT:
            top = getattr(e, name)
            if top is _UNSET:
                top = extra.pop(name, None)
            out[name].append(top)
        out["extra"].append(to_json(extra) if extra else None)
    return out


def _cast(values: pa.ChunkedArray, column: Column) -> pa.Array:
    """An extracted column in its Arrow type (a safe cast: an int32 overflow raises)."""
    if column.kind == "timestamp":
        # As the exact path: ISO text cast (parses offsets and 'Z').
        return values.combine_chunks().cast(pa.string()).cast(column.arrow_type)
    return values.combine_chunks().cast(column.arrow_type)


def _array(values: list[Any], column: Column) -> pa.Array:
    if column.kind == "timestamp":
        # As the exact path: ISO text read as strings, then cast (parses offsets and 'Z').
        return pa.array(values, pa.string()).cast(column.arrow_type)
    if column.name in _ENRICHMENT and not all(v is None or isinstance(v, str) for v in values):
        # Lifted from `extra`, so of any type: the exact path coerces it, value by value.
        raise Declined(f"a non-string {column.name} in extra")
    return pa.array(values, column.arrow_type)
