"""Capacity's storage growth covers the search indices and the Kafka topics, not only the
warehouse: measured on real Kafka and each real search engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from aiokafka import AIOKafkaProducer

from dashboards.storage import kafka_storage_by_day, storage_by_day
from indexers import naming
from indexers.search_backend import BulkOp
from indexers.search_factory import make_backend
from indexers.search_setup import drop_all, ensure_search_ready
from streamwatch import topics
from streamwatch.settings import Settings
from tests.conftest import on_backend
from tests.test_indexers_support import scoped

pytestmark = pytest.mark.integration

N_MESSAGES = 400
VALUE_BYTES = 1000


async def _produce(s: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(N_MESSAGES):
            await producer.send(s.topic(topics.RAW), b"x" * VALUE_BYTES, key=f"k{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
def s(
    settings: Settings, search_backend: str, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    scoped_settings = asyncio.run(
        scoped(on_backend(settings, search_backend, request), request.path)
    )
    yield scoped_settings
    backend = make_backend(scoped_settings)
    try:
        drop_all(backend, scoped_settings)
    finally:
        backend.close()


def test_storage_by_day_has_warehouse_search_and_kafka_rows(s: Settings) -> None:
    asyncio.run(_produce(s))
    today = datetime.now(UTC).date()
    backend = make_backend(s)
    try:
        ensure_search_ready(backend, s)
        docs = [
            BulkOp("index", naming.events_index(s, today), f"e{i}", {"event_id": f"e{i}"})
            for i in range(50)
        ]
        sessions = [
            BulkOp(
                "index",
                naming.sessions_index(s),
                f"s{i}",
                {"session_id": f"s{i}", "first_event_at": datetime.now(UTC).isoformat()},
            )
            for i in range(20)
        ]
        assert all(r.ok for r in backend.bulk(docs + sessions))
        backend.refresh(f"{naming.index_prefix(s)}*")
        warehouse = pd.DataFrame(
            [{"store": "warehouse/events", "day": today.isoformat(), "bytes": 123}]
        )
        table, notes = storage_by_day(s, warehouse, backend)
    finally:
        backend.close()
    assert notes == []
    got = {(r.store, r.day): r.bytes for r in table.itertuples()}
    day = today.isoformat()
    assert got[("warehouse/events", day)] == 123
    assert got[("search/events", day)] > 0
    assert got[("search/sessions", day)] > 0
    # 400 records of 1000 bytes (+ key and per-record overhead) were appended today.
    raw = got[(f"kafka/{topics.RAW}", day)]
    assert N_MESSAGES * VALUE_BYTES <= raw <= N_MESSAGES * (VALUE_BYTES + 40)
    # A topic this run never wrote holds nothing and shows no row.
    assert (f"kafka/{topics.INCIDENTS}", day) not in got


def test_kafka_down_is_a_note_not_a_crash(s: Settings) -> None:
    dead = s.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        asyncio.run(kafka_storage_by_day(dead, 2))
    backend = make_backend(s)
    try:
        table, notes = storage_by_day(
            dead, pd.DataFrame(columns=["store", "day", "bytes"]), backend
        )
    finally:
        backend.close()
    assert any(n.startswith("Kafka topics not measured") for n in notes), notes
    assert not any(str(store).startswith("kafka/") for store in table["store"])
