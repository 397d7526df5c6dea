"""The detector's partials topic has exactly one partition, or the worker does not start.

Found in the live demo (issue 11): when the detect agent subscribed before the topic existed,
the broker auto-created it with `num.partitions` (6 on the local stack). The detector keeps
one offset sequence for its input, so it skipped most partials as already applied
(`detect.replayed` grew in the worker log), judged minutes without them, and the demo's OCA
outage raised no incident. Against the real broker: the worker makes the topic with one
partition, and refuses a topic that has more.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.app import MINUTE_PARTIALS
from streams.worker import ensure_internal_topics
from streamwatch.errors import ConfigurationError
from streamwatch.settings import Settings


async def _partitions(settings: Settings, name: str) -> int:
    """The topic's partition count, once the broker's metadata shows it (0 until then)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        for _ in range(50):
            described = await admin.describe_topics([name])
            if described and described[0]["partitions"]:
                return len(described[0]["partitions"])
            await asyncio.sleep(0.2)
        return 0
    finally:
        await admin.close()


async def _create(settings: Settings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def test_the_worker_makes_the_partials_topic_with_one_partition(settings: Settings) -> None:
    scoped = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "one."})
    name = scoped.topic(MINUTE_PARTIALS)

    asyncio.run(ensure_internal_topics(scoped))
    asyncio.run(ensure_internal_topics(scoped))  # a second worker finds it made

    assert asyncio.run(_partitions(scoped, name)) == 1


def test_a_partials_topic_the_broker_auto_created_stops_the_worker(settings: Settings) -> None:
    scoped = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "auto."})
    name = scoped.topic(MINUTE_PARTIALS)
    asyncio.run(_create(scoped, name, 6))  # what auto-creation made on the local stack
    assert asyncio.run(_partitions(scoped, name)) == 6

    with pytest.raises(ConfigurationError, match=rf"{name} has 6 partitions.*exactly 1"):
        asyncio.run(ensure_internal_topics(scoped))
