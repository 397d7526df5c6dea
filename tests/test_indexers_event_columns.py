"""The warehouse's column decode of events gives exactly the exact path's table, or declines."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.columns import COERCE
from contract.tables import EVENT_COLUMNS
from indexers.arrow_rows import rows_to_table
from indexers.decode import Decoded, Decoder
from indexers.event_columns import _JsonTexts, events_table
from indexers.sink_loop import Record
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.event_json import events

STAMP = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).isoformat()


def _records(objs: list[Any]) -> list[Record]:
    out: list[Record] = []
    for i, obj in enumerate(objs):
        value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        out.append(ConsumerRecord(topics.EVENTS, i % 3, i, 0, 0, None, value, None, 0, 0, []))
    return out


def _exact(records: list[Record]) -> pa.Table:
    decoder = Decoder(Settings())
    rows = []
    for record in records:
        decoded = decoder.decode(record, STAMP)
        assert isinstance(decoded, Decoded)
        rows.append(decoded.row)
    table, bad = rows_to_table(rows, EVENT_COLUMNS)
    assert not bad
    return table


def _assert_same_as_exact(objs: list[Any]) -> None:
    records = _records(objs)
    fast = events_table(records, STAMP)
    assert fast is not None, "well-typed events take the column decode"
    exact = _exact(records)
    assert fast.schema.equals(exact.schema)
    for column in EVENT_COLUMNS:
        assert fast[column.name].equals(exact[column.name]), column.name


def _worker_shaped(n: int) -> list[dict[str, Any]]:
    """Events as the stream worker forwards them: v2 facts, dimensions, enrichment in extra."""
    out = []
    for i, event in enumerate(events(n, seed=5)):
        event = copy.deepcopy(event)
        event["clock_skew_clamped"] = i % 7 == 0
        event["derived_facts"] = ["network.isp", "network.asn"] if i % 2 else []
        event["unknown_facts"] = []
        event["dimensions"] = {"experiment": "b"} if i % 5 == 0 else {}
        event["extra"] = {
            "enrichment": {"genre": "drama", "oca_site": "oca-x", "device_family": "tv_os"}
        }
        if i % 4 == 0:
            event["extra"]["genre"] = "comedy"  # lifted into the genre column
        if i % 8 == 0:
            event["genre"] = None  # present at the top: not lifted, stays in extra
        out.append(event)
    return out


@pytest.mark.parametrize("shape", ["sample", "worker"])
def test_column_decode_equals_the_exact_path(shape: str) -> None:
    objs = list(events(600, seed=4)) if shape == "sample" else _worker_shaped(600)
    records = _records(objs)
    fast = events_table(records, STAMP)
    assert fast is not None, "the usual shapes must take the column decode"
    exact = _exact(records)
    assert fast.schema.equals(exact.schema)
    for column in EVENT_COLUMNS:
        assert fast[column.name].equals(exact[column.name]), column.name
    # Every event type and the renamed payload fields were exercised.
    assert {"error", "heartbeat", "first_frame"} <= set(fast["event_type"].to_pylist())
    assert fast["error_code"].null_count < fast.num_rows


def _one_error() -> dict[str, Any]:
    return next(e for e in events(200, seed=6) if e["event_type"] == "error")


def _one_heartbeat() -> dict[str, Any]:
    return next(e for e in events(200, seed=6) if e["event_type"] == "heartbeat")


def _edit(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    target = obj
    for key in parents:
        target = target[key]
    target[leaf] = value
    return obj


DECLINED = {
    "unknown top-level field": _edit(_one_heartbeat(), "newer_field", 1),
    "unknown payload field": _edit(_one_heartbeat(), "payload.codec", "av1"),
    "null device": _edit(_one_heartbeat(), "device", None),
    "int32 overflow": _edit(_one_heartbeat(), "payload.buffer_ms", 2**40),
    "int64 overflow": _edit(_one_heartbeat(), "network.asn", 2**70),
    "float in an int column": _edit(_one_heartbeat(), "payload.buffer_ms", 1.5),
    "number as text": _edit(_one_heartbeat(), "network.asn", "7922"),
    "empty event_id": _edit(_one_error(), "event_id", ""),
    "epoch-ms event_time": _edit(_one_error(), "event_time", 1_764_400_000_000),
    "non-text genre in extra": _edit(_one_error(), "extra", {"genre": 7}),
    "not JSON": b"{not json",
    "not UTF-8": json.dumps(_one_heartbeat()).encode().replace(b'"m-', b'"\xff-', 1),
}


def _without(base: dict[str, Any], path: str) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    target = obj
    for key in parents:
        target = target[key]
    del target[leaf]
    return obj


# Odd but well-typed events the column decode takes: its rows must be the exact path's.
TAKEN = {
    # `flatten_event` renames payload fields into their columns on every event type.
    "error code on a heartbeat": _edit(_one_heartbeat(), "payload.code", "X-1"),
    "seek field on a heartbeat": _edit(_one_heartbeat(), "payload.from_ms", 5),
    "null renamed field on a heartbeat": _edit(_one_heartbeat(), "payload.message", None),
    # The event_type column is the envelope's; the payload's discriminator is not stored.
    "payload without event_type": _without(_one_heartbeat(), "payload.event_type"),
    "payload event_type differs": _edit(_one_heartbeat(), "payload.event_type", "pause"),
    "no envelope event_type": _without(_one_error(), "event_type"),
    "no device": _without(_one_heartbeat(), "device"),
}


@pytest.mark.parametrize("case", sorted(TAKEN))
def test_odd_events_taken_give_the_exact_rows(case: str) -> None:
    _assert_same_as_exact([_one_heartbeat(), TAKEN[case], _one_error()])


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_what_only_the_exact_path_decides_is_declined(case: str) -> None:
    records = _records([_one_heartbeat(), DECLINED[case]])
    assert events_table(records, STAMP) is None


def test_a_large_poll_keeps_record_order() -> None:
    """DuckDB reads a large poll with several threads; rows must stay in record order."""
    objs = list(events(30_000, seed=8))
    table = events_table(_records(objs), STAMP)
    assert table is not None, "a large poll of usual events must take the column decode"
    assert table["event_id"].to_pylist() == [o["event_id"] for o in objs]
    assert table["source_offset"].to_pylist() == list(range(len(objs)))


def test_extra_on_a_few_events_across_decode_chunks_gives_the_exact_rows() -> None:
    """The decode runs in chunks of a few hundred records: values lifted out of `extra` on
    some events of some chunks land on their own rows; the rest keep their top-level ones."""
    objs = copy.deepcopy(list(events(1000, seed=9)))
    for i in (3, 255, 256, 257, 700, 999):
        objs[i]["extra"] = {"genre": f"g-{i}", "oca_site": f"site-{i}", "note": i}
    objs[256]["genre"] = None  # present at the top: not lifted, stays in extra
    objs[257]["device_family"] = "tv_os"  # at the top, and nothing to lift for it
    objs[500]["extra"] = {}  # empty: nothing lifted, extra null
    objs[5]["genre"] = "drama"  # at the top, without an extra
    _assert_same_as_exact(objs)
    fast = events_table(_records(objs), STAMP)
    assert fast is not None
    assert fast["genre"][999].as_py() == "g-999"
    assert fast["genre"][5].as_py() == "drama"
    assert fast["genre"][256].as_py() is None


@pytest.mark.parametrize(
    ("index", "path", "value"),
    [(555, "payload.codec", "av1"), (400, "extra", {"genre": 7}), (999, "event_id", "")],
)
def test_a_bad_event_in_a_later_decode_chunk_declines(index: int, path: str, value: Any) -> None:
    objs = list(events(1000, seed=9))
    objs[index] = _edit(objs[index], path, value)
    assert events_table(_records(objs), STAMP) is None


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON_VALUES, min_size=1, max_size=6))
def test_remembered_json_texts_are_coerce_json(values: list[Any]) -> None:
    """Within one memo, every value's text is `COERCE["json"]`'s, whatever came before."""
    to_json = _JsonTexts()
    for value in [*values, *values]:
        assert to_json(value) == COERCE["json"](value)


def test_remembered_json_texts_tell_apart_what_json_tells_apart() -> None:
    to_json = _JsonTexts()
    for value in (
        {"a": 1},
        {"a": 1.0},
        {"a": True},
        {"a": "1"},
        {"b": 1, "a": 2},
        {"a": 2, "b": 1},
        {"a": "\x7f"},
        {"a": "é"},
        {"a": 2**70},
        {"a": float("inf")},
        {"a": None},
        {},
        [],
        ["x", "y"],
    ):
        assert to_json(value) == COERCE["json"](value), value


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(_JSON_VALUES)
def test_a_json_columns_text_is_json_dumps_compact(value: Any) -> None:
    # The encoder is built once; its text must stay what json.dumps wrote per call.
    expected = None if value is None or value == {} else value
    if expected is not None and not isinstance(expected, str):
        expected = json.dumps(value, separators=(",", ":"), default=str)
    assert COERCE["json"](value) == expected
