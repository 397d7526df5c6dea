"""How far the stream workers are, read from their own committed state (for tests, benchmarks
and operators): the whole stage is done with its input when every raw partition's checkpoint
is at the end of its partition (written after the flush that made its forwards, summaries
and rollups durable; it carries the partition's reconciliation counters), and the detector
has read every partial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import DETECTOR_STATE, MINUTE_PARTIALS, app_id
from streams.committed_state import Checkpoint, ValidateStats
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


async def checkpoints(settings: Settings) -> dict[int, Checkpoint]:
    """The latest committed checkpoint of every raw partition that has one."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await _checkpoints(settings, consumer)
    finally:
        await consumer.stop()


async def _checkpoints(settings: Settings, consumer: AIOKafkaConsumer) -> dict[int, Checkpoint]:
    topic = changelog(settings, "checkpoints")
    if topic not in await consumer.topics():
        return {}
    parts = settings.partitions_for(topics.RAW)
    latest = await _latest(consumer, [TopicPartition(topic, p) for p in range(parts)])
    return {int(k): Checkpoint.model_validate_json(v) for k, v in latest.items() if v}


def stats_totals(cps: dict[int, Checkpoint]) -> dict[str, int]:
    """The reconciliation counters of all partitions, summed."""
    total = dict.fromkeys(ValidateStats.model_fields, 0)
    for cp in cps.values():
        for k, n in cp.stats.model_dump().items():
            total[k] += n
    return total


@dataclass(frozen=True)
class Progress:
    """Where the stage is: raw messages counted and applied, and whether the rest caught up."""

    raw_end: int  # messages in the raw topic
    raw_counted: int  # of which the committed checkpoints count
    applied: bool  # every raw partition's checkpoint at its end
    detected: bool | None  # the detector has read every partial (None: not read)

    @property
    def done(self) -> bool:
        """Every input message is applied and the summaries and rollups it causes are
        published (the detector's judging, downstream of those, is `detected`)."""
        return self.raw_counted >= self.raw_end and self.applied


async def progress(settings: Settings, detector: bool = True) -> Progress:
    """Read the stage's progress from the topics and the worker's changelogs.

    `detector=False` leaves the detector out (`detected` is None): reading it means reading
    its whole changelog, which grows with every batch of partials; a benchmark polling
    twice a second would load the machine it measures with it.
    """
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
        ends = await consumer.end_offsets(raw)
        cps = await _checkpoints(settings, consumer)
        counted = sum(cp.stats.raw for cp in cps.values())
        applied = all(
            (cps[tp.partition].upto if tp.partition in cps else -1) >= ends[tp] - 1 for tp in raw
        )
        detected: bool | None = True if detector else None
        partials = settings.topic(MINUTE_PARTIALS)
        if detector and partials in existing:
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
