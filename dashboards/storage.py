"""Storage growth per store and day: the warehouse, the search indices and the Kafka topics.

Every row is (store, day, bytes): what that store holds for that day. How a day's bytes are
found differs per store, from exact to estimated:

- warehouse: the Parquet files of each `date=` partition (exact; `queries.capacity`);
- search, daily event indices: the index of that day's primary store size (exact);
- search, single indices (sessions, incidents, audit): the index size split over days in
  proportion to its documents per day (a date histogram on the family's first time column);
- Kafka topics: messages appended per day (offsets at each UTC midnight, from the broker's
  time index) times the topic's mean record size (sampled from its newest records). Kafka's
  admin client here cannot read log-dir sizes, so this is an estimate of what the broker
  stores, not a `du`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from aiokafka import AIOKafkaConsumer, TopicPartition

from contract.columns import Column
from contract.tables import INCIDENT_COLUMNS, SESSION_COLUMNS
from indexers import naming
from indexers.search_backend import SearchBackend
from indexers.search_mappings import AUDIT_COLUMNS
from streamwatch import topics
from streamwatch.settings import Settings

COLUMNS = ["store", "day", "bytes"]
SAMPLE_RECORDS = 200
# Per-record overhead in a Kafka batch (offset delta, timestamp delta, lengths, headers).
RECORD_OVERHEAD_BYTES = 20


def _time_column(columns: tuple[Column, ...]) -> str:
    return next(c.name for c in columns if c.kind == "timestamp")


def search_storage_by_day(backend: SearchBackend, settings: Settings, days: int) -> pd.DataFrame:
    """Bytes per search index family and day over the last `days` days."""
    rows: list[dict[str, Any]] = []
    sizes = backend.index_sizes(f"{naming.index_prefix(settings)}*")
    first_day = datetime.now(UTC).date() - timedelta(days=days - 1)
    for index, size in sizes.items():
        day = naming.daily_index_date(settings, index)
        if day is not None and day >= first_day:
            rows.append({"store": "search/events", "day": day.isoformat(), "bytes": size})
    singles = {
        naming.sessions_index(settings): ("search/sessions", _time_column(SESSION_COLUMNS)),
        naming.incidents_index(settings): ("search/incidents", _time_column(INCIDENT_COLUMNS)),
        naming.audit_index(settings): ("search/support-audit", _time_column(AUDIT_COLUMNS)),
    }
    for index, (store, field) in singles.items():
        size = sizes.get(index, 0)
        if size <= 0:
            continue
        per_day = _docs_per_day(backend, index, field, first_day)
        total = sum(per_day.values())
        for day_text, docs in per_day.items():
            rows.append({"store": store, "day": day_text, "bytes": size * docs / total})
    return pd.DataFrame(rows, columns=COLUMNS)


def _docs_per_day(backend: SearchBackend, index: str, field: str, since: date) -> dict[str, int]:
    body = {
        "size": 0,
        "query": {"range": {field: {"gte": since.isoformat()}}},
        "aggs": {"d": {"date_histogram": {"field": field, "calendar_interval": "day"}}},
    }
    buckets = backend.search(index, body).get("aggregations", {}).get("d", {}).get("buckets", [])
    return {
        str(b["key_as_string"])[:10]: int(b["doc_count"]) for b in buckets if b["doc_count"] > 0
    }


async def kafka_storage_by_day(settings: Settings, days: int) -> pd.DataFrame:
    """Estimated bytes per topic and day over the last `days` days (see the module doc)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        today = datetime.now(UTC).date()
        midnights = [today - timedelta(days=d) for d in range(days - 1, -1, -1)]
        existing = await consumer.topics()
        by_topic = {
            spec.name: [
                TopicPartition(settings.topic(spec.name), p)
                for p in range(settings.partitions_for(spec.name))
            ]
            for spec in topics.ALL_TOPICS
            if settings.topic(spec.name) in existing
        }
        # One request per kind for every partition of every topic: per-topic requests each
        # wait for a metadata round.
        per_day = await _messages_per_day(
            consumer, [tp for tps in by_topic.values() for tp in tps], midnights
        )
        rows: list[dict[str, Any]] = []
        for name, tps in by_topic.items():
            counts = {d: sum(per_day.get((tp, d), 0) for tp in tps) for d in midnights}
            if not any(counts.values()):
                continue
            mean = await _mean_record_bytes(consumer, tps)
            rows.extend(
                {"store": f"kafka/{name}", "day": d.isoformat(), "bytes": n * mean}
                for d, n in counts.items()
                if n
            )
        return pd.DataFrame(rows, columns=COLUMNS)
    finally:
        await consumer.stop()


async def _messages_per_day(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], midnights: list[date]
) -> dict[tuple[TopicPartition, date], int]:
    """Records appended per partition and UTC day (by the broker's time index)."""
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    # Only partitions holding records: asking an empty one for times costs a retry round.
    held = [tp for tp in tps if ends[tp] > starts[tp]]
    if not held:
        return {}
    bounds: list[dict[TopicPartition, int]] = []
    for day in midnights:
        ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(held, ms))
        # No record at or after that midnight: the day starts at the partition's end.
        bounds.append({tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in held})
    bounds.append({tp: ends[tp] for tp in held})
    return {
        (tp, day): max(0, bounds[i + 1][tp] - max(bounds[i][tp], starts[tp]))
        for i, day in enumerate(midnights)
        for tp in held
    }


async def _mean_record_bytes(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> float:
    ends = await consumer.end_offsets(tps)
    tp = max(tps, key=lambda t: ends[t])
    consumer.assign([tp])
    consumer.seek(tp, max(0, ends[tp] - SAMPLE_RECORDS))
    batch = await consumer.getmany(tp, timeout_ms=2000, max_records=SAMPLE_RECORDS)
    records = batch.get(tp, [])
    if not records:
        return 0.0
    size: int = sum(
        (r.serialized_key_size if r.serialized_key_size > 0 else 0)
        + max(0, r.serialized_value_size)
        + RECORD_OVERHEAD_BYTES
        for r in records
    )
    return float(size) / len(records)


def storage_by_day(
    settings: Settings, warehouse: pd.DataFrame, backend: SearchBackend, days: int = 7
) -> tuple[pd.DataFrame, list[str]]:
    """Every store's bytes per day (the warehouse's rows given), and notes on what failed.

    A store that cannot be read (engine or broker down) is left out with a note, so the
    page still shows the others.
    """
    frames = [warehouse]
    notes: list[str] = []
    try:
        frames.append(search_storage_by_day(backend, settings, days))
    except Exception as exc:
        notes.append(f"search indices not measured: {exc}")
    try:
        frames.append(asyncio.run(kafka_storage_by_day(settings, days)))
    except Exception as exc:
        notes.append(f"Kafka topics not measured: {exc}")
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=COLUMNS), notes
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["day", "store"]).reset_index(drop=True), notes
