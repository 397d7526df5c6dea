"""A benchmark run's own topics on the shared broker, removed when the run ends.

Every run makes its topics under a prefix of its own (`Settings.topic_prefix`); the worker's
changelog and internal topics carry it too. Left behind, a 1,000,000-event run's topics
hold gigabytes: runs that kept theirs filled this machine's disk and stopped its broker.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from streamwatch.settings import Settings


async def delete_run_topics(settings: Settings) -> list[str]:
    """Delete every topic under the run's prefix; the names deleted."""
    if not settings.topic_prefix:
        raise ValueError("a benchmark run needs a topic prefix of its own")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


def delete_run_topics_sync(settings: Settings) -> list[str]:
    """`delete_run_topics` from synchronous code."""
    return asyncio.run(delete_run_topics(settings))
