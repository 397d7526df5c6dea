"""A fast path for the common event: the very `Event` `EVENT_ADAPTER` builds, at half the cost.

`EVENT_ADAPTER.validate_json` was the largest single cost of the stream worker (issue 10).
About half of it is `Event._move_unknown_fields_to_extra`, and not for its own work: a
model `mode="before"` validator makes pydantic turn the whole JSON document into Python
objects, call the function, then validate those objects, instead of validating the JSON
directly. For most events that validator changes nothing: no unknown fields, a payload that
carries its own `event_type`, schema version 2 (or a v1 event that sends every v1 fact).

So the fast path is pydantic's own validator of `Event` with that one step left out (the
same core schema otherwise: every field, constraint, default, the discriminated payload and
the after-validator), and it keeps an event only when the left-out step would have been a
no-op, which the result shows:

- no unknown fields: `Event` allows extra fields, so here they would land in
  `__pydantic_extra__` instead of `extra`;
- schema version 1 only with every v1 fact among the fields set (`_require_v1_facts`);
- a payload without its tag fails the discriminator here (for a parsed object, the
  collector's case, the tag is supplied first, exactly as the step does).

Everything else, including every invalid event, is validated again by `EVENT_ADAPTER`, so
what is rejected and the error details are exactly today's. The obvious alternative, orjson
plus a hand-checked construction of the four models, measured no cheaper than pydantic
(13.1 against 12.0 us per stub event): in Python, building and checking them costs what
pydantic's Rust does. `tests/test_contract_fast_parse.py` compares both ways on stub runs
and a corpus of mutated events; `benchmarks/bench_logic.py --codecs` times them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

from contract.events import (
    EVENT_ADAPTER,
    V1_REQUIRED_DEVICE,
    V1_REQUIRED_NETWORK,
    V1_REQUIRED_TOP,
    Event,
)

_V1_TOP = frozenset(V1_REQUIRED_TOP)
_V1_DEVICE = frozenset(V1_REQUIRED_DEVICE)
_V1_NETWORK = frozenset(V1_REQUIRED_NETWORK)


def _without_before_step() -> SchemaValidator | None:
    """`Event`'s validator without `_move_unknown_fields_to_extra`; None if the core schema
    is not the shape this knows (another pydantic): then every event goes to pydantic."""
    after: Any = Event.__pydantic_core_schema__
    model: Any = after.get("schema") if after.get("type") == "function-after" else None
    before: Any = model.get("schema") if model and model.get("type") == "model" else None
    if not before or before.get("type") != "function-before":
        return None
    func: Any = before.get("function", {}).get("function")
    ours = getattr(Event._move_unknown_fields_to_extra, "__func__", None)
    if ours is None or getattr(func, "__func__", None) is not ours:
        return None
    return SchemaValidator({**after, "schema": {**model, "schema": before["schema"]}})


_FAST = _without_before_step()

# The tzinfo pydantic's validator gives every UTC time it parses: one shared object, which
# lets the hot paths recognise a parsed UTC time by identity (`streams.sessionizer.to_ms`,
# `streams.validate.dump_event`).
PARSED_UTC = TypeAdapter(datetime).validate_json(b'"2000-01-01T00:00:00Z"').tzinfo


def fast_event(value: bytes | str) -> Event | None:
    """The `Event` `EVENT_ADAPTER.validate_json(value)` returns, when this path is sure of it.

    None: not sure (invalid, or the left-out step would have changed something); it says
    nothing about validity. Never raises on bad input.
    """
    if _FAST is None:
        return None
    try:
        event: Event = _FAST.validate_json(value)
    except ValidationError:
        return None
    return event if _step_was_a_no_op(event) else None


def fast_event_python(obj: Any) -> Event | None:
    """`fast_event` for a parsed object: what `EVENT_ADAPTER.validate_python(obj)` returns.

    A payload without its tag gets the envelope's first, as the left-out step does (many
    clients leave it out; the raw topic's events, written by the collector, all carry it).
    """
    if _FAST is None:
        return None
    if isinstance(obj, dict):
        payload, event_type = obj.get("payload"), obj.get("event_type")
        if (
            isinstance(payload, dict)
            and "event_type" not in payload
            and isinstance(event_type, str)
        ):
            obj = {**obj, "payload": {**payload, "event_type": event_type}}
    try:
        event: Event = _FAST.validate_python(obj)
    except ValidationError:
        return None
    return event if _step_was_a_no_op(event) else None


def _step_was_a_no_op(event: Event) -> bool:
    """Whether `_move_unknown_fields_to_extra` would have left this event's input as it was
    (a payload without its tag failed already: the discriminator found none)."""
    if event.__pydantic_extra__:
        return False  # unknown fields: the full path moves them into `extra`
    # A v1 event without every v1 fact: the full path rejects it.
    return event.schema_version != 1 or (
        event.__pydantic_fields_set__ >= _V1_TOP
        and event.device.__pydantic_fields_set__ >= _V1_DEVICE
        and event.network.__pydantic_fields_set__ >= _V1_NETWORK
    )


def parse_event_json(value: bytes | str) -> Event:
    """`EVENT_ADAPTER.validate_json(value)`, about twice as fast for the common event.

    Same event, same `ValidationError` (pydantic's full validation decides whatever the
    fast path is not sure of).
    """
    event = fast_event(value)
    return EVENT_ADAPTER.validate_json(value) if event is None else event


def parse_event_python(obj: Any) -> Event:
    """`EVENT_ADAPTER.validate_python(obj)`, cheaper for the common event (the collector's
    path: it validates objects it parsed and stamped). Same event, same `ValidationError`."""
    event = fast_event_python(obj)
    return EVENT_ADAPTER.validate_python(obj) if event is None else event


def active() -> bool:
    """Whether the fast path is in use (False if pydantic's schema changed shape)."""
    return _FAST is not None
