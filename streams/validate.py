"""Parsing raw telemetry bytes into events, with a reason for every rejection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from pydantic import ValidationError

from contract.deadletter import INVALID_JSON, SCHEMA_INVALID, UNKNOWN_EVENT_TYPE
from contract.events import Event
from contract.fast_parse import PARSED_UTC, parse_event_json


@dataclass(frozen=True)
class Rejected:
    """Why a raw message is not an event."""

    reason: str
    detail: str
    event_id: str | None = None


def parse(value: bytes | None) -> Event | Rejected:
    """The event in `value`, or why it is not one (never raises on bad input)."""
    if not value:
        return Rejected(INVALID_JSON, "empty message")
    try:
        return parse_event_json(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        reason = SCHEMA_INVALID
        if any(e["type"] == "json_invalid" for e in errors):
            reason = INVALID_JSON
        elif any(e["loc"] == ("event_type",) and e["type"] == "literal_error" for e in errors):
            reason = UNKNOWN_EVENT_TYPE
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in errors[:5]
        )
        return Rejected(reason, detail[:1000], _event_id_of(value))


def _event_id_of(value: bytes) -> str | None:
    # Best effort, so a dead letter can be traced back to its event.
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    eid = doc.get("event_id") if isinstance(doc, dict) else None
    return str(eid)[:128] if eid is not None else None


_MINUTE = timedelta(minutes=1)


def dump_event(event: Event) -> bytes:
    """The event's JSON, byte for byte `event.model_dump_json().encode()`.

    What the validate step forwards to telemetry.events.v1, per event: orjson over the
    models' own field dicts (a model's `__dict__` holds its fields in their order) costs a
    fraction of pydantic's serializer, which infers the type of every `Any` in `extra`.
    orjson writes these values as pydantic does (compact, non-ASCII as UTF-8, `Z` for UTC,
    UUIDs as their hyphenated hex); anything it would write otherwise (extra fields kept
    on the model itself, an offset with seconds, an int beyond 64 bits, a value of another
    type) is written by pydantic. `tests/test_streams_event_json.py` compares the two.
    """
    if event.__pydantic_extra__ or not _plain_time(event.event_time):
        return event.model_dump_json().encode()
    received = event.received_at
    if received is not None and not _plain_time(received):
        return event.model_dump_json().encode()
    doc = event.__dict__.copy()
    doc["device"] = event.device.__dict__
    doc["network"] = event.network.__dict__
    doc["payload"] = event.payload.__dict__
    try:
        return orjson.dumps(doc, option=orjson.OPT_UTC_Z)
    except TypeError:  # orjson.JSONEncodeError is one
        return event.model_dump_json().encode()


def _plain_time(t: datetime) -> bool:
    """A time orjson writes as pydantic does: its UTC offset, if any, in whole minutes."""
    if t.tzinfo is PARSED_UTC:
        return True  # nearly every event: pydantic gives every parsed UTC time this one
    offset = t.utcoffset()
    return offset is None or not offset % _MINUTE
