"""Unit tests of the collector's small parts: capped bodies, rate limiter, retry policy,
client identity and schema export."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
from aiohttp.test_utils import make_mocked_request

from contract.events import EVENT_TYPES
from ingest.body import BodyTooLarge, InvalidGzip, gunzip_capped, read_capped
from ingest.collector import client_key
from ingest.producer import RetryPolicy
from ingest.ratelimit import TokenBucketLimiter
from ingest.schema_export import export_schemas
from testkit.sample_events import sample_event

# --- gzip and body caps -------------------------------------------------------------------------


def test_gunzip_round_trip_and_exact_cap() -> None:
    data = b"x" * 10_000
    assert gunzip_capped(gzip.compress(data), cap=10_000) == data
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip.compress(data), cap=9_999)


def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 200_000_000, compresslevel=9)
    assert len(bomb) < 300_000
    with pytest.raises(BodyTooLarge) as info:
        gunzip_capped(bomb, cap=1_000_000)
    assert info.value.decompressed


def test_concatenated_gzip_members_are_one_body() -> None:
    assert gunzip_capped(gzip.compress(b"ab") + gzip.compress(b"cd"), cap=100) == b"abcd"
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip.compress(b"a" * 60) + gzip.compress(b"b" * 60), cap=100)


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b"hello" * 100)[:-12], zlib.compress(b"raw zlib"), b""],
)
def test_invalid_gzip(data: bytes) -> None:
    with pytest.raises(InvalidGzip):
        gunzip_capped(data, cap=1_000_000)


def test_trailing_garbage_after_gzip_is_invalid() -> None:
    with pytest.raises(InvalidGzip):
        gunzip_capped(gzip.compress(b"ok") + b"junk", cap=100)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_capped() -> None:
    assert await read_capped(_chunks(b"ab", b"cd"), cap=4) == b"abcd"
    with pytest.raises(BodyTooLarge):
        await read_capped(_chunks(b"ab", b"cd", b"e"), cap=4)


# --- rate limiter ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_burst_then_refuses_with_wait_time() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("b") is None, "clients have their own buckets"
    clock.now += 0.5
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    clock.now += 100
    assert [limiter.acquire("a") for _ in range(4)][:3] == [None, None, None], (
        "refill caps at burst"
    )


def test_token_bucket_memory_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1, max_clients=10, clock=FakeClock())
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 10


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate=0, burst=1)


# --- retry policy ---------------------------------------------------------------------------------


def test_retry_policy_backoff_doubles_up_to_the_ceiling() -> None:
    policy = RetryPolicy(attempts=5, initial_backoff_s=0.1, max_backoff_s=0.3, multiplier=2)
    assert [policy.backoff_s(n) for n in range(1, 5)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert [policy.should_retry(n) for n in range(1, 6)] == [True, True, True, True, False]
    assert not RetryPolicy(attempts=1).should_retry(1)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# --- client identity ------------------------------------------------------------------------------


def _request(xff: str | None) -> object:
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    return make_mocked_request("POST", "/v1/events", headers=headers)


@pytest.mark.parametrize(
    ("xff", "hops", "expected"),
    [
        ("203.0.113.7", 0, None),  # header ignored without trusted proxies
        ("203.0.113.7", 1, "203.0.113.7"),
        ("1.1.1.1, 203.0.113.7", 1, "203.0.113.7"),  # leftmost entry may be forged
        ("1.1.1.1, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        ("203.0.113.7", 3, "203.0.113.7"),
        ("", 1, None),
    ],
)
def test_client_key(xff: str, hops: int, expected: str | None) -> None:
    request = _request(xff)
    key = client_key(request, hops)  # type: ignore[arg-type]
    assert key == (expected or request.remote or "unknown")  # type: ignore[attr-defined]


# --- schema export ------------------------------------------------------------------------------


def test_schema_export_writes_every_type_and_samples_validate(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    assert [e["event_type"] for e in index["event_types"]] == list(EVENT_TYPES)
    assert len(written) == len(EVENT_TYPES) + 2
    envelope = json.loads((tmp_path / index["envelope"]).read_text())
    jsonschema.Draft202012Validator.check_schema(envelope)
    for entry in index["event_types"]:
        schema = json.loads((tmp_path / entry["file"]).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        sample = sample_event(entry["event_type"])
        jsonschema.validate(sample, schema)
        jsonschema.validate(sample, envelope)
        other = next(t for t in EVENT_TYPES if t != entry["event_type"])
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(sample_event(other), schema)
    broken = sample_event("heartbeat")
    del broken["payload"]["bitrate_kbps"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, envelope)


def test_schema_export_cli(tmp_path: Path) -> None:
    from streamwatch.cli import main

    assert main(["schema", "export", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "events" / "heartbeat.schema.json").is_file()
