"""Consumer lag and "data is N minutes behind", read from the real Kafka 4.3 broker.

A group commits part of a prefixed topic; the lag per partition, the broker timestamp of the
oldest waiting record and the banner follow from what was produced and committed.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from indexers.naming import consumer_group
from streamwatch import topics
from streamwatch.pipeline_lag import (
    GroupState,
    PartitionLag,
    PipelineLag,
    as_rows,
    behind_message,
    pipeline_groups,
    read_lag_sync,
)
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

PER_PARTITION = 20
COMMITTED = 5
OLD_MS = 240_000  # the waiting records' broker time: 4 minutes ago


async def _produce_and_commit(settings: Settings, group: str) -> tuple[str, int]:
    topic = settings.topic(topics.SESSIONS)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        stamp = int(time.time() * 1000) - OLD_MS
        for p in parts:
            for i in range(PER_PARTITION):
                await producer.send(topic, b"x", partition=p, timestamp_ms=stamp + i)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.commit({tp: OffsetAndMetadata(COMMITTED, "") for tp in tps})
    finally:
        await consumer.stop()
    return topic, len(parts)


def test_lag_per_partition_and_time_behind_from_the_real_broker(settings: Settings) -> None:
    group = consumer_group(settings, "warehouse")  # a pipeline group, 4 minutes behind
    topic, n_parts = asyncio.run(_produce_and_commit(settings, group))

    lag = read_lag_sync(settings)

    mine = [p for p in lag.partitions if p.group == group]
    assert len(mine) == n_parts
    assert {p.topic for p in mine} == {topic}
    assert all(p.lag == PER_PARTITION - COMMITTED for p in mine)
    assert lag.total_lag(group) == n_parts * (PER_PARTITION - COMMITTED)
    assert lag.groups[group].state in ("Empty", "unknown")
    # The oldest waiting record is the one at the committed offset: 4 minutes old.
    assert lag.behind_s() == pytest.approx(OLD_MS / 1000, abs=30)
    message = behind_message(lag, threshold_s=60)
    assert message is not None
    assert message.startswith("Data is 4 minutes behind")
    assert f"{n_parts * (PER_PARTITION - COMMITTED):,} records waiting" in message
    rows = as_rows(lag)
    assert any(r["Lag (records)"] == PER_PARTITION - COMMITTED for r in rows)


def test_a_stale_group_outside_the_pipeline_raises_no_banner(settings: Settings) -> None:
    """A probe that read the topics once and stopped (the demo's banner said "Data is 67
    minutes behind" because of one) is listed on the pipeline page but is not the pipeline."""
    own = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "probe."})
    asyncio.run(create_topics(own))  # the session's other tests leave pipeline groups lagging
    probe = f"{own.topic_prefix}lag-probe"
    asyncio.run(_produce_and_commit(own, probe))

    lag = read_lag_sync(own)

    assert lag.total_lag(probe) > 0
    assert any(r["Consumer group"] == probe for r in as_rows(lag))
    assert lag.behind_s() == 0.0
    assert behind_message(lag, threshold_s=60) is None


def test_the_pipeline_groups_are_the_worker_and_the_sinks(settings: Settings) -> None:
    from streams.app import app_id
    from streams.service_worker import GROUP

    assert pipeline_groups(settings) == {
        app_id(settings),
        settings.topic(GROUP),
        consumer_group(settings, "search"),
        consumer_group(settings, "warehouse"),
    }


def test_a_deployment_does_not_see_another_prefix(settings: Settings) -> None:
    other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "other."})
    assert read_lag_sync(other).partitions == ()


def test_unreachable_kafka_is_said_so() -> None:
    from streamwatch.pipeline_lag import KafkaUnreachable

    nowhere = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.raises(KafkaUnreachable, match=r"Kafka unreachable at 127\.0\.0\.1:1"):
        read_lag_sync(nowhere, timeout_s=2.0)


def _lag(behind_ms: int | None, lag: int) -> PipelineLag:
    now = 1_000_000_000
    old = None if behind_ms is None else now - behind_ms
    part = PartitionLag("g", "t", 0, 10, 10 + lag, old)
    return PipelineLag((part,), {"g": GroupState("Stable", 1)}, now)


@pytest.mark.parametrize(
    "behind_ms,lag,expected",
    [
        (None, 0, None),  # caught up
        (30_000, 500, None),  # under the threshold
        (180_000, 9_000, "Data is 3 minutes behind: g has 9,000 records waiting on t"),
        (75_000, 10, "Data is 75 seconds behind: g has 10 records waiting on t"),
        (600_000, 0, None),  # no lag: an old committed record is not waiting
    ],
)
def test_banner_wording(behind_ms: int | None, lag: int, expected: str | None) -> None:
    message = behind_message(_lag(behind_ms, lag), threshold_s=60)
    if expected is None:
        assert message is None
    else:
        assert message is not None and message.startswith(expected)


def test_worker_log_drops_fausts_false_alarm_and_keeps_real_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from streams.worker import silence_false_alarms

    silence_false_alarms()
    faust_log = logging.getLogger("faust.transport.drivers.aiokafka")
    cluster_log = logging.getLogger("aiokafka.cluster")
    with caplog.at_level(logging.INFO):
        faust_log.error("Stream has not started processing %r (started %s).", "TP(x, 0)", "1m")
        faust_log.error("Has not committed %r at all since worker start", "TP(x, 0)")
        cluster_log.error("Topic %s not found in cluster metadata", "streams.x")
    levels = [(r.levelname, r.getMessage()[:20]) for r in caplog.records]
    assert levels == [("ERROR", "Has not committed 'T"), ("WARNING", "Topic streams.x not ")]


def test_a_caught_up_partition_waits_zero_seconds_and_an_undated_one_is_unknown() -> None:
    """The pipeline page showed a grey "None" for every partition that was caught up."""
    lag = PipelineLag(
        partitions=(
            PartitionLag("g", "t", 0, committed=10, end_offset=10),
            PartitionLag("g", "t", 1, committed=5, end_offset=10, oldest_unprocessed_ms=7_000),
            PartitionLag("g", "t", 2, committed=5, end_offset=10),
        ),
        read_at_ms=10_000,
    )
    waiting = [r["Oldest waiting (s)"] for r in as_rows(lag)]
    assert waiting == [0.0, 3.0, None]
