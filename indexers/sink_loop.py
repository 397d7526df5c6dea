"""The consumer loop every sink runs: poll → add → flush → commit, in that order.

Shaped after arroyo / quix-streams: a sink is a small step with `add` and `flush`; the loop
commits offsets as the explicit last step, only after `flush` returned (the store has
acknowledged). A sink that cannot take more raises `Backpressure`: the loop pauses every
assigned partition, keeps polling (so the group membership stays alive), waits per the retry
policy and calls `flush` again with the same pending work. Nothing is dropped, nothing is
committed early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from indexers.retry import RetryPolicy
from streamwatch.service_metrics import StageMetrics, stage_metrics

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class Backpressure(Exception):
    """The sink cannot complete the pending work now; call `flush` again later."""


class Sink(Protocol):
    """One step that writes records to a store."""

    name: str

    def add(self, records: Sequence[Record]) -> None:
        """Take records into the pending batch (no I/O)."""
        ...

    async def flush(self) -> None:
        """Write the pending batch; on return it is durable. Raise `Backpressure` to retry."""
        ...

    def pending(self) -> int:
        """Records taken but not yet flushed."""
        ...


@dataclass
class LoopStats:
    """Progress counters of one loop (logged, and read by tests)."""

    flushes: int = 0
    records: int = 0
    backpressure_waits: int = 0
    commits_failed: int = 0
    last_error: str = ""
    paused_since: float | None = field(default=None)


@dataclass(frozen=True)
class LoopConfig:
    """How the loop batches."""

    max_records: int = 5000
    max_wait_s: float = 0.5
    poll_timeout_ms: int = 200


async def run_sink_loop(
    consumer: AIOKafkaConsumer,
    sink: Sink,
    stop: asyncio.Event,
    config: LoopConfig,
    retry: RetryPolicy,
    stats: LoopStats | None = None,
) -> LoopStats:
    """Run until `stop` is set; returns the counters. The consumer must be started."""
    stats = stats or LoopStats()
    metrics = stage_metrics(sink.name)
    metrics.up(True)
    # Known error series exist from the start (at 0), so rates and alerts see "no errors"
    # rather than "no data".
    for reason in ("backpressure", "commit_failed"):
        metrics.error(reason, 0)
    offsets: dict[TopicPartition, int] = {}
    appended_ms: dict[TopicPartition, int] = {}  # newest record's Kafka timestamp per partition
    batch_started: float | None = None
    while not stop.is_set():
        polled = await consumer.getmany(
            timeout_ms=config.poll_timeout_ms, max_records=config.max_records
        )
        for tp, records in polled.items():
            if records:
                sink.add(records)
                offsets[tp] = records[-1].offset + 1
                appended_ms[tp] = records[-1].timestamp
                stats.records += len(records)
                if batch_started is None:
                    batch_started = time.monotonic()
        if not offsets or batch_started is None:
            continue
        full = sink.pending() >= config.max_records
        due = time.monotonic() - batch_started >= config.max_wait_s
        if not (full or due):
            continue
        batch = sink.pending()
        if not await _flush_until_done(consumer, sink, stop, retry, stats, metrics=metrics):
            return stats  # stopped during an outage: nothing committed, nothing lost
        _flushed(metrics, batch, appended_ms)
        await _commit(consumer, offsets, stats, metrics)
        offsets, appended_ms = {}, {}
        batch_started = None
    batch = sink.pending()
    if offsets and await _flush_until_done(
        consumer, sink, stop, retry, stats, final=True, metrics=metrics
    ):
        _flushed(metrics, batch, appended_ms)
        await _commit(consumer, offsets, stats, metrics)
    return stats


def _flushed(metrics: StageMetrics, batch: int, appended_ms: dict[TopicPartition, int]) -> None:
    # One freshness sample per partition and batch: the newest record's age is what a
    # reader of the store waits for, and per-record samples would cost the hot path.
    metrics.batch(batch)
    metrics.records(batch)
    now_ms = time.time() * 1000
    for ts in appended_ms.values():
        metrics.freshness((now_ms - ts) / 1000)


async def _flush_until_done(
    consumer: AIOKafkaConsumer,
    sink: Sink,
    stop: asyncio.Event,
    retry: RetryPolicy,
    stats: LoopStats,
    final: bool = False,
    metrics: StageMetrics | None = None,
) -> bool:
    metrics = metrics or stage_metrics(sink.name)
    attempt = 0
    while True:
        try:
            with metrics.time("flush"):
                await sink.flush()
        except Backpressure as exc:
            metrics.error("backpressure")
            metrics.up(False)
            stats.backpressure_waits += 1
            stats.last_error = str(exc)
            if stats.paused_since is None:
                stats.paused_since = time.monotonic()
                log.warning("%s: backpressure, pausing consumption: %s", sink.name, exc)
            if stop.is_set() or final:
                return False
            await _wait_paused(consumer, retry.delay(attempt))
            attempt += 1
            continue
        stats.flushes += 1
        metrics.up(True)
        if stats.paused_since is not None:
            log.warning(
                "%s: store is back after %.1fs, resuming",
                sink.name,
                time.monotonic() - stats.paused_since,
            )
            stats.paused_since = None
            consumer.resume(*consumer.assignment())
        return True


async def _wait_paused(consumer: AIOKafkaConsumer, delay_s: float) -> None:
    """Wait `delay_s` while polling paused partitions, so the group does not evict us."""
    deadline = time.monotonic() + delay_s
    while True:
        consumer.pause(*consumer.assignment())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        polled = await consumer.getmany(timeout_ms=max(1, int(min(remaining, 1.0) * 1000)))
        # A rebalance may hand us new, unpaused partitions: put anything fetched back.
        for tp, records in polled.items():
            if records:
                consumer.seek(tp, records[0].offset)


async def _commit(
    consumer: AIOKafkaConsumer,
    offsets: dict[TopicPartition, int],
    stats: LoopStats,
    metrics: StageMetrics,
) -> None:
    assigned = consumer.assignment()
    mine = {tp: off for tp, off in offsets.items() if tp in assigned}
    if not mine:
        return
    try:
        with metrics.time("commit"):
            await consumer.commit(mine)
    except (CommitFailedError, KafkaError) as exc:
        # A rebalance took the partitions: their new owner re-delivers; the sinks are
        # idempotent, so the only cost is duplicate work, never loss.
        stats.commits_failed += 1
        metrics.error("commit_failed")
        log.warning("commit failed (%s); records will be re-delivered", exc)
        return
    for tp, off in mine.items():
        # The consumer's last fetch tells the partition's end: lag without an admin call.
        end = consumer.highwater(tp)
        if end is not None:
            metrics.lag(tp.topic, tp.partition, max(0, end - off))


def make_consumer(
    bootstrap: str, topics: Sequence[str], group_id: str, max_records: int
) -> AIOKafkaConsumer:
    """A manual-commit consumer for a sink (`enable_auto_commit=False`, from earliest)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        isolation_level="read_committed",
    )
