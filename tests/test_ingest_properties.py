"""Properties of the event contract and of batch validation (hypothesis, pure, no server).

- every event model round-trips through JSON, alone and through the validator;
- arbitrary junk (wrong types, missing fields, huge strings, NaN, deep nesting, invalid
  UTF-8) only ever produces a validation result, never an exception;
- every element of a batch is answered exactly once: accepted or rejected, by index.
"""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import annotated_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from contract.deadletter import BATCH_REASONS, EVENT_REASONS
from contract.events import EVENT_ADAPTER, EVENT_TYPES, PAYLOAD_MODELS, Device, Event, Network
from ingest.validation import BatchError, BatchResult, IngestLimits, validate_batch
from testkit.sample_events import sample_event

RECEIVED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = IngestLimits(
    max_event_bytes=16 * 1024,
    max_batch_bytes=512 * 1024,
    max_batch_events=40,
    allowed_clock_skew=timedelta(hours=1),
)
# No deadline: wall-clock limits make property tests flaky on a busy machine.
PROPS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- strategies derived from the models, so a new field or event type is covered at once ------


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            out["min_value"] = m.ge
        elif isinstance(m, annotated_types.Le):
            out["max_value"] = m.le
        elif isinstance(m, annotated_types.MinLen):
            out["min_size"] = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            out["max_size"] = m.max_length
    return out


def _strategy_for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        # Field(...) inside Annotated carries its constraints in its own metadata.
        flat = [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
        return _strategy_for(base, [*metadata, *flat])
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy_for(a, metadata) for a in typing.get_args(annotation)))
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        b = _bounds(metadata)
        return st.integers(b.get("min_value", -(2**40)), b.get("max_value", 2**40))
    if annotation is str:
        b = _bounds(metadata)
        return st.text(min_size=b.get("min_size", 0), max_size=min(b.get("max_size", 64), 64))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_dicts(annotation)
    raise NotImplementedError(f"no strategy for {annotation!r}")


def model_dicts(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid python-mode dicts for `model`, with optional fields sometimes left out."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        strategy = _strategy_for(info.annotation, list(info.metadata))
        (required if info.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ids = st.text(min_size=1, max_size=40)


@st.composite
def events(draw: st.DrawFn, event_type: str | None = None) -> Event:
    etype = event_type or draw(st.sampled_from(EVENT_TYPES))
    payload = draw(model_dicts(PAYLOAD_MODELS[etype]))
    payload["event_type"] = etype
    data = {
        "event_id": draw(st.uuids()),
        "event_type": etype,
        "event_time": draw(aware_datetimes),
        "received_at": draw(st.none() | aware_datetimes),
        "member_id": draw(ids),
        "profile_id": draw(ids),
        "session_id": draw(ids),
        "title_id": draw(ids),
        "device": draw(model_dicts(Device)),
        "network": draw(model_dicts(Network)),
        "payload": payload,
        "clock_skew_clamped": draw(st.booleans()),
        "extra": draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4)),
    }
    return EVENT_ADAPTER.validate_python(data)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


# --- round trips ---------------------------------------------------------------------------------


@PROPS
@given(events())
def test_every_event_round_trips_through_json(event: Event) -> None:
    assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event
    assert Event.model_validate_json(event.model_dump_json()) == event


@PROPS
@given(st.sampled_from(EVENT_TYPES).flatmap(lambda t: events(t)))
def test_every_event_type_round_trips_through_the_validator(event: Event) -> None:
    body = EVENT_ADAPTER.dump_json(event)
    result = validate_batch(b"[" + body + b"]", LIMITS, RECEIVED_AT)
    assert isinstance(result, BatchResult), result
    assert result.rejected == [], result.rejected
    (accepted,) = result.accepted
    assert accepted.event.event_id == event.event_id
    assert accepted.event.payload == event.payload
    assert accepted.event.received_at == RECEIVED_AT
    assert EVENT_ADAPTER.validate_json(accepted.value) == accepted.event
    skew = abs(accepted.event.event_time - RECEIVED_AT)
    assert skew <= LIMITS.allowed_clock_skew
    assert accepted.event.clock_skew_clamped == (event.event_time != accepted.event.event_time)


# --- junk never raises ---------------------------------------------------------------------------


def _assert_is_a_result(body: bytes, outcome: object) -> None:
    assert isinstance(outcome, BatchResult | BatchError)
    if isinstance(outcome, BatchError):
        assert outcome.reason in (*BATCH_REASONS, "unprocessable"), outcome
        return
    indices = sorted([a.index for a in outcome.accepted] + [r.index for r in outcome.rejected])
    assert indices == list(range(len(indices))), "each event is answered exactly once"
    for rejection in outcome.rejected:
        assert rejection.reason in EVENT_REASONS
        assert isinstance(rejection.original, bytes)
        assert rejection.detail


@PROPS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    _assert_is_a_result(body, validate_batch(body, LIMITS, RECEIVED_AT))


@PROPS
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    for body in (json.dumps(value).encode(), json.dumps([value, value]).encode()):
        _assert_is_a_result(body, validate_batch(body, LIMITS, RECEIVED_AT))


junk_values = st.one_of(
    json_values,
    st.text(min_size=5000, max_size=20_000),  # huge strings
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(min_value=2**64, max_value=2**200),
    # Deep nesting is spliced in as raw bytes by _dumps (Python itself cannot build it).
    st.integers(min_value=1, max_value=3000).map(lambda d: f"__deep_{d}__"),
)
_DEEP = re.compile(rb'"__deep_(\d+)__"')


@st.composite
def broken_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with fields (top-level or nested) replaced by junk or removed."""
    event = sample_event(draw(st.sampled_from(EVENT_TYPES)))
    for _ in range(draw(st.integers(1, 3))):
        target = event
        if draw(st.booleans()):
            nested = draw(st.sampled_from(["device", "network", "payload"]))
            if isinstance(event.get(nested), dict):
                target = event[nested]
        keys = sorted(target) or ["x"]
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(junk_values)
    return event


def _dumps(value: Any) -> bytes:
    raw = json.dumps(value, allow_nan=True).encode()
    return _DEEP.sub(lambda m: b"[" * int(m.group(1)) + b"]" * int(m.group(1)), raw)


@PROPS
@given(st.lists(broken_events() | st.builds(sample_event), min_size=1, max_size=8), st.booleans())
def test_broken_events_never_raise_and_are_answered_by_index(
    batch: list[dict[str, Any]], as_ndjson: bool
) -> None:
    parts = [_dumps(e) for e in batch]
    body = b"\n".join(parts) if as_ndjson else b"[" + b",".join(parts) + b"]"
    outcome = validate_batch(body, LIMITS, RECEIVED_AT)
    _assert_is_a_result(body, outcome)


@PROPS
@given(
    st.lists(st.builds(sample_event), min_size=1, max_size=6),
    st.binary(min_size=1, max_size=20),
    st.integers(min_value=0),
)
def test_invalid_utf8_inside_an_event_never_raises(
    batch: list[dict[str, Any]], junk: bytes, where: int
) -> None:
    body = b"\n".join(json.dumps(e).encode() for e in batch)
    cut = where % (len(body) + 1)
    body = body[:cut] + b"\xff\xfe" + junk + body[cut:]
    outcome = validate_batch(body, LIMITS, RECEIVED_AT)
    _assert_is_a_result(body, outcome)
    array_body = b"[" + body.replace(b"\n", b",") + b"]"
    _assert_is_a_result(array_body, validate_batch(array_body, LIMITS, RECEIVED_AT))


@PROPS
@given(st.lists(st.booleans(), min_size=1, max_size=20), st.booleans())
def test_exactly_the_bad_elements_are_rejected(pattern: list[bool], as_ndjson: bool) -> None:
    batch: list[Any] = [
        sample_event(event_time=RECEIVED_AT) if good else {"event_type": "heartbeat"}
        for good in pattern
    ]
    parts = [json.dumps(e).encode() for e in batch]
    body = b"\n".join(parts) if as_ndjson else b"[" + b",".join(parts) + b"]"
    outcome = validate_batch(body, LIMITS, RECEIVED_AT)
    assert isinstance(outcome, BatchResult)
    assert [a.index for a in outcome.accepted] == [i for i, good in enumerate(pattern) if good]
    assert [r.index for r in outcome.rejected] == [i for i, good in enumerate(pattern) if not good]
    assert [r.original for r in outcome.rejected] == [
        parts[i] for i, good in enumerate(pattern) if not good
    ]
