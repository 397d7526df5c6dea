"""`contract.fast_parse.parse_event_json` is `EVENT_ADAPTER.validate_json`, only cheaper.

Equal means: both reject with the same errors (so the same dead-letter reason and detail),
or both return events that are `==`, write the same bytes (`dump_event` and
`model_dump_json`) and carry the same fields set, extras and value types. Compared on every
event of stub runs of every scenario, on the collector's re-written form of them, on a
matrix of odd values in every field, on hand-picked edge cases and on hypothesis' mutations.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contract.events import EVENT_ADAPTER, Event
from contract.fast_parse import (
    active,
    fast_event,
    fast_event_python,
    parse_event_json,
    parse_event_python,
)
from platform_stub.generator import RunOptions, StubRun
from platform_stub.scenarios import SCENARIOS
from streams.validate import Rejected, dump_event, parse

EID = "6f1e7a52-3f0e-4d1c-9a3e-1b2c3d4e5f60"


def _models(m: BaseModel) -> list[BaseModel]:
    out = [m]
    for v in m.__dict__.values():
        if isinstance(v, BaseModel):
            out += _models(v)
    return out


def _same_event(a: Event, b: Event) -> None:
    assert a == b
    assert dump_event(a) == dump_event(b)
    assert a.model_dump_json() == b.model_dump_json()
    for x, y in zip(_models(a), _models(b), strict=True):
        assert type(x) is type(y)
        assert list(x.__dict__) == list(y.__dict__)  # field order: dump_event relies on it
        assert [type(v) for v in x.__dict__.values()] == [type(v) for v in y.__dict__.values()]
        assert x.__pydantic_fields_set__ == y.__pydantic_fields_set__
        assert x.__pydantic_extra__ == y.__pydantic_extra__
        assert x.__pydantic_private__ == y.__pydantic_private__
    for t, u in ((a.event_time, b.event_time), (a.received_at, b.received_at)):
        assert type(getattr(t, "tzinfo", None)) is type(getattr(u, "tzinfo", None))
        assert t is None or t.utcoffset() == u.utcoffset()  # type: ignore[union-attr]
    assert a.extra is not b.extra  # each parse owns its `extra` (enrich_parsed writes into it)


def _errors(exc: ValidationError) -> str:
    # repr: `ctx` may hold the ValueError itself and `input` a NaN, each equal only to itself.
    return repr(exc.errors())


def _compare(raw: bytes) -> str:
    """'fast', 'fallback' or 'rejected' after checking both ways agree on `raw`, as bytes
    (the worker) and as the parsed object, also stamped as the collector stamps it."""
    outcome = _compare_with(raw, EVENT_ADAPTER.validate_json, parse_event_json, fast_event)
    try:
        obj = json.loads(raw)
    except ValueError:
        return outcome
    _compare_with(obj, *_PYTHON)  # (json.loads takes what jiter may not: a BOM, NaN)
    if isinstance(obj, dict):
        obj.update(received_at=RECEIVED, clock_skew_clamped=False)
        _compare_with(obj, *_PYTHON)
    return outcome


RECEIVED = datetime(2026, 1, 1, 0, 0, 1, 5, tzinfo=UTC)
_PYTHON = (EVENT_ADAPTER.validate_python, parse_event_python, fast_event_python)


def _compare_with(
    value: Any,
    reference: Callable[[Any], Event],
    parse_event: Callable[[Any], Event],
    fast: Callable[[Any], Event | None],
) -> str:
    try:
        want: Event | ValidationError = reference(copy.deepcopy(value))
    except ValidationError as exc:
        want = exc
    try:
        got: Event | ValidationError = parse_event(copy.deepcopy(value))
    except ValidationError as exc:
        got = exc
    if isinstance(want, ValidationError):
        assert isinstance(got, ValidationError), value
        assert _errors(got) == _errors(want)
        assert str(got) == str(want)
        assert fast(copy.deepcopy(value)) is None
        return "rejected"
    assert isinstance(got, Event), (value, got)
    _same_event(got, want)
    taken = fast(copy.deepcopy(value))
    if taken is None:
        return "fallback"
    _same_event(taken, want)
    return "fast"


def _stub_lines(scenario: str, seed: int, n: int) -> list[bytes]:
    opts = RunOptions(
        seed=seed, members=300, rate=40, duration_s=900, scenario=scenario, max_events=n
    )
    return [line.encode() for b in StubRun(opts).batches() for line in b.lines]


def test_the_fast_path_is_in_use() -> None:
    # Off only if pydantic's core schema of Event changed shape (a pydantic upgrade).
    assert active()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_stub_event_of_every_scenario(scenario: str) -> None:
    lines = _stub_lines(scenario, seed=11, n=1_500)
    assert len(lines) >= 1_000
    outcomes = [_compare(raw) for raw in lines]
    # Stub events are valid, complete v1 events: all of them take the fast path.
    assert set(outcomes) == {"fast"}
    # As the collector writes them (v2 fields: received_at, derived facts...): fast too.
    rewritten = [EVENT_ADAPTER.dump_json(EVENT_ADAPTER.validate_json(r)) for r in lines[:300]]
    assert {_compare(raw) for raw in rewritten} == {"fast"}


def test_parse_gives_the_same_rejections_as_before() -> None:
    # streams.validate.parse derives reason and detail from the ValidationError; both ways.
    bad = [
        b"{",
        b"[]",
        b'{"event_id": "x"}',
        _doc_bytes(event_type="teleport"),
        _doc_bytes(payload={"event_type": "pause"}),
        _doc_bytes(event_time="2026-01-01T00:00:00"),
        _doc_bytes(schema_version=1),
    ]
    for raw in bad:
        got = parse(raw)
        assert isinstance(got, Rejected)
        try:
            EVENT_ADAPTER.validate_json(raw)
        except ValidationError as exc:
            assert exc.errors(include_url=False, include_input=False)[0]["msg"] in got.detail
        else:
            raise AssertionError(raw)


# --- a valid v2 event and its mutations -------------------------------------------------


def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": EID,
        "event_type": "heartbeat",
        "schema_version": 2,
        "event_time": "2026-01-01T00:00:00.123456Z",
        "received_at": "2026-01-01T00:00:01Z",
        "member_id": "m-1",
        "profile_id": "p-1",
        "session_id": "s-é",
        "title_id": "80001286",
        "device": {"device_id": "d", "device_type": "tv", "os": "Tizen"},
        "network": {"country": "NL", "asn": 1136, "cdn_tier": "edge"},
        "payload": {
            "event_type": "heartbeat",
            "bitrate_kbps": 3000,
            "buffer_ms": None,
            "throughput_kbps": 9000,
            "playing": True,
        },
        "clock_skew_clamped": False,
        "derived_facts": ["network.isp"],
        "unknown_facts": [],
        "dimensions": {"experiment": "e1"},
        "extra": {"a": [1, {"b": None}]},
    }
    doc.update(over)
    return doc


def _doc_bytes(**over: Any) -> bytes:
    return json.dumps(_doc(**over), ensure_ascii=False).encode()


ODD_VALUES: list[Any] = [
    True,
    False,
    0,
    1,
    2,
    -1,
    1.0,
    1.5,
    -0.0,
    1e20,
    2**64,
    -(2**63) - 1,
    10**30,
    "1",
    " 1",
    "1_0",
    "0x10",
    "true",
    "yes",
    "off",
    "",
    "x" * 129,
    "é" * 64,
    "\u2028\x00",
    None,
    [],
    {},
    ["a"],
    {"a": "b"},
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00Z",
    "2026-01-01 00:00:00+01:00",
    1_700_000_000,
    1_700_000_000.5,
    "1700000000",
    EID.upper(),
    EID.replace("-", ""),
    "{" + EID + "}",
    "urn:uuid:" + EID,
    "heartbeat",
    "pause",
    "tv",
    "edge",
    "NL",
    "nan",
]

FIELD_PATHS: list[tuple[str, ...]] = [
    *((k,) for k in _doc() if k != "payload"),
    *(("payload", k) for k in ("event_type", "bitrate_kbps", "buffer_ms", "playing", "x")),
    *(("device", k) for k in ("device_id", "device_type", "device_model", "x")),
    *(("network", k) for k in ("country", "asn", "cdn_tier", "connection_type")),
    ("dimensions", "experiment"),
    ("dimensions", ""),
    ("extra", "n"),
    ("unknown_field",),
]


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return doc


@pytest.mark.parametrize("path", FIELD_PATHS, ids=".".join)
def test_an_odd_value_in_every_field(path: tuple[str, ...]) -> None:
    outcomes = [_compare(json.dumps(_set(_doc(), path, v)).encode()) for v in ODD_VALUES]
    assert "rejected" in outcomes or path[0] in ("extra", "unknown_field")


DATETIMES = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.1Z",
    "2026-01-01T00:00:00.123Z",
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00-00:00",
    "2026-01-01T02:00:00+02:00",
    "2026-01-01T00:00:00+05:30",
    "2026-01-01T00:00:00+23:59",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00z",
    "2026-01-01t00:00:00Z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T24:00:00Z",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-01-01T00:00:00",
    "2026-01-01",
    "١٩٧٠-01-01T00:00:00Z",
    1_700_000_000,
    1_700_000_000_000,
    -1,
    "1700000000",
]


@pytest.mark.parametrize("field", ["event_time", "received_at"])
def test_datetime_spellings(field: str) -> None:
    outcomes = {t: _compare(_doc_bytes(**{field: t})) for t in DATETIMES}
    assert outcomes["2026-01-01T00:00:00.123Z"] == "fast"
    assert outcomes["2026-02-29T00:00:00Z"] == "rejected"
    if field == "event_time":
        assert outcomes["2026-01-01T00:00:00"] == "rejected"  # naive: the after-validator


def test_what_the_before_step_would_change_is_left_to_pydantic() -> None:
    v1 = _doc(schema_version=1, network={**_doc()["network"], "region": "r", "isp": "i"})
    v1["network"]["oca_id"] = "o"
    v1["device"] = {k: "x" for k in ("device_id", "device_model", "os", "app_version")}
    v1["device"]["device_type"] = "tv"
    cases = {
        # unknown fields are kept in `extra` (merged with a given one)
        "unknown": (_doc_bytes(player_build="42"), "fallback"),
        "unknown+extra": (_doc_bytes(player_build=4, extra={"k": 1}), "fallback"),
        "unknown, bad extra": (_doc_bytes(player_build=4, extra=5), "rejected"),
        # a payload without its tag gets the envelope's
        "untagged payload": (
            _doc_bytes(payload={"bitrate_kbps": None, "buffer_ms": 1, "throughput_kbps": None}),
            "fallback",
        ),
        "mismatched payload": (_doc_bytes(event_type="pause"), "rejected"),
        # v1 keeps its rules
        "v1 complete": (json.dumps(v1).encode(), "fast"),
        "v1 without isp": (
            _set_bytes(v1, ("network",), {**v1["network"], "isp": None}),
            "rejected",
        ),
        "v1 missing isp": (json.dumps(_without(v1, "network", "isp")).encode(), "rejected"),
        "v1 missing title": (json.dumps(_without(v1, "title_id")).encode(), "rejected"),
        "v1 as 1.0": (
            json.dumps({**_without(v1, "title_id"), "schema_version": 1.0}).encode(),
            "rejected",
        ),
        "v1 as true": (json.dumps({**v1, "schema_version": True}).encode(), "fast"),
        "v1 as '1'": (
            json.dumps({**_without(v1, "title_id"), "schema_version": "1"}).encode(),
            "fallback",
        ),
        "v3": (_doc_bytes(schema_version=3), "rejected"),
        "empty v2": (
            json.dumps(
                {
                    k: _doc()[k]
                    for k in ("event_id", "event_type", "event_time", "session_id", "payload")
                }
            ).encode(),
            "fast",
        ),
    }
    for name, (raw, want) in cases.items():
        assert _compare(raw) == want, name


def _without(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    d = doc
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]
    return doc


def _set_bytes(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> bytes:
    return json.dumps(_set(doc, path, value)).encode()


RAW_CASES = [
    b"",
    b"null",
    b"5",
    b'"event"',
    b"{}",
    b"\xef\xbb\xbf" + _doc_bytes(),
    b"  " + _doc_bytes() + b"\n",
    _doc_bytes() + b"x",
    _doc_bytes()[:-1],
    _doc_bytes().replace(b'"m-1"', b'"\\ud800"'),
    _doc_bytes().replace(b'"m-1"', b'"\xff"'),
    _doc_bytes().replace(b"3000", b"NaN"),
    _doc_bytes().replace(b"9000", b"1e400"),
    _doc_bytes().replace(b"1136", b"1136.0"),
    _doc_bytes().replace(b"1136", b"99999999999999999999999999"),
    _doc_bytes().replace(b'[1, {"b": null}]', b"123456789012345678901234567890"),
    # duplicate keys: the last one wins, in both ways (small and large objects)
    _doc_bytes().replace(b'"member_id": "m-1"', b'"member_id": "m-0", "member_id": "m-1"'),
    _doc_bytes().replace(b'"session_id": "s-\xc3\xa9"', b'"session_id": "", "session_id": "s"'),
    _doc_bytes().replace(b'"bitrate_kbps": 3000', b'"bitrate_kbps": -1, "bitrate_kbps": 3'),
    _doc_bytes().replace(
        b'"event_type": "heartbeat"', b'"event_type": "x", "event_type": "heartbeat"', 1
    ),
]


@pytest.mark.parametrize("raw", RAW_CASES)
def test_raw_edge_cases(raw: bytes) -> None:
    _compare(raw)


def test_the_common_valid_event_takes_the_fast_path() -> None:
    assert _compare(_doc_bytes()) == "fast"
    assert _compare(_doc_bytes(extra={}, dimensions={})) == "fast"
    a, b = parse_event_json(_doc_bytes()), parse_event_json(_doc_bytes())
    assert a.extra is not b.extra and a.device is not b.device


# --- hypothesis: random mutations of a valid event -----------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=140),
    st.sampled_from([v for v in ODD_VALUES if isinstance(v, (str, int))] + DATETIMES),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat()),
    st.uuids().map(str),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
_paths = st.sampled_from(
    [*FIELD_PATHS, *(("payload", k) for k in ("throughput_kbps", "dropped_frames", "position_ms"))]
)


PAYLOADS: dict[str, dict[str, Any]] = {
    "pause": {"position_ms": 5},
    "first_frame": {"startup_ms": 1, "bitrate_kbps": None},
    "seek": {"from_ms": None, "to_ms": 7},
    "bogus": {},
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sets=st.lists(st.tuples(_paths, _json), max_size=3),
    drops=st.lists(_paths, max_size=2),
    event_type=st.sampled_from(["heartbeat", "pause", "first_frame", "seek", "bogus"]),
    version=st.sampled_from([1, 2, 2, 2]),
)
def test_mutated_events(
    sets: list[tuple[tuple[str, ...], Any]],
    drops: list[tuple[str, ...]],
    event_type: str,
    version: int,
) -> None:
    doc = _doc(schema_version=version)
    if event_type in PAYLOADS:
        doc["event_type"] = event_type
        doc["payload"] = {"event_type": event_type, **PAYLOADS[event_type]}
    for path, value in sets:
        with contextlib.suppress(KeyError, TypeError):  # an earlier mutation removed the path
            doc = _set(doc, path, value)
    for path in drops:
        with contextlib.suppress(KeyError, TypeError):
            doc = _without(doc, *path)
    _compare(json.dumps(doc, ensure_ascii=False).encode())


# Values of the right kind, sometimes just past a bound, so that both ways accept most of
# these events and the events they build are compared (the mutations above are mostly
# rejected).
def _sized(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(min_size=lo, max_size=hi) | st.sampled_from(["x" * lo, "ü" * hi])


_id = _sized(1, 128)
_small = st.integers(min_value=0, max_value=200_000) | st.sampled_from(
    [0, 200_000, 200_000, 200_001, 4_294_967_295, 4_294_967_296, 2**64, -1]
)
_when = st.datetimes(
    min_value=datetime(1950, 1, 1),  # before, many zones' offsets have seconds (rejected)
    max_value=datetime(2100, 1, 1),
    timezones=st.timezones() | st.sampled_from([None]),
    allow_imaginary=False,
).map(lambda t: t.isoformat().replace("+00:00", "Z"))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    member_id=_id,
    device=st.fixed_dictionaries(
        {},
        optional={
            "device_id": _id,
            "os": _sized(0, 128),
            "device_type": st.sampled_from(["tv", "web", "unknown", "TV"]),
        },
    ),
    network=st.fixed_dictionaries(
        {}, optional={"country": _sized(2, 7), "asn": _small, "isp": _sized(0, 128)}
    ),
    payload=st.fixed_dictionaries(
        {
            "bitrate_kbps": st.none() | _small,
            "buffer_ms": st.none() | _small,
            "throughput_kbps": st.none() | _small,
        },
        optional={
            "dropped_frames": _small,
            "playing": st.none() | st.booleans(),
        },
    ),
    event_time=_when,
    received_at=st.none() | _when,
    event_id=st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()),
    dimensions=st.dictionaries(_sized(1, 64), _sized(0, 256), max_size=10),
    facts=st.lists(st.text(max_size=20), max_size=32),
    extra=st.dictionaries(st.text(max_size=5), _json, max_size=3),
)
def test_valid_looking_events(
    member_id: str,
    device: dict[str, Any],
    network: dict[str, Any],
    payload: dict[str, Any],
    event_time: str,
    received_at: str | None,
    event_id: str,
    dimensions: dict[str, str],
    facts: list[str],
    extra: dict[str, Any],
) -> None:
    doc = _doc(
        member_id=member_id,
        device=device,
        network=network,
        payload={"event_type": "heartbeat", **payload},
        event_time=event_time,
        received_at=received_at,
        event_id=event_id,
        dimensions=dimensions,
        unknown_facts=facts,
        extra=extra,
    )
    _compare(json.dumps(doc, ensure_ascii=False).encode())


def test_an_untagged_payload_takes_the_fast_path_as_an_object() -> None:
    # The collector validates what clients send, often without the payload's own tag.
    raw = _doc_bytes(payload={"bitrate_kbps": 1, "buffer_ms": None, "throughput_kbps": None})
    obj = json.loads(raw)
    assert _compare_with(obj, *_PYTHON) == "fast"
    assert "event_type" not in obj["payload"]  # the caller's object is left as it was
    assert parse_event_python(obj).payload.model_fields_set >= {"event_type"}
    for wrong in ({**obj, "event_type": "pause"}, {**obj, "event_type": 5}):
        assert _compare_with(wrong, *_PYTHON) == "rejected"
