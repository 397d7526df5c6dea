"""Turning a request body into accepted events and rejections: pure functions, no I/O.

A body is either a JSON array of events or NDJSON (one event per line); the format is detected
from the bytes, not trusted from the Content-Type. Each event is checked on its own, so one bad
event never sinks its batch: the result lists accepted events (stamped, clamped and already
serialized for Kafka) and rejections with the event's index, a machine-readable reason, a human
detail and the original bytes for the dead-letter topic.

`validate_batch` never raises on any input: a body that cannot be split into events at all is
returned as a `BatchError` (with the line/column where parsing failed), everything else as a
`BatchResult`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import pydantic_core
from pydantic import ValidationError

from contract.deadletter import (
    BODY_TOO_LARGE,
    EMPTY_BODY,
    EVENT_TOO_LARGE,
    INVALID_JSON,
    INVALID_UTF8,
    NESTING_TOO_DEEP,
    NOT_AN_OBJECT,
    SCHEMA_INVALID,
    TOO_MANY_EVENTS,
    UNKNOWN_EVENT_TYPE,
    UNSUPPORTED_SCHEMA_VERSION,
)
from contract.deadletter import (
    UNPROCESSABLE as UNPROCESSABLE,  # streams/app.py (s2-worker) imports it from here
)
from contract.events import EVENT_ADAPTER, SCHEMA_VERSION, Event
from contract.fast_parse import parse_event_python
from streamwatch.settings import Settings

BodyFormat = Literal["json_array", "json_object", "ndjson"]

_DETAIL_MAX_CHARS = 500
_WS = re.compile(r"[ \t\n\r]*")
_JITER_POSITION = re.compile(r" at line (\d+) column (\d+)$")
_UTF8_BOM = b"\xef\xbb\xbf"
CLOCK_SKEW_ORIGINAL_KEY: Final = "clock_skew_original_event_time"


@dataclass(frozen=True)
class IngestLimits:
    """The hard limits of the event contract, as the validator applies them."""

    max_event_bytes: int
    max_batch_bytes: int
    max_batch_events: int
    allowed_clock_skew: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        """The limits configured in `Settings`."""
        return cls(
            max_event_bytes=settings.max_event_bytes,
            max_batch_bytes=settings.max_batch_bytes,
            max_batch_events=settings.max_batch_events,
            allowed_clock_skew=timedelta(seconds=settings.allowed_clock_skew_s),
        )


@dataclass(frozen=True)
class Position:
    """Where parsing failed: 1-based line and column, 0-based character offset in the body."""

    line: int
    column: int
    char: int

    def describe(self) -> str:
        return f"line {self.line} column {self.column} (char {self.char})"


@dataclass(frozen=True)
class AcceptedEvent:
    """A valid event, stamped and clamped, with its Kafka key and value ready to send."""

    index: int
    event: Event
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Rejection:
    """One event that was refused, with everything the dead-letter record needs."""

    index: int
    reason: str
    detail: str
    original: bytes
    event_id: str | None = None
    position: Position | None = None


@dataclass(frozen=True)
class BatchResult:
    """A body that could be split into events: what was accepted and what was rejected."""

    format: BodyFormat
    accepted: list[AcceptedEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.accepted) + len(self.rejected)


@dataclass(frozen=True)
class BatchError:
    """A body that could not be split into events at all (answered 400/413 as a whole)."""

    reason: str
    detail: str
    position: Position | None = None


BatchOutcome = BatchResult | BatchError
# Fills in a parsed event object before validation (the collector's enrichment).
Prepare = Callable[[dict[str, Any]], None]


# --- the entry point -------------------------------------------------------------------


def validate_batch(
    body: bytes, limits: IngestLimits, received_at: datetime, prepare: Prepare | None = None
) -> BatchOutcome:
    """Split `body` into events and validate each; never raises.

    `received_at` (timezone-aware) is stamped on every accepted event and is the reference
    for clock-skew clamping. `prepare` (the collector's enrichment) may fill in each parsed
    event object before it is validated.
    """
    try:
        return _validate_batch(body, limits, received_at, prepare)
    except Exception as exc:  # the contract is "results, never exceptions"
        # Only reachable through a bug here or in a library; answering it as a batch error
        # keeps the collector up and tells the client something precise enough to report.
        return BatchError(UNPROCESSABLE, f"body could not be processed: {type(exc).__name__}")


def _validate_batch(
    body: bytes, limits: IngestLimits, received_at: datetime, prepare: Prepare | None
) -> BatchOutcome:
    if len(body) > limits.max_batch_bytes:
        return BatchError(
            BODY_TOO_LARGE, f"body is {len(body)} bytes; the limit is {limits.max_batch_bytes}"
        )
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
    stripped = body.lstrip(b" \t\r\n")
    if not stripped:
        return BatchError(EMPTY_BODY, "the body is empty; send a JSON array or NDJSON of events")
    if stripped[:1] == b"[":
        return _validate_array(body, limits, received_at, prepare)
    if stripped[:1] == b"{":
        single = _parse_as_one_document(body)
        if isinstance(single, BatchError):
            return single
        if single is not None:
            return _check_count(
                BatchResult(
                    "json_object",
                    *_split_results([_Piece(0, body, single)], limits, received_at, prepare),
                ),
                limits,
            )
    return _validate_ndjson(body, limits, received_at, prepare)


def _check_count(result: BatchResult, limits: IngestLimits) -> BatchOutcome:
    if result.total > limits.max_batch_events:
        return BatchError(
            TOO_MANY_EVENTS,
            f"batch holds {result.total} events; the limit is {limits.max_batch_events}",
        )
    if result.total == 0:
        return BatchError(EMPTY_BODY, "the batch holds no events")
    return result


# --- splitting the body into (index, original bytes, parsed object | failure) ------------


@dataclass(frozen=True)
class _Piece:
    """One event's bytes and what parsing them gave."""

    index: int
    original: bytes
    obj: Any = None
    failure: Rejection | None = None


def _parse_as_one_document(body: bytes) -> dict[str, Any] | BatchError | None:
    """A single (possibly pretty-printed) JSON object is a batch of one.

    Returns the object, or a `BatchError` for a multi-line JSON document that breaks after its
    first line (it is not NDJSON either), or None to go on and read the body as NDJSON.
    """
    try:
        obj = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        message, line, byte_column = _split_jiter_message(str(exc))
        if line <= 1 or _first_line_is_json(body):
            return None
        pos = _position_of_line_byte(body, line, byte_column)
        return BatchError(INVALID_JSON, f"invalid JSON at {pos.describe()}: {message}", pos)
    return obj if isinstance(obj, dict) else None


def _first_line_is_json(body: bytes) -> bool:
    first = body.lstrip(b" \t\r\n").split(b"\n", 1)[0]
    try:
        pydantic_core.from_json(first, allow_inf_nan=False)
    except ValueError:
        return False
    return True


def _validate_array(
    body: bytes, limits: IngestLimits, received_at: datetime, prepare: Prepare | None
) -> BatchOutcome:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = _position_of_byte(body, exc.start)
        return BatchError(
            INVALID_UTF8, f"body is not valid UTF-8 at {pos.describe()}: {exc.reason}", pos
        )
    split = _split_array(text, limits.max_batch_events)
    if isinstance(split, BatchError):
        return split
    pieces = [_Piece(i, original, obj) for i, (original, obj) in enumerate(split)]
    return _check_count(
        BatchResult("json_array", *_split_results(pieces, limits, received_at, prepare)), limits
    )


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser would accept them silently.
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _split_array(text: str, max_events: int) -> list[tuple[bytes, Any]] | BatchError:
    """The top-level elements of a JSON array with each element's exact original bytes."""
    items: list[tuple[bytes, Any]] = []
    idx = _skip_ws(text, 0)
    idx += 1  # the '[' the caller saw
    idx = _skip_ws(text, idx)
    if idx < len(text) and text[idx] == "]":
        idx += 1
    else:
        while True:
            if len(items) > max_events:
                # Stop early: a batch over the count limit is refused as a whole anyway.
                return BatchError(
                    TOO_MANY_EVENTS,
                    f"batch holds more than {max_events} events; the limit is {max_events}",
                )
            try:
                obj, end = _DECODER.raw_decode(text, idx)
            except json.JSONDecodeError as exc:
                pos = Position(exc.lineno, exc.colno, exc.pos)
                return BatchError(INVALID_JSON, f"invalid JSON at {pos.describe()}: {exc.msg}", pos)
            except ValueError as exc:  # NaN / Infinity from _reject_constant
                pos = _position_of_char(text, idx)
                return BatchError(
                    INVALID_JSON, f"invalid JSON in the element at {pos.describe()}: {exc}", pos
                )
            except RecursionError:
                pos = _position_of_char(text, idx)
                return BatchError(
                    NESTING_TOO_DEEP, f"the element at {pos.describe()} is nested too deeply", pos
                )
            items.append((text[idx:end].encode("utf-8", "surrogatepass"), obj))
            idx = _skip_ws(text, end)
            if idx < len(text) and text[idx] == ",":
                idx = _skip_ws(text, idx + 1)
                continue
            if idx < len(text) and text[idx] == "]":
                idx += 1
                break
            pos = _position_of_char(text, idx)
            what = "end of body" if idx >= len(text) else repr(text[idx])
            return BatchError(
                INVALID_JSON,
                f"invalid JSON at {pos.describe()}: expected ',' or ']', got {what}",
                pos,
            )
    idx = _skip_ws(text, idx)
    if idx < len(text):
        pos = _position_of_char(text, idx)
        return BatchError(
            INVALID_JSON, f"invalid JSON at {pos.describe()}: extra data after the array", pos
        )
    return items


def _validate_ndjson(
    body: bytes, limits: IngestLimits, received_at: datetime, prepare: Prepare | None
) -> BatchOutcome:
    pieces: list[_Piece] = []
    chars_before = 0  # characters before the current line, for exact error positions
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        line_chars = len(line.decode("utf-8", "replace")) + 1
        content = line[:-1] if line.endswith(b"\r") else line
        if content.strip(b" \t\r"):
            if len(pieces) >= limits.max_batch_events:
                return BatchError(
                    TOO_MANY_EVENTS,
                    f"batch holds more than {limits.max_batch_events} events; "
                    f"the limit is {limits.max_batch_events}",
                )
            pieces.append(_parse_line(len(pieces), line_no, chars_before, content, limits))
        # blank lines separate nothing and count as no event
        chars_before += line_chars
    failures = [p.failure for p in pieces if p.failure is not None]
    if (
        pieces
        and len(failures) == len(pieces)
        and all(f.reason in (INVALID_JSON, INVALID_UTF8) for f in failures)
    ):
        # Not one line is JSON: the body is not NDJSON at all, so say where it first broke.
        first = failures[0]
        return BatchError(
            first.reason, f"body is neither a JSON array nor NDJSON: {first.detail}", first.position
        )
    return _check_count(
        BatchResult("ndjson", *_split_results(pieces, limits, received_at, prepare)), limits
    )


def _parse_line(
    index: int, line_no: int, chars_before: int, line: bytes, limits: IngestLimits
) -> _Piece:
    if len(line) > limits.max_event_bytes:
        return _Piece(index, line, failure=_too_large(index, line, limits))
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(line[: exc.start].decode("utf-8", "replace")) + 1
        pos = Position(line_no, column, chars_before + column - 1)
        detail = f"not valid UTF-8 at {pos.describe()}: {exc.reason}"
        return _Piece(index, line, failure=Rejection(index, INVALID_UTF8, detail, line, None, pos))
    try:
        obj = pydantic_core.from_json(line, allow_inf_nan=False)
    except ValueError as exc:
        message, _, byte_column = _split_jiter_message(str(exc))
        # jiter counts columns in bytes; people and editors count characters.
        column = len(line[: byte_column - 1].decode("utf-8", "replace")) + 1
        pos = Position(line_no, column, chars_before + column - 1)
        detail = f"invalid JSON at {pos.describe()}: {message}"
        return _Piece(index, line, failure=Rejection(index, INVALID_JSON, detail, line, None, pos))
    return _Piece(index, line, obj)


# --- checking one event ------------------------------------------------------------------


def _split_results(
    pieces: list[_Piece], limits: IngestLimits, received_at: datetime, prepare: Prepare | None
) -> tuple[list[AcceptedEvent], list[Rejection]]:
    accepted: list[AcceptedEvent] = []
    rejected: list[Rejection] = []
    for piece in pieces:
        outcome = piece.failure or validate_object(
            piece.index, piece.original, piece.obj, limits, received_at, prepare
        )
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            accepted.append(outcome)
    return accepted, rejected


def validate_object(
    index: int,
    original: bytes,
    obj: Any,
    limits: IngestLimits,
    received_at: datetime,
    prepare: Prepare | None = None,
) -> AcceptedEvent | Rejection:
    """Validate one parsed event object (`original`: its bytes, for the dead letter)."""
    if len(original) > limits.max_event_bytes:
        return _too_large(index, original, limits)
    if not isinstance(obj, dict):
        return Rejection(
            index, NOT_AN_OBJECT, f"an event must be a JSON object, got {_json_kind(obj)}", original
        )
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    if prepare is not None:
        prepare(obj)
    # Stamping in the input (our own freshly parsed dict) is much cheaper than copying the
    # validated model; only events whose clock is off are copied again, by stamp_and_clamp.
    obj["received_at"] = received_at
    obj["clock_skew_clamped"] = False
    try:
        event = parse_event_python(obj)
    except ValidationError as exc:
        reason, detail = _describe_validation_error(exc)
        return Rejection(index, reason, detail, original, event_id)
    try:
        event = stamp_and_clamp(event, received_at, limits.allowed_clock_skew)
        value = EVENT_ADAPTER.dump_json(event)
    except Exception as exc:  # e.g. a lone surrogate that cannot be UTF-8
        return Rejection(
            index,
            UNPROCESSABLE,
            f"event cannot be serialized: {_short(str(exc))}",
            original,
            event_id,
        )
    return AcceptedEvent(index, event, event.session_id.encode("utf-8"), value)


def stamp_and_clamp(event: Event, received_at: datetime, allowed_skew: timedelta) -> Event:
    """Stamp `received_at` and clamp `event_time` into received_at +/- `allowed_skew`.

    A client clock that is off is a fact about the client, not a reason to lose its events:
    the event is kept, its time moved to the nearest allowed instant, `clock_skew_clamped` set
    and the client's original time kept in `extra` for forensics.
    """
    earliest, latest = received_at - allowed_skew, received_at + allowed_skew
    clamped_to: datetime | None = None
    if event.event_time > latest:
        clamped_to = latest
    elif event.event_time < earliest:
        clamped_to = earliest
    # The flag is the collector's to set: a client-sent value is overwritten either way.
    update: dict[str, Any] = {"received_at": received_at, "clock_skew_clamped": False}
    if clamped_to is not None:
        update["event_time"] = clamped_to
        update["clock_skew_clamped"] = True
        update["extra"] = {**event.extra, CLOCK_SKEW_ORIGINAL_KEY: event.event_time.isoformat()}
    elif event.received_at == received_at and not event.clock_skew_clamped:
        return event  # already stamped (the validator does it in the input): no copy
    return event.model_copy(update=update)


def _too_large(index: int, original: bytes, limits: IngestLimits) -> Rejection:
    return Rejection(
        index,
        EVENT_TOO_LARGE,
        f"event is {len(original)} bytes; the limit is {limits.max_event_bytes}",
        original,
    )


def _describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """A reason code and a short human summary of a pydantic validation error."""
    errors = exc.errors(include_url=False, include_input=False)
    reason = SCHEMA_INVALID
    for err in errors:
        loc = err["loc"]
        if loc == ("event_type",) and err["type"] == "literal_error":
            reason = UNKNOWN_EVENT_TYPE
            break
        if loc == ("schema_version",) and err["type"] in ("less_than_equal", "greater_than_equal"):
            reason = UNSUPPORTED_SCHEMA_VERSION
            break
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    if reason == UNSUPPORTED_SCHEMA_VERSION:
        parts.insert(0, f"this collector accepts schema_version up to {SCHEMA_VERSION}")
    return reason, _short("; ".join(parts) + more)


# --- small helpers -----------------------------------------------------------------------


def _skip_ws(text: str, idx: int) -> int:
    match = _WS.match(text, idx)
    return match.end() if match else idx


def _position_of_char(text: str, idx: int) -> Position:
    line = text.count("\n", 0, idx) + 1
    column = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return Position(line, column, idx)


def _position_of_byte(body: bytes, offset: int) -> Position:
    # For invalid UTF-8 the byte offset is the only exact position; columns count bytes.
    line = body.count(b"\n", 0, offset) + 1
    column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    return Position(line, column, offset)


def _split_jiter_message(message: str) -> tuple[str, int, int]:
    """jiter says '... at line L column C' (C in bytes): the message, L and C."""
    match = _JITER_POSITION.search(message)
    if not match:
        return message, 1, 1
    return message[: match.start()], int(match.group(1)), max(int(match.group(2)), 1)


def _position_of_line_byte(body: bytes, line: int, byte_column: int) -> Position:
    """Turn jiter's (line, byte column) into a character position in `body`."""
    line_start = 0
    for _ in range(line - 1):
        nl = body.find(b"\n", line_start)
        if nl < 0:
            break
        line_start = nl + 1
    before_line = len(body[:line_start].decode("utf-8", "replace"))
    column = len(body[line_start : line_start + byte_column - 1].decode("utf-8", "replace")) + 1
    return Position(line, column, before_line + column - 1)


def _json_kind(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return type(obj).__name__


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 3] + "..."
