"""Unit tests of batch validation: formats, positions, limits, clamping, extra fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract import deadletter as reasons
from contract.events import EVENT_ADAPTER, EVENT_TYPES
from ingest.validation import (
    CLOCK_SKEW_ORIGINAL_KEY,
    BatchError,
    BatchResult,
    IngestLimits,
    validate_batch,
)
from testkit.sample_events import sample_event, sample_events

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LIMITS = IngestLimits(
    max_event_bytes=4096,
    max_batch_bytes=256 * 1024,
    max_batch_events=50,
    allowed_clock_skew=timedelta(minutes=10),
)


def ok(body: bytes, limits: IngestLimits = LIMITS) -> BatchResult:
    result = validate_batch(body, limits, NOW)
    assert isinstance(result, BatchResult), result
    return result


def err(body: bytes, limits: IngestLimits = LIMITS) -> BatchError:
    result = validate_batch(body, limits, NOW)
    assert isinstance(result, BatchError), result
    return result


def array(events: list[Any]) -> bytes:
    return json.dumps(events).encode()


def ndjson(events: list[Any]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events) + b"\n"


def event_at(when: datetime, **kw: Any) -> dict[str, Any]:
    return sample_event("heartbeat", event_time=when, **kw)


# --- formats ---------------------------------------------------------------------------------


def test_every_event_type_is_accepted_in_an_array() -> None:
    events = [sample_event(t, event_time=NOW) for t in EVENT_TYPES]
    result = ok(array(events))
    assert result.format == "json_array"
    assert [a.event.event_type for a in result.accepted] == list(EVENT_TYPES)
    assert result.rejected == []


def test_bad_events_in_the_middle_are_rejected_by_index_and_the_rest_accepted() -> None:
    events: list[Any] = sample_events(6)
    events[1] = {"event_type": "heartbeat"}
    events[3] = "just a string"
    events[4] = {**sample_event(), "event_type": "warp_drive"}
    result = ok(array(events))
    assert [a.index for a in result.accepted] == [0, 2, 5]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (1, reasons.SCHEMA_INVALID),
        (3, reasons.NOT_AN_OBJECT),
        (4, reasons.UNKNOWN_EVENT_TYPE),
    ]
    # The dead letter keeps the element's exact bytes from the body.
    assert json.loads(result.rejected[1].original) == "just a string"
    assert result.rejected[2].event_id == events[4]["event_id"]


def test_array_element_bytes_are_exact_even_with_odd_spacing_and_unicode() -> None:
    bad = '{ "event_type" : "pause" , "note": "ünïcödé ✓" }'
    body = f"[\n  {bad}\t,\n{json.dumps(sample_event())}  ]  \n".encode()
    result = ok(body)
    assert result.rejected[0].original == bad.encode()
    assert len(result.accepted) == 1


def test_ndjson_is_detected_and_blank_lines_do_not_count() -> None:
    events = sample_events(3)
    body = (
        json.dumps(events[0]).encode()
        + b"\r\n\r\n"
        + json.dumps(events[1]).encode()
        + b"\n   \n"
        + b"{broken\n"
        + json.dumps(events[2]).encode()
    )
    result = ok(body)
    assert result.format == "ndjson"
    assert [a.index for a in result.accepted] == [0, 1, 3]
    (rej,) = result.rejected
    assert rej.index == 2 and rej.reason == reasons.INVALID_JSON
    assert rej.position is not None and rej.position.line == 5 and rej.position.column == 2
    assert "line 5 column 2" in rej.detail
    assert rej.original == b"{broken"


def test_a_single_pretty_printed_object_is_a_batch_of_one() -> None:
    result = ok(json.dumps(sample_event(), indent=2).encode())
    assert result.format == "json_object"
    assert len(result.accepted) == 1


def test_utf8_bom_is_ignored() -> None:
    assert len(ok(b"\xef\xbb\xbf" + array(sample_events(2))).accepted) == 2


# --- whole-body errors and where parsing failed -------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\n\r\n", b"[]", b"[ \n ]"])
def test_empty_bodies_are_batch_errors(body: bytes) -> None:
    assert err(body).reason == reasons.EMPTY_BODY


def test_truncated_array_reports_line_column_and_char() -> None:
    body = b'[\n  {"a": 1},\n  {"b": '
    e = err(body)
    assert e.reason == reasons.INVALID_JSON
    assert e.position is not None
    assert (e.position.line, e.position.column, e.position.char) == (3, 9, len(body))
    assert "line 3 column 9" in e.detail


def test_missing_comma_between_elements_is_located() -> None:
    e = err(b'[{"a":1} {"b":2}]')
    assert e.reason == reasons.INVALID_JSON and e.position is not None
    assert (e.position.line, e.position.column, e.position.char) == (1, 10, 9)


def test_trailing_garbage_after_array_is_an_error() -> None:
    e = err(array(sample_events(1)) + b" xyz")
    assert e.reason == reasons.INVALID_JSON and "extra data" in e.detail


def test_plain_text_is_not_json_nor_ndjson() -> None:
    e = err(b"hello world")
    assert e.reason == reasons.INVALID_JSON
    assert e.position is not None and (e.position.line, e.position.column) == (1, 1)


def test_broken_multiline_object_is_located_in_characters() -> None:
    body = '{\n  "ä": 1,\n  "b": nope\n}'.encode()
    e = err(body)
    assert e.reason == reasons.INVALID_JSON and e.position is not None
    # jiter stops inside the bad token ("expected ident" after the n of nope).
    assert e.position.line == 3 and e.position.column in (8, 9)
    text = body.decode()
    assert text[e.position.char] in "nope"
    assert text.splitlines()[2][e.position.column - 1] in "nope"


def test_invalid_utf8_in_an_array_is_located_by_byte() -> None:
    body = b'[\n{"a": "\xff"}]'
    e = err(body)
    assert e.reason == reasons.INVALID_UTF8 and e.position is not None
    assert (e.position.line, e.position.column, e.position.char) == (2, 8, 9)


def test_invalid_utf8_line_in_ndjson_rejects_only_that_line() -> None:
    events = sample_events(2)
    body = (
        json.dumps(events[0]).encode() + b'\n{"x": "\xc3\x28"}\n' + json.dumps(events[1]).encode()
    )
    result = ok(body)
    assert len(result.accepted) == 2
    (rej,) = result.rejected
    assert rej.reason == reasons.INVALID_UTF8 and rej.index == 1
    assert rej.original == b'{"x": "\xc3\x28"}'


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(constant: bytes) -> None:
    assert err(b'[{"a": ' + constant + b"}]").reason == reasons.INVALID_JSON
    result = ok(ndjson(sample_events(1)) + b'{"a": ' + constant + b"}\n")
    assert [r.reason for r in result.rejected] == [reasons.INVALID_JSON]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert err(b"[" * 100_000 + b"]" * 100_000).reason in (
        reasons.NESTING_TOO_DEEP,
        reasons.INVALID_JSON,
    )
    deep_line = b'{"a":' * 5000 + b"1" + b"}" * 5000
    result = ok(ndjson(sample_events(1)) + deep_line)
    assert [r.reason for r in result.rejected] == [reasons.EVENT_TOO_LARGE]
    small_deep = b'{"a":' * 300 + b"1" + b"}" * 300
    result = ok(ndjson(sample_events(1)) + small_deep)
    assert [r.reason for r in result.rejected] == [reasons.INVALID_JSON]


# --- limits ------------------------------------------------------------------------------------


def test_event_over_the_size_limit_is_rejected_alone() -> None:
    big = sample_event(note="x" * LIMITS.max_event_bytes)
    for body in (array([sample_event(), big]), ndjson([sample_event(), big])):
        result = ok(body)
        assert len(result.accepted) == 1
        assert [(r.index, r.reason) for r in result.rejected] == [(1, reasons.EVENT_TOO_LARGE)]


def test_too_many_events_is_a_batch_error() -> None:
    events = sample_events(LIMITS.max_batch_events + 1)
    assert err(array(events)).reason == reasons.TOO_MANY_EVENTS
    assert err(ndjson(events)).reason == reasons.TOO_MANY_EVENTS
    assert len(ok(array(events[:-1])).accepted) == LIMITS.max_batch_events


def test_body_over_the_limit_is_a_batch_error() -> None:
    assert err(b" " * (LIMITS.max_batch_bytes + 1)).reason == reasons.BODY_TOO_LARGE


# --- schema reasons ----------------------------------------------------------------------------


def test_schema_version_from_the_future_has_its_own_reason() -> None:
    (rej,) = ok(array([sample_event(schema_version=99)])).rejected
    assert rej.reason == reasons.UNSUPPORTED_SCHEMA_VERSION


def test_payload_that_disagrees_with_the_envelope_type_is_schema_invalid() -> None:
    event = sample_event("pause")
    event["payload"] = {"event_type": "resume", "paused_ms": 3}
    (rej,) = ok(array([event])).rejected
    assert rej.reason == reasons.SCHEMA_INVALID


def test_schema_detail_names_the_field() -> None:
    event = sample_event("first_frame")
    event["payload"]["startup_ms"] = -5
    (rej,) = ok(array([event])).rejected
    assert rej.reason == reasons.SCHEMA_INVALID
    assert "payload.first_frame.startup_ms" in rej.detail


def test_naive_event_time_is_rejected() -> None:
    event = sample_event(event_time=NOW)
    event["event_time"] = "2026-03-01T12:00:00"
    (rej,) = ok(array([event])).rejected
    assert rej.reason == reasons.SCHEMA_INVALID and "timezone" in rej.detail


# --- stamping, clamping, extra fields, serialization ---------------------------------------------


def test_received_at_is_stamped_and_overrides_the_client() -> None:
    event = event_at(NOW, received_at="1999-01-01T00:00:00Z")
    (acc,) = ok(array([event])).accepted
    assert acc.event.received_at == NOW
    assert acc.event.clock_skew_clamped is False


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(days=3), NOW + LIMITS.allowed_clock_skew),
        (-timedelta(days=3), NOW - LIMITS.allowed_clock_skew),
    ],
)
def test_event_time_outside_the_skew_is_clamped_and_flagged(
    offset: timedelta, expected: datetime
) -> None:
    client_time = NOW + offset
    (acc,) = ok(array([event_at(client_time)])).accepted
    assert acc.event.event_time == expected
    assert acc.event.clock_skew_clamped is True
    assert datetime.fromisoformat(acc.event.extra[CLOCK_SKEW_ORIGINAL_KEY]) == client_time


def test_event_time_inside_the_skew_is_untouched_and_client_flag_is_reset() -> None:
    client_time = NOW - timedelta(minutes=9)
    (acc,) = ok(array([event_at(client_time, clock_skew_clamped=True)])).accepted
    assert acc.event.event_time == client_time
    assert acc.event.clock_skew_clamped is False


def test_event_time_exactly_at_the_edge_is_not_clamped() -> None:
    edge = NOW + LIMITS.allowed_clock_skew
    (acc,) = ok(array([event_at(edge)])).accepted
    assert acc.event.event_time == edge and not acc.event.clock_skew_clamped


def test_other_timezones_are_compared_as_instants() -> None:
    tz = datetime.fromisoformat("2026-03-01T14:05:00+02:00")  # 12:05 UTC, inside the skew
    event = event_at(NOW)
    event["event_time"] = tz.isoformat()
    (acc,) = ok(array([event])).accepted
    assert acc.event.event_time == tz and not acc.event.clock_skew_clamped


def test_unknown_fields_are_kept_in_extra_and_serialized() -> None:
    event = event_at(NOW, player_build="2026.02.1", ab_test={"cell": 3})
    event["extra"] = {"already": True}
    (acc,) = ok(array([event])).accepted
    assert acc.event.extra == {"already": True, "player_build": "2026.02.1", "ab_test": {"cell": 3}}
    assert json.loads(acc.value)["extra"]["ab_test"] == {"cell": 3}


def test_non_object_extra_is_rejected_not_raised() -> None:
    event = sample_event(surprise=1)
    event["extra"] = [1, 2]
    (rej,) = ok(array([event])).rejected
    assert rej.reason == reasons.SCHEMA_INVALID


def test_accepted_value_round_trips_and_key_is_the_session() -> None:
    event = sample_event("error", session_id="s-abc")
    (acc,) = ok(array([event])).accepted
    assert acc.key == b"s-abc"
    assert EVENT_ADAPTER.validate_json(acc.value) == acc.event


def test_payload_without_its_own_type_tag_takes_the_envelope_type() -> None:
    event = sample_event("seek")
    assert "event_type" not in event["payload"]
    (acc,) = ok(array([event])).accepted
    assert acc.event.payload.event_type == "seek"


def test_lone_surrogate_is_rejected_not_raised() -> None:
    # Python's JSON parser accepts "\ud800"; it cannot be encoded as UTF-8 for Kafka.
    event = json.dumps(sample_event(note="x")).replace('"note": "x"', '"note": "\\ud800"')
    result = ok(f"[{event}]".encode())
    assert [r.reason for r in result.rejected] == [reasons.UNPROCESSABLE]
    result = ok(event.encode() + b"\n" + ndjson(sample_events(1)))
    assert [r.reason for r in result.rejected] == [reasons.INVALID_JSON]


def test_limits_come_from_settings() -> None:
    from streamwatch.settings import Settings

    s = Settings(max_event_bytes=1000, max_batch_bytes=2000, max_batch_events=3)
    limits = IngestLimits.from_settings(s)
    assert (limits.max_event_bytes, limits.max_batch_bytes, limits.max_batch_events) == (
        1000,
        2000,
        3,
    )
    assert limits.allowed_clock_skew == timedelta(seconds=s.allowed_clock_skew_s)
