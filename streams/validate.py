"""Parsing raw telemetry bytes into events, with a reason for every rejection."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from contract.deadletter import INVALID_JSON, SCHEMA_INVALID, UNKNOWN_EVENT_TYPE
from contract.events import EVENT_ADAPTER, Event


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
        return EVENT_ADAPTER.validate_json(value)
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
