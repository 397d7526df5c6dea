"""The stream worker's Prometheus series, attached from outside `streams.app`.

The agents are left untouched: each hands a batch of events to its `batch` method
(`StreamsApp.qoe`, the one pass over the raw topic, and `.detect`) and sends rejects through
`StreamsApp.dead_letter`. `instrument` wraps those bound methods on the instances, so batch
sizes, step latencies, throughput, failures, dead letters and freshness (Kafka append ->
batch done) are measured without a line in the hot code. A method that is renamed is logged
and skipped, never fatal: the worker keeps working, and the Prometheus acceptance test
notices the missing series.

Consumer lag is read from Kafka itself: end offset minus the group's committed offset per
partition, polled by a background thread with its own consumer (the worker's consumer is
Faust's, and aiokafka's admin `describe_consumer_groups` fails against Kafka 4.3).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import MINUTE_PARTIALS, StreamsApp, app_id
from streams.batch_feed import Fetch
from streamwatch import topics
from streamwatch.service_metrics import StageMetrics, stage_metrics, start_service_exporter
from streamwatch.settings import Settings

log = logging.getLogger(__name__)

# Agent (an attribute of StreamsApp) whose `batch` method is measured -> its stage.
BATCH_STEPS: dict[str, str] = {
    "qoe": "streams.qoe",
    "detect": "streams.detect",
}
BATCH_METHOD = "batch"
DEAD_LETTER_METHOD = "dead_letter"
LAG_STAGE = "streams"
# The topics the worker's group consumes (logical names): the one pass reads the raw topic
# only; telemetry.events.v1 is the sinks' input (their lag is theirs).
CONSUMED = (topics.RAW,)


def instrument(app: StreamsApp, settings: Settings, index: int = 0) -> int | None:
    """Wrap the agents' batch methods, start the exporter and (worker 0) the lag poller.

    Returns the exporter's port (None when exporters are off or the port is taken).
    """
    for agent, stage in BATCH_STEPS.items():
        _wrap_batch(getattr(app, agent, None), agent, stage_metrics(stage))
    _wrap_dead_letter(app, stage_metrics(LAG_STAGE))
    port = start_service_exporter(settings, "worker", index)
    if port is not None and index == 0:
        # One worker reports the group's lag; every worker doing it would count it N times.
        LagPoller(settings, stage_metrics(LAG_STAGE)).start()
    return port


def _wrap_batch(agent: object, name: str, metrics: StageMetrics) -> None:
    inner: Callable[[Sequence[Any]], Awaitable[None]] | None = getattr(agent, BATCH_METHOD, None)
    if inner is None:
        log.warning("streams metrics: StreamsApp.%s.batch is gone; not measured", name)
        return
    metrics.up(True)

    @functools.wraps(inner)
    async def measured(batch: Sequence[Any]) -> None:
        size, last = _size_and_last(batch)
        metrics.batch(size)
        try:
            with metrics.time("batch"):
                await inner(batch)
        except Exception as exc:
            metrics.error(f"batch_failed:{type(exc).__name__}")
            metrics.records(size, outcome="error")
            raise
        metrics.records(size)
        appended_s = _appended_s(last) if last is not None else None
        if appended_s is not None:
            # The newest event's age: how far behind its input this stage is now.
            metrics.freshness(time.time() - appended_s)

    setattr(agent, BATCH_METHOD, measured)


def _size_and_last(batch: Sequence[Any]) -> tuple[int, Any]:
    """How many records a batch holds, and its last: the one pass's batch is a list of
    fetches (`streams.batch_feed.Fetch`), the detect agent's a list of faust events."""
    if batch and isinstance(batch[0], Fetch):
        records = [f.records for f in batch if f.records]
        return sum(len(r) for r in records), records[-1][-1] if records else None
    return len(batch), batch[-1] if batch else None


def _appended_s(item: Any) -> float | None:
    """Kafka's append time of a batch item, in seconds: a faust event (its message's
    timestamp, in seconds) or an aiokafka record (the one pass: milliseconds)."""
    message = getattr(item, "message", None)
    if message is not None:
        ts: float | None = message.timestamp
        return ts
    ms: int | None = getattr(item, "timestamp", None)
    return ms / 1000.0 if ms is not None else None


def _wrap_dead_letter(app: StreamsApp, metrics: StageMetrics) -> None:
    inner: Callable[..., Awaitable[None]] | None = getattr(app, DEAD_LETTER_METHOD, None)
    if inner is None:
        log.warning("streams metrics: StreamsApp.%s is gone; not counted", DEAD_LETTER_METHOD)
        return

    @functools.wraps(inner)
    async def counted(value: bytes, reason: str, *args: Any, **kwargs: Any) -> None:
        await inner(value, reason, *args, **kwargs)
        metrics.deadletter(reason)

    setattr(app, DEAD_LETTER_METHOD, counted)


class LagPoller(threading.Thread):
    """Sets `streamwatch_consumer_lag` for the worker's consumer group every few seconds."""

    def __init__(self, settings: Settings, metrics: StageMetrics, every_s: float = 5.0) -> None:
        super().__init__(name="streams-lag", daemon=True)
        self.settings = settings
        self.metrics = metrics
        self.every_s = every_s

    def partitions(self) -> list[TopicPartition]:
        """Every partition the worker's group reads."""
        s = self.settings
        tps = [TopicPartition(s.topic(t), p) for t in CONSUMED for p in range(s.partitions_for(t))]
        return [*tps, TopicPartition(s.topic(MINUTE_PARTIALS), 0)]

    def run(self) -> None:
        asyncio.run(self._poll())

    async def _poll(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=app_id(self.settings),  # only to read its commits; it never joins
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while True:
                try:
                    await self.measure(consumer)
                except Exception as exc:  # Kafka away: keep the last values, try again
                    log.warning("streams lag: %s", exc)
                await asyncio.sleep(self.every_s)
        finally:
            await consumer.stop()

    async def measure(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """One round: lag per partition (committed offset missing = nothing read yet)."""
        tps = self.partitions()
        ends = await consumer.end_offsets(tps)
        lags: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            lags[tp] = max(0, int(ends.get(tp, 0)) - int(committed or 0))
            self.metrics.lag(tp.topic, tp.partition, lags[tp])
        return lags
