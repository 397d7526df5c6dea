"""Consumer lag and group state straight from Kafka (aiokafka admin + consumer APIs).

Lag per group and partition = end offset - committed offset, the definition Kafka's own
`kafka-consumer-groups.sh --describe` uses. Only groups reading this deployment's topics
(`Settings.topic_prefix`) are shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streamwatch.settings import Settings

LAG_COLUMNS = ["group", "state", "members", "topic", "partition", "committed", "end_offset", "lag"]


def _group_state(described: Any) -> dict[str, tuple[str, int]]:
    # DescribeGroups response: groups = [(error, group_id, state, protocol_type, protocol,
    # members, ...)]; the shape is stable across the response versions aiokafka speaks.
    out: dict[str, tuple[str, int]] = {}
    for resp in described:
        for g in getattr(resp, "groups", []):
            out[str(g[1])] = (str(g[2]), len(g[5]))
    return out


async def consumer_lag(settings: Settings, timeout_s: float = 10.0) -> pd.DataFrame:
    """One row per (group, topic, partition) of this deployment's consumer groups."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    await admin.start()
    try:
        await consumer.start()
        try:
            return await _lag(admin, consumer, settings.topic_prefix)
        finally:
            await consumer.stop()
    finally:
        await admin.close()


async def _lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, prefix: str) -> pd.DataFrame:
    groups = sorted({str(g[0]) for g in await admin.list_consumer_groups()})
    rows: list[dict[str, Any]] = []
    committed_by_group: dict[str, dict[TopicPartition, int]] = {}
    for group in groups:
        offsets = await admin.list_consumer_group_offsets(group)
        mine = {
            tp: meta.offset
            for tp, meta in offsets.items()
            if tp.topic.startswith(prefix) and meta.offset >= 0
        }
        if mine:
            committed_by_group[group] = mine
    if not committed_by_group:
        return pd.DataFrame(columns=LAG_COLUMNS)
    states = _group_state(await admin.describe_consumer_groups(list(committed_by_group)))
    partitions = sorted({tp for c in committed_by_group.values() for tp in c})
    ends = await consumer.end_offsets(partitions)
    for group, committed in sorted(committed_by_group.items()):
        state, members = states.get(group, ("Unknown", 0))
        for tp, off in sorted(committed.items()):
            end = int(ends.get(tp, off))
            rows.append(
                {
                    "group": group,
                    "state": state,
                    "members": members,
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": off,
                    "end_offset": end,
                    "lag": max(0, end - off),
                }
            )
    return pd.DataFrame(rows, columns=LAG_COLUMNS)


def consumer_lag_sync(settings: Settings, timeout_s: float = 10.0) -> pd.DataFrame:
    """`consumer_lag` for synchronous callers (Streamlit pages)."""
    return asyncio.run(consumer_lag(settings, timeout_s))


def sink_states(lag: pd.DataFrame) -> pd.DataFrame:
    """Per consumer group (one per sink/stage): state, members, total and max lag."""
    if lag.empty:
        return pd.DataFrame(columns=["group", "state", "members", "total_lag", "max_lag", "health"])
    g = lag.groupby(["group", "state", "members"], as_index=False).agg(
        total_lag=("lag", "sum"), max_lag=("lag", "max")
    )
    g["health"] = [
        "down" if m == 0 and t > 0 else ("idle" if m == 0 else "running")
        for m, t in zip(g["members"], g["total_lag"], strict=True)
    ]
    return g
