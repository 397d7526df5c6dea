"""How far the stream workers are, read from their own committed state (for tests, benchmarks
and operators): the whole stage is done with its input when every raw message is counted by
the validator, every events partition's checkpoint is at the end of its partition (written
after the flush that made its summaries and rollups durable), and the detector has read
every partial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import DETECTOR_STATE, MINUTE_PARTIALS, app_id
from streams.committed_state import Checkpoint
from streamwatch import topics
from streamwatch.settings import Settings


def changelog(settings: Settings, table: str) -> str:
    """The full topic name of a worker table's changelog."""
    return settings.topic(f"{app_id(settings)[len(settings.topic_prefix) :]}-{table}-changelog")


async def _latest(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[bytes, bytes | None]:
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    end = await consumer.end_offsets(tps)
    latest: dict[bytes, bytes | None] = {}
    while pending := [tp for tp in tps if await consumer.position(tp) < end[tp]]:
        for msgs in (await consumer.getmany(*pending, timeout_ms=500)).values():
            for m in msgs:
                if m.key is not None:
                    latest[m.key] = m.value
    return latest


@dataclass(frozen=True)
class Progress:
    """Where the stage is: raw counted by the validator, and whether the rest caught up."""

    raw_end: int  # messages in the raw topic
    raw_counted: int  # of which the validator's committed stats count
    applied: bool  # every events partition's checkpoint at its end
    detected: bool  # the detector has read every partial

    @property
    def done(self) -> bool:
        """Every input message is applied and the summaries and rollups it causes are
        published (the detector's judging, downstream of those, is `detected`)."""
        return self.raw_counted >= self.raw_end and self.applied


async def progress(settings: Settings) -> Progress:
    """Read the stage's progress from the topics and the worker's changelogs."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        existing = await consumer.topics()
        raw = [
            TopicPartition(settings.topic(topics.RAW), p)
            for p in range(settings.partitions_for(topics.RAW))
        ]
        events = [
            TopicPartition(settings.topic(topics.EVENTS), p)
            for p in range(settings.partitions_for(topics.EVENTS))
        ]
        ends = await consumer.end_offsets(raw + events)
        counted = 0
        stats_topic = changelog(settings, "validate-stats")
        if stats_topic in existing:
            stats = await _latest(
                consumer, [TopicPartition(stats_topic, p) for p in range(len(raw))]
            )
            counted = sum(json.loads(v)["raw"] for v in stats.values() if v)
        applied = True
        cp_topic = changelog(settings, "checkpoints")
        cps = (
            await _latest(consumer, [TopicPartition(cp_topic, p) for p in range(len(events))])
            if cp_topic in existing
            else {}
        )
        for tp in events:
            value = cps.get(str(tp.partition).encode())
            upto = Checkpoint.model_validate_json(value).upto if value else -1
            applied = applied and upto >= ends[tp] - 1
        detected = True
        partials = settings.topic(MINUTE_PARTIALS)
        if partials in existing:
            ptp = TopicPartition(partials, 0)
            pend = (await consumer.end_offsets([ptp]))[ptp]
            det_topic = changelog(settings, "detector")
            det = (
                await _latest(consumer, [TopicPartition(det_topic, 0)])
                if det_topic in existing
                else {}
            )
            state = det.get(DETECTOR_STATE)
            upto = json.loads(state).get("upto_offset", -1) if state else -1
            detected = upto >= pend - 1
        return Progress(sum(ends[tp] for tp in raw), counted, applied, detected)
    finally:
        await consumer.stop()
