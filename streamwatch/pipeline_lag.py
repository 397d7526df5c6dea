"""How far behind the pipeline is, read from Kafka: consumer lag per partition, in records
and in time. Both apps (the "data is N minutes behind" banner) and the SRE app's pipeline
page use it.

Lag per group and partition = end offset - committed offset, the definition of Kafka's own
`kafka-consumer-groups.sh --describe`. Committed offsets come from the admin client's
OffsetFetch (`list_consumer_group_offsets`) and end offsets from a plain consumer: both
work against Kafka 4.x. aiokafka 0.14's `describe_consumer_groups` decodes some of Kafka
4.3's answers wrongly ("Buffer underrun decoding string"); it is only used for a group's
state and member count, and its failure leaves those unknown instead of hiding the lag.

Time behind = now - the broker timestamp of the oldest record a group has not processed
(the record at its committed offset): the age of the work waiting, whatever the events'
client clocks say. Only the pipeline's own groups (the stream worker and the sinks) count
towards the banner: any other group that once read these topics (a test's probe, an
analyst's console consumer) and stopped would otherwise say the data is hours behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import TopicPartition

from streamwatch import topics
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings

log = logging.getLogger(__name__)


class KafkaUnreachable(StreamwatchError):
    """No connection to the brokers (as opposed to a request that failed)."""


@dataclass(frozen=True)
class PartitionLag:
    """One consumer group's position on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    end_offset: int
    oldest_unprocessed_ms: int | None = None  # broker timestamp at `committed`, when lagging

    @property
    def lag(self) -> int:
        """Records written and not yet processed by the group."""
        return max(0, self.end_offset - self.committed)


@dataclass(frozen=True)
class GroupState:
    """A consumer group's state and member count ("unknown" when Kafka did not say)."""

    state: str = "unknown"
    members: int | None = None


@dataclass(frozen=True)
class PipelineLag:
    """Every partition of this deployment's consumer groups, read at `read_at_ms`.

    `pipeline` names the groups whose lag makes the data late (`pipeline_groups`); None
    counts every group.
    """

    partitions: tuple[PartitionLag, ...]
    groups: dict[str, GroupState] = field(default_factory=dict)
    read_at_ms: int = 0
    pipeline: frozenset[str] | None = None

    def _counted(self) -> list[PartitionLag]:
        return [p for p in self.partitions if self.pipeline is None or p.group in self.pipeline]

    def behind_s(self) -> float:
        """Age in seconds of the oldest record a pipeline group has not processed (0 = caught
        up)."""
        ages = [
            (self.read_at_ms - p.oldest_unprocessed_ms) / 1000.0
            for p in self._counted()
            if p.lag > 0 and p.oldest_unprocessed_ms is not None
        ]
        return max([0.0, *ages])

    def furthest_behind(self) -> PartitionLag | None:
        """The pipeline group's lagging partition whose oldest waiting record is oldest."""
        lagging = [p for p in self._counted() if p.lag > 0 and p.oldest_unprocessed_ms]
        return min(lagging, key=lambda p: p.oldest_unprocessed_ms or 0, default=None)

    def total_lag(self, group: str | None = None) -> int:
        """Records waiting, for one group or all."""
        return sum(p.lag for p in self.partitions if group is None or p.group == group)


def behind_message(lag: PipelineLag, threshold_s: float) -> str | None:
    """The banner an SRE or agent reads when data is `threshold_s` or more behind, else None."""
    behind = lag.behind_s()
    if behind < threshold_s:
        return None
    worst = lag.furthest_behind()
    minutes = behind / 60.0
    amount = f"{minutes:,.0f} minutes" if minutes >= 1.5 else f"{behind:,.0f} seconds"
    where = ""
    if worst is not None:
        waiting = lag.total_lag(worst.group)
        where = f": {worst.group} has {waiting:,} records waiting on {worst.topic}"
    return f"Data is {amount} behind{where}. Figures and charts stop at the last processed data."


# The groups are named by their owners (`streams.app.app_id`, `indexers.naming.
# consumer_group`); importing those here would load Faust into both Streamlit apps and turn
# the shared package upside down, so the names are repeated and a test pins them together.
_PIPELINE_GROUPS = (
    "streamwatch-streams",
    "streamwatch-services",
    "streamwatch.sink.search",
    "streamwatch.sink.warehouse",
)


def pipeline_groups(settings: Settings) -> frozenset[str]:
    """The consumer groups of this deployment's pipeline: the stream workers and the sinks."""
    return frozenset(f"{settings.topic_prefix}{group}" for group in _PIPELINE_GROUPS)


def deployment_topics(settings: Settings) -> set[str]:
    """The topics of this deployment (exact names: another prefix is another deployment)."""
    return {settings.topic(spec.name) for spec in topics.ALL_TOPICS}


async def _group_states(admin: AIOKafkaAdminClient, groups: Iterable[str]) -> dict[str, GroupState]:
    out: dict[str, GroupState] = {}
    for group in groups:
        try:
            described = await admin.describe_consumer_groups([group])
            for resp in described:
                for g in getattr(resp, "groups", []):
                    out[str(g[1])] = GroupState(str(g[2]), len(g[5]))
        except (KafkaError, ValueError, IndexError) as exc:  # see the module docstring
            log.debug("describe_consumer_groups(%s) failed: %r", group, exc)
            out[group] = GroupState()
    return out


async def _oldest_timestamps(
    consumer: AIOKafkaConsumer, wanted: dict[tuple[str, TopicPartition], int], timeout_s: float
) -> dict[tuple[str, TopicPartition], int]:
    """Broker timestamp of the record at each (group, partition)'s committed offset."""
    out: dict[tuple[str, TopicPartition], int] = {}
    for key, offset in wanted.items():
        tp = key[1]
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000), max_records=1)
        records = batch.get(tp, [])
        if records:
            out[key] = int(records[0].timestamp)
    return out


async def read_lag(settings: Settings, timeout_s: float = 5.0) -> PipelineLag:
    """Lag of every consumer group that committed offsets on this deployment's topics."""
    mine = deployment_topics(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await admin.start()
        await consumer.start()
    except (KafkaConnectionError, OSError) as exc:
        await admin.close()
        raise KafkaUnreachable(
            f"Kafka unreachable at {settings.bootstrap_servers}: {exc!r}"
        ) from exc
    try:
        committed: dict[str, dict[TopicPartition, int]] = {}
        for listed in await admin.list_consumer_groups():
            group = str(listed[0])
            offsets = await admin.list_consumer_group_offsets(group)
            ours = {tp: m.offset for tp, m in offsets.items() if tp.topic in mine and m.offset >= 0}
            if ours:
                committed[group] = ours
        if not committed:
            return PipelineLag((), {}, int(time.time() * 1000), pipeline_groups(settings))
        ends = await consumer.end_offsets(sorted({tp for c in committed.values() for tp in c}))
        # Records of one topic are spread over its partitions by key, so the most lagging
        # partition of each (group, topic) holds about the oldest waiting record.
        worst: dict[tuple[str, str], tuple[TopicPartition, int]] = {}
        for group, offs in committed.items():
            for tp, off in offs.items():
                lag = int(ends.get(tp, off)) - off
                key = (group, tp.topic)
                if lag > 0 and (key not in worst or lag > ends[worst[key][0]] - worst[key][1]):
                    worst[key] = (tp, off)
        stamps = await _oldest_timestamps(
            consumer, {(g, tp): off for (g, _), (tp, off) in worst.items()}, timeout_s
        )
        read_at_ms = int(time.time() * 1000)
        parts = tuple(
            PartitionLag(
                group,
                tp.topic,
                tp.partition,
                off,
                int(ends.get(tp, off)),
                stamps.get((group, tp)),
            )
            for group, offs in sorted(committed.items())
            for tp, off in sorted(offs.items())
        )
        return PipelineLag(
            parts, await _group_states(admin, committed), read_at_ms, pipeline_groups(settings)
        )
    finally:
        await consumer.stop()
        await admin.close()


def read_lag_sync(settings: Settings, timeout_s: float = 5.0) -> PipelineLag:
    """`read_lag` for synchronous callers (the Streamlit apps, the CLI)."""
    return asyncio.run(read_lag(settings, timeout_s))


def as_rows(lag: PipelineLag) -> list[dict[str, Any]]:
    """One row per partition with human column names, for tables."""
    rows: list[dict[str, Any]] = []
    for p in lag.partitions:
        state = lag.groups.get(p.group, GroupState())
        # Caught up: nothing waits (0 s, not a blank the page shows as "None"); lagging with
        # no broker timestamp to date the oldest record: unknown.
        waiting_s: float | None = 0.0
        if p.lag > 0:
            oldest = p.oldest_unprocessed_ms
            waiting_s = None if oldest is None else (lag.read_at_ms - oldest) / 1000.0
        rows.append(
            {
                "Consumer group": p.group,
                "State": state.state,
                "Members": state.members,
                "Topic": p.topic,
                "Partition": p.partition,
                "Committed offset": p.committed,
                "End offset": p.end_offset,
                "Lag (records)": p.lag,
                "Oldest waiting (s)": waiting_s,
            }
        )
    return rows
