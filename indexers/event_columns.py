"""Event record bytes → the warehouse's `events` Arrow table, decoded straight into columns.

The exact path (`decode` → `flatten_event` → `rows_to_table`) builds a dict per event and
converts it value by value; it was two thirds of the warehouse sink step. Here msgspec decodes
each event into typed structs (a few hundred at a time, freed before the next: a whole poll's
structs cost more in memory traffic than their decode), which decide whether the poll can
take this path, and DuckDB's
C++ JSON reader (`json_transform`) extracts the plain columns of the whole poll at once: a
per-value Python pass over ~45 columns and their Arrow conversion was most of what remained.
Python builds only what DuckDB cannot tell apart (absent vs null): values lifted out of
`extra` and the JSON columns, with whole-column C loops (`list.count`, `any`) and a
per-event loop only where an event needs one.

This path only takes a poll it can prove the exact path would turn into the same rows: an
unknown field, a value of another type, a null where an object belongs, a missing event_id
or a value Arrow cannot hold makes it decline (return None), and the poll takes the exact path,
which finds and dead-letters what is wrong. `tests/test_indexers_event_columns.py` checks both
paths give the same table.

Known gap: a key repeated within one JSON object (which no serializer of ours writes; the
worker re-serializes every event) is read first-wins by DuckDB and last-wins by orjson.
"""

from __future__ import annotations

import array
import operator
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Annotated, Any

import duckdb
import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from contract.columns import COERCE, Column
from contract.tables import EVENT_COLUMNS
from indexers.sink_loop import Record

_UNSET: Any = msgspec.UNSET
_Str = str | None
# Bounded to 64 bits: DuckDB extracts the values as BIGINT, and a wider one (which msgspec
# would accept) must decline, as the exact path's Arrow conversion refuses it.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None


# gc=False: decoded structs hold only what JSON gives (never themselves), so no cycle can
# form; untracked, their 200,000 allocations and frees per poll skip the collector's lists.
class _Device(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    device_id: _Str = None
    device_type: _Str = None
    device_model: _Str = None
    os: _Str = None
    app_version: _Str = None


class _Network(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    country: _Str = None
    region: _Str = None
    isp: _Str = None
    asn: _Int = None
    oca_id: _Str = None
    cdn_tier: _Str = None
    connection_type: _Str = None


class _Payload(msgspec.Struct, forbid_unknown_fields=True, gc=False):
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
    # Renamed into columns (`error_code`, `seek_from_ms`, ...) on every event type, as
    # `flatten_event` does: the exact path has no per-type renames.
    code: _Str = None
    category: _Str = None
    severity: _Str = None
    message: _Str = None
    from_ms: _Int = None
    to_ms: _Int = None


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
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
_RENAMED = {  # column → the payload field it is read from
    "error_code": "code",
    "error_category": "category",
    "error_severity": "severity",
    "error_message": "message",
    "seek_from_ms": "from_ms",
    "seek_to_ms": "to_ms",
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
    """Which struct holds column `name`: the event, its device, network or payload.

    The envelope first: `event_type` is also the payload's discriminator, which
    `flatten_event` skips (a payload's own `event_type` is never the column)."""
    if name in _Event.__struct_fields__:
        return "event"
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
    for column, field in _RENAMED.items():
        structure["payload"][field] = kinds[column]
        select.append(f't."payload"."{field}" AS "{column}"')
    for name in _ENRICHMENT:
        structure["event"][name] = kinds[name]
        select.append(f't."{name}" AS "{name}"')
    shape: dict[str, Any] = dict(structure.pop("event"))
    shape.update(structure)
    text = msgspec.json.encode(shape).decode().replace("'", "''")
    # `i` (the record's index) comes back with the columns: the order check.
    return (
        f"SELECT i, {', '.join(select)} FROM (SELECT i, json_transform(j, '{text}') AS t "
        "FROM batch)"
    )


_EXTRACT = _extract_sql()
_LOCAL = threading.local()  # one in-memory DuckDB per thread (a connection is not shared)
# DuckDB's extraction runs here while the calling thread decodes the same poll with msgspec:
# the two parses overlap (DuckDB releases the GIL), as the reference insert uses both cores.
_EXTRACTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-columns")


def _extract(batch: pa.Table) -> pa.Table:
    """The columns of `_EXTRACT`, in record order, read by DuckDB from `batch`'s column `j`
    (the records' bytes).

    DuckDB reads values; the msgspec structs decide whether they may be used."""
    con: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = duckdb.connect()
    con.register("batch", batch)
    try:
        return con.sql(_EXTRACT).to_arrow_table()
    finally:
        con.unregister("batch")


def _json_column(values: list[bytes]) -> pa.Table:
    """The records' bytes as one Arrow string column `j`, built from two buffers (their
    concatenation and offsets): a value-by-value conversion grew its buffer by reallocation
    and checked UTF-8, which msgspec checks anyway (invalid bytes make the poll decline).
    Column `i` numbers the records.

    The bytes are copied into this thread's reused buffer: a new 30 MB `b"".join` per poll
    paid a page fault per 4 KiB on first touch, twice the cost of the copy. The buffer is
    overwritten by the thread's next call only: `events_table` returns after DuckDB's read
    of it, and the table it returns holds none of it."""
    n = len(values)
    size = sum(map(len, values))
    data: bytearray | None = getattr(_LOCAL, "json_buffer", None)
    if data is None or len(data) < size:
        data = _LOCAL.json_buffer = bytearray(size)
    view = memoryview(data)
    offsets = array.array("q", bytes(8 * (n + 1)))
    end = 0
    for k, value in enumerate(values, 1):
        start, end = end, end + len(value)
        view[start:end] = value
        offsets[k] = end
    column = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(view[:end]))
    index = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array.array("q", range(n)))])
    return pa.table({"i": index, "j": column})


def events_table(records: Sequence[Record], ingested_at: str) -> pa.Table | None:
    """The `events` rows of `records` (all from the events topic), or None to decline."""
    values = [r.value or b"" for r in records]
    batch = _json_column(values)
    extracting = _EXTRACTOR.submit(_extract, batch)
    try:
        python = _checked_columns(values)
        python["source_partition"] = [r.partition for r in records]
        python["source_offset"] = [r.offset for r in records]
        arrays = {c.name: _array(python[c.name], c) for c in EVENT_COLUMNS if c.name in python}
        # One stamp for the poll: cast once, not once per row.
        stamp = pa.scalar(ingested_at, pa.string()).cast(_SCHEMA.field("ingested_at").type)
        arrays["ingested_at"] = pa.repeat(stamp, len(values))
        extracted = extracting.result()
        if not extracted["i"].combine_chunks().equals(batch["i"].combine_chunks()):
            # DuckDB keeps the scan's order (preserve_insertion_order); never trust it blindly.
            raise Declined("the extracted rows are not in record order")
        columns = [
            arrays[c.name] if c.name in arrays else _cast(extracted[c.name], c)
            for c in EVENT_COLUMNS
        ]
        lifted: _Lifted = python["lifted"]
        if lifted.rows:
            columns = lifted.over(columns)
    except (msgspec.DecodeError, Declined, pa.ArrowException, OverflowError, TypeError):
        return None
    except duckdb.Error:
        return None
    finally:
        # A declined poll still waits for its extraction: the next poll's must not queue
        # behind a stale one, and its error (if any) is not left unobserved.
        wait([extracting])
    return pa.Table.from_arrays(columns, schema=_SCHEMA)


# Records decoded at a time. A chunk's structs are freed before the next chunk's are made, so
# the allocator hands the same, cache-warm memory back: the structs of a whole 50,000-record
# poll at once (1.5 million objects) cost 2-3x the decode itself in page faults, cache misses
# and arenas returned to the OS (decode and free 3.8-4.1 -> 1.3-1.5 us/record).
_CHUNK = 256
_GET_ID = operator.attrgetter("event_id")
_GET_EXTRA = operator.attrgetter("extra")
_GET_JSON = {name: operator.attrgetter(name) for name in _JSON_COLUMNS}


def _checked_columns(values: list[bytes]) -> dict[str, Any]:
    """Decode every record with msgspec (which decides whether the poll takes this path) and
    build the columns only Python builds: the JSON texts and, under "lifted", the values
    `flatten_event` takes out of `extra`. Raises `msgspec.DecodeError` or `Declined`.

    The checks run on whole chunks (`in`, `list.count`: C loops); a per-event Python loop runs
    only for events that carry an `extra`.
    """
    decode = _DECODER.decode
    raw: dict[str, list[Any]] = {name: [] for name in _JSON_COLUMNS}
    to_json = _JsonTexts()
    lifted = _Lifted(to_json)
    for start in range(0, len(values), _CHUNK):
        # A comprehension, not `list(map(...))`: its bytecode lets the GIL go to the
        # extraction thread, which needs it to start its scan and to return its table.
        events = [decode(v) for v in values[start : start + _CHUNK]]
        if "" in map(_GET_ID, events):
            raise Declined("an event without event_id (the exact path dead-letters it)")
        for name, get in _GET_JSON.items():
            raw[name].extend(map(get, events))
        extras = list(map(_GET_EXTRA, events))
        if extras.count(None) != len(extras):
            lifted.take(start, events, extras)
    columns: dict[str, Any] = {name: _json_texts(raw[name], to_json) for name in raw}
    columns["extra"] = lifted.extra_column(len(values))
    columns["lifted"] = lifted
    return columns


class _JsonTexts:
    """`COERCE["json"]`, remembered for the poll by orjson's bytes of the value.

    The texts of `extra`, `dimensions` and the facts repeat across a poll (a few enrichments
    and dimension sets), and `json.dumps` cost ~3 us each. For what msgspec decodes (no NaN,
    no non-JSON types) orjson's bytes tell values apart exactly as JSON does (1, 1.0 and true
    differ; key order counts), so equal bytes mean an equal `COERCE["json"]` text; a value
    orjson refuses (an integer beyond 64 bits) is encoded without the memo."""

    def __init__(self) -> None:
        self._memo: dict[bytes, str | None] = {}

    def __call__(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return _TO_JSON(value)
        try:
            key = orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError included
            return _TO_JSON(value)
        if b"null" in key:
            # orjson writes NaN and infinities as null (msgspec never decodes them, but a
            # memo must not depend on that): no memo for a value with a null in it.
            return _TO_JSON(value)
        try:
            return self._memo[key]
        except KeyError:
            text = self._memo[key] = _TO_JSON(value)
            return text


_TO_JSON: Callable[[Any], str | None] = COERCE["json"]


def _json_texts(values: list[Any], to_json: _JsonTexts) -> list[str | None]:
    """`COERCE["json"]` of each value (a column of nulls without a per-value call)."""
    if values.count(None) == len(values):
        return [None] * len(values)
    return [to_json(v) for v in values]


class _Lifted:
    """`extra` and `genre`, `device_family`, `oca_site` of the events whose `extra` is not
    empty, where `flatten_event` lifts them out of it (absent at the top, present in `extra`).

    Elsewhere the extracted top-level values are these columns already (absent and null are
    both null there), and `extra` is null."""

    def __init__(self, to_json: _JsonTexts) -> None:
        self.to_json = to_json
        self.rows: list[int] = []
        self.values: dict[str, list[Any]] = {name: [] for name in (*_ENRICHMENT, "extra")}

    def take(self, start: int, events: list[_Event], extras: list[Any]) -> None:
        """Note the events of a chunk (its first record is number `start`) with an extra."""
        to_json = self.to_json
        for offset, (e, raw) in enumerate(zip(events, extras, strict=True)):
            if not raw:
                continue
            extra = dict(raw)
            for name in _ENRICHMENT:
                top = getattr(e, name)
                if top is _UNSET:
                    top = extra.pop(name, None)
                self.values[name].append(top)
            self.values["extra"].append(to_json(extra) if extra else None)
            self.rows.append(start + offset)

    def extra_column(self, n: int) -> list[str | None]:
        """The `extra` column's JSON texts."""
        column: list[str | None] = [None] * n
        for row, text in zip(self.rows, self.values["extra"], strict=True):
            column[row] = text
        return column

    def over(self, columns: list[pa.Array]) -> list[pa.Array]:
        """`columns` (in EVENT_COLUMNS order) with the lifted enrichment values put in."""
        chosen = [False] * len(columns[0])
        for row in self.rows:
            chosen[row] = True
        mask = pa.array(chosen, pa.bool_())
        out = list(columns)
        for index, column in enumerate(EVENT_COLUMNS):
            if column.name in _ENRICHMENT:
                lifted = _array(self.values[column.name], column)
                out[index] = pc.replace_with_mask(columns[index], mask, lifted)
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
