"""The consumer loop every sink runs: poll → add → flush → commit, in that order.

Shaped after arroyo / quix-streams: a sink is a small step with `add` and `flush`; the loop
commits offsets as the explicit last step, only after `flush` returned (the store has
acknowledged). A sink that cannot take more raises `Backpressure`: the loop pauses every
assigned partition, keeps polling (so the group membership stays alive), waits per the retry
policy and calls `flush` again with the same pending work. Nothing is dropped, nothing is
committed early.

The loop is pipelined: a flush runs as a task while the loop polls and adds the next batch
(a sink's `flush` writes only what was pending when it was called). At most one flush is in
flight; a batch's offsets are committed only after its own flush returned, in order. When a
flush in flight fails with `Backpressure`, its unwritten records are back in the sink ahead
of the newer ones, and both batches are retried and then committed together.
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
        """Write what is pending when called; on return it is durable.

        `add` may run while this awaits: what it adds waits for the next flush. Raise
        `Backpressure` to retry, with the unwritten work put back ahead of anything newer.
        """
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
    """Run until `stop` is set; returns the counters. The consumer must be started.

    Pipelined: while one batch's `flush` is in flight (the store is working), the loop polls
    and adds the next batch. Batches settle in order and a batch's offsets are committed only
    after its own flush returned, so a commit never covers an unacknowledged record.
    """
    stats = stats or LoopStats()
    metrics = stage_metrics(sink.name)
    metrics.up(True)
    # Known error series exist from the start (at 0), so rates and alerts see "no errors"
    # rather than "no data".
    for reason in ("backpressure", "commit_failed"):
        metrics.error(reason, 0)
    run = _Run(consumer, sink, stop, retry, stats, metrics)
    batch = _Batch()
    inflight: _InFlight | None = None
    try:
        while not stop.is_set():
            polled = await consumer.getmany(
                timeout_ms=config.poll_timeout_ms, max_records=config.max_records
            )
            for tp, records in polled.items():
                if records:
                    sink.add(records)
                    batch.took(tp, records)
                    stats.records += len(records)
            if inflight is not None and (inflight.task.done() or batch.ready(sink, config)):
                # At most one flush in flight: a full next batch waits for the store.
                if not await run.settle(inflight, batch):
                    return stats  # stopped during an outage: nothing committed, nothing lost
                inflight = None
            if batch.ready(sink, config):
                inflight = run.start(batch)
                batch = _Batch()
        pending, inflight = inflight, None
        await run.finish(pending, batch)
        return stats
    finally:
        if inflight is not None and not inflight.task.done():
            # Cancelled from outside: the flush's outcome is unknown, so nothing is committed.
            inflight.task.cancel()


@dataclass
class _Batch:
    """Offsets and newest Kafka timestamps of the records added since the last flush."""

    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    appended_ms: dict[TopicPartition, int] = field(default_factory=dict)
    size: int = 0
    started: float | None = None

    def took(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        """Note records added to the sink."""
        self.offsets[tp] = records[-1].offset + 1
        self.appended_ms[tp] = records[-1].timestamp
        if self.started is None:
            self.started = time.monotonic()

    def ready(self, sink: Sink, config: LoopConfig) -> bool:
        """Full, or the oldest record has waited `max_wait_s`."""
        if not self.offsets or self.started is None:
            return False
        full = sink.pending() >= config.max_records
        return full or time.monotonic() - self.started >= config.max_wait_s

    def absorb(self, newer: _Batch) -> None:
        """Take `newer`'s records in (a later offset of a partition supersedes), emptying it."""
        self.offsets.update(newer.offsets)
        self.appended_ms.update(newer.appended_ms)
        newer.offsets, newer.appended_ms, newer.started = {}, {}, None


@dataclass
class _InFlight:
    """A batch whose flush is running."""

    batch: _Batch
    task: asyncio.Task[None]


@dataclass
class _Run:
    """One loop's collaborators, so that its steps stay small."""

    consumer: AIOKafkaConsumer
    sink: Sink
    stop: asyncio.Event
    retry: RetryPolicy
    stats: LoopStats
    metrics: StageMetrics

    def start(self, batch: _Batch) -> _InFlight:
        """Start flushing everything pending now; `batch` holds its offsets."""
        batch.size = self.sink.pending()
        return _InFlight(batch, asyncio.create_task(self._timed_flush()))

    async def _timed_flush(self) -> None:
        with self.metrics.time("flush"):
            await self.sink.flush()

    async def settle(self, inflight: _InFlight, newer: _Batch) -> bool:
        """Wait for the flush in flight; commit its offsets only if it succeeded.

        After `Backpressure` the sink holds the failed batch's unwritten records ahead of
        those added since (`newer`): everything pending is retried with backoff and both
        batches' offsets are committed together once that is acknowledged. False: stopped
        during an outage (nothing committed). Any other exception propagates uncommitted.
        """
        try:
            await inflight.task
        except Backpressure as exc:
            self.paused(exc)
            inflight.batch.absorb(newer)
            inflight.batch.size = self.sink.pending()
            if not await self.flush_until_done(attempt=1):
                return False
        else:
            self.stats.flushes += 1
            self.resumed()
        await self.done(inflight.batch)
        return True

    async def finish(self, inflight: _InFlight | None, batch: _Batch) -> None:
        """On stop: settle the flush in flight, then flush and commit the rest once."""
        if inflight is not None and not await self.settle(inflight, batch):
            return  # stopped during an outage: nothing more committed
        if batch.offsets:
            batch.size = self.sink.pending()
            if await self.flush_until_done(final=True):
                await self.done(batch)

    async def done(self, batch: _Batch) -> None:
        """Count a flushed batch and commit its offsets."""
        _flushed(self.metrics, batch.size, batch.appended_ms)
        await _commit(self.consumer, batch.offsets, self.stats, self.metrics)

    def paused(self, exc: Backpressure) -> None:
        """Record a refused flush (the first one of an outage is logged)."""
        self.metrics.error("backpressure")
        self.metrics.up(False)
        self.stats.backpressure_waits += 1
        self.stats.last_error = str(exc)
        if self.stats.paused_since is None:
            self.stats.paused_since = time.monotonic()
            log.warning("%s: backpressure, pausing consumption: %s", self.sink.name, exc)

    def resumed(self) -> None:
        """The store took a flush: leave the paused state if we were in it."""
        self.metrics.up(True)
        if self.stats.paused_since is not None:
            log.warning(
                "%s: store is back after %.1fs, resuming",
                self.sink.name,
                time.monotonic() - self.stats.paused_since,
            )
            self.stats.paused_since = None
            self.consumer.resume(*self.consumer.assignment())

    async def flush_until_done(self, final: bool = False, attempt: int = 0) -> bool:
        """Flush everything pending, waiting paused between refusals; False if stopped.

        `attempt` > 0: a flush was refused just before (wait before the first try).
        """
        while True:
            if attempt:
                if self.stop.is_set() or final:
                    return False
                await _wait_paused(self.consumer, self.retry.delay(attempt - 1))
            try:
                await self._timed_flush()
            except Backpressure as exc:
                self.paused(exc)
                attempt += 1
                continue
            self.stats.flushes += 1
            self.resumed()
            return True


def _flushed(metrics: StageMetrics, batch: int, appended_ms: dict[TopicPartition, int]) -> None:
    # One freshness sample per partition and batch: the newest record's age is what a
    # reader of the store waits for, and per-record samples would cost the hot path.
    metrics.batch(batch)
    metrics.records(batch)
    now_ms = time.time() * 1000
    for ts in appended_ms.values():
        metrics.freshness((now_ms - ts) / 1000)


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
