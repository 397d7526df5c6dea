"""Pure parts of the indexers: no servers."""

from __future__ import annotations

import random
from datetime import date

import pytest

from contract.events import Event
from contract.tables import EVENT_COLUMNS, TABLE_BY_NAME
from indexers import naming
from indexers.arrow_rows import rows_to_table
from indexers.documents import document_id, flatten_event
from indexers.retry import RetryPolicy
from indexers.search_backend import BulkOp, parse_bulk_response, retry_read
from indexers.search_mappings import index_templates, mapping
from indexers.search_setup import expired_indices
from streamwatch.settings import Settings
from testkit.event_json import events


def test_retry_policy_grows_to_its_ceiling_and_never_gives_up() -> None:
    policy = RetryPolicy(initial_s=0.1, max_s=2.0, multiplier=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert not policy.gives_up(10_000)
    jittered = RetryPolicy(initial_s=1.0, jitter=0.2)
    rng = random.Random(1)
    assert all(0.8 <= jittered.delay(0, rng) <= 1.2 for _ in range(100))
    assert RetryPolicy(max_attempts=3).gives_up(3)


class _Http(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _status(exc: Exception) -> int | None:
    return exc.status if isinstance(exc, _Http) else None


def test_reads_retry_503_until_the_shard_starts() -> None:
    answers: list[int | str] = [503, 503, "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, int):
            raise _Http(answer)
        return answer

    assert retry_read(call, _status, RetryPolicy(initial_s=0.0, max_attempts=5)) == "ok"
    assert answers == []


def test_reads_do_not_retry_client_errors_and_give_up_on_persistent_5xx() -> None:
    calls = {"n": 0}

    def bad_request() -> str:
        calls["n"] += 1
        raise _Http(400)

    with pytest.raises(_Http, match="400"):
        retry_read(bad_request, _status, RetryPolicy(initial_s=0.0, max_attempts=5))
    assert calls["n"] == 1

    def down() -> str:
        calls["n"] += 1
        raise _Http(503)

    calls["n"] = 0
    with pytest.raises(_Http, match="503"):
        retry_read(down, _status, RetryPolicy(initial_s=0.0, max_attempts=3))
    assert calls["n"] == 4  # the first try and three retries


def test_bulk_response_every_item_is_classified() -> None:
    ops = [BulkOp("create", "i", str(n), {}) for n in range(5)]
    response = {
        "errors": True,
        "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception",
                                                  "reason": "exists"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                                  "reason": "queue full"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception",
                                                  "reason": "failed to parse field [asn]",
                                                  "caused_by": {"reason": "For input string"}}}},
            {"create": {"status": 503, "error": {"type": "unavailable_shards_exception",
                                                  "reason": "primary shard is not active"}}},
        ],
    }  # fmt: skip
    results = parse_bulk_response(ops, response)
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert [r.already_done for r in results] == [False, True, False, False, False]
    assert [r.retryable for r in results] == [False, False, True, False, True]
    assert [r.rejected for r in results] == [False, False, False, True, False]
    assert results[3].error_reason == "failed to parse field [asn]: For input string"


def test_flat_event_uses_column_names_and_keeps_unknowns() -> None:
    raw = next(events(1, seed=7))
    raw = {**raw, "brand_new_field": 1, "extra": {"x": 2}, "genre": "drama"}
    Event.model_validate(raw)  # still a valid event
    flat = flatten_event(raw)
    names = {c.name for c in EVENT_COLUMNS}
    assert set(flat) <= names
    assert flat["extra"] == {"x": 2, "brand_new_field": 1}
    assert flat["genre"] == "drama" and flat["isp"] == raw["network"]["isp"]
    assert document_id(flat, TABLE_BY_NAME["events"]) == raw["event_id"]


def test_error_payload_fields_are_renamed() -> None:
    raw = next(e for e in events(200, seed=8) if e["event_type"] == "error")
    flat = flatten_event(raw)
    assert flat["error_code"] == raw["payload"]["code"]
    assert flat["error_message"] == raw["payload"]["message"]
    assert "code" not in flat


def test_rows_that_do_not_fit_are_reported_not_fatal() -> None:
    rows = [flatten_event(e) for e in events(5, seed=9)]
    for r in rows:
        r.update(ingested_at="2026-11-23T00:00:00+00:00", source_partition=0, source_offset=1)
    rows[1]["asn"] = "not-a-number"
    rows[3]["event_time"] = "yesterday"
    rows[4]["buffer_ms"] = 2**40  # does not fit int32
    table, bad = rows_to_table(rows, EVENT_COLUMNS)
    assert sorted(bad) == [1, 3, 4]
    assert table.num_rows == 2
    assert "asn" in bad[1] and "event_time" in bad[3]


def test_index_names_are_isolated_by_prefix_and_lower_case() -> None:
    s = Settings(topic_prefix="Test-AB.")
    assert naming.events_index(s, date(2026, 1, 2)) == "streamwatch-test-ab.events-2026.01.02"
    assert naming.daily_index_date(s, "streamwatch-test-ab.events-2026.01.02") == date(2026, 1, 2)
    assert naming.daily_index_date(s, "streamwatch-other.events-2026.01.02") is None
    assert naming.consumer_group(s, "search") == "Test-AB.streamwatch.sink.search"


def test_expired_indices_respect_retention_days() -> None:
    s = Settings(topic_prefix="t.", search_retention_days=30)
    names = [naming.events_index(s, date(2026, 1, d)) for d in (1, 2, 3)] + ["unrelated"]
    assert expired_indices(s, names, date(2026, 2, 1)) == [naming.events_index(s, date(2026, 1, 1))]


@pytest.mark.parametrize("family", ["events", "sessions", "incidents", "support-audit"])
def test_templates_map_support_fields_as_keywords(family: str) -> None:
    s = Settings(topic_prefix="t.")
    body = index_templates(s)[f"streamwatch-t.{family}"]
    props = body["template"]["mappings"]["properties"]
    assert body["template"]["mappings"]["dynamic"] is False
    if family == "events":
        for field in ("member_id", "profile_id", "session_id", "device_id", "title_id",
                      "oca_id", "isp", "error_code"):  # fmt: skip
            assert props[field]["type"] == "keyword", field
        assert props["event_time"]["type"] == "date"
        assert props["error_message"]["type"] == "text"
        assert body["template"]["aliases"] == {"streamwatch-t.events": {}}


def test_mapping_from_columns() -> None:
    m = mapping(EVENT_COLUMNS)
    assert m["properties"]["extra"] == {"type": "object", "enabled": False}
