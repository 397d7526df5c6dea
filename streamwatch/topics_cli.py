"""`streamwatch topics create|list`: the topics of DESIGN.md, created idempotently."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamwatch.settings import Settings, get_settings
from streamwatch.topics import ALL_TOPICS


async def create_topics(settings: Settings) -> dict[str, str]:
    """Create every topic that does not exist yet; returns topic -> 'created' | 'exists'."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(t.name),
                num_partitions=settings.partitions_for(t.name),
                replication_factor=1,
                topic_configs={"retention.ms": str(t.retention_ms)},
            )
            for t in ALL_TOPICS
            if settings.topic(t.name) not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        return {
            settings.topic(t.name): ("exists" if settings.topic(t.name) in existing else "created")
            for t in ALL_TOPICS
        }
    finally:
        await admin.close()


def _cmd_create(args: argparse.Namespace) -> int:
    result = asyncio.run(create_topics(get_settings()))
    for name, state in result.items():
        print(f"{name:28s} {state}")
    return 0


def register(sub: Any) -> None:
    """Add `topics` subcommands."""
    topics = sub.add_parser("topics", help="Kafka topics of the data flow")
    tsub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create the DESIGN.md topics (idempotent)")
    create.set_defaults(handler=_cmd_create)
