"""The two sink processes: wire settings, consumer, sink step and loop together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from indexers import naming
from indexers.deadletters import DeadLetterWriter
from indexers.retry import RetryPolicy
from indexers.search_backend import SearchBackend
from indexers.search_factory import make_backend
from indexers.search_setup import apply_retention, ensure_search_ready
from indexers.search_sink import SEARCH_TOPICS, SearchSink
from indexers.sink_loop import LoopConfig, LoopStats, make_consumer, run_sink_loop
from indexers.warehouse_compact import compact
from indexers.warehouse_sink import WAREHOUSE_TOPICS, WarehouseSink
from streamwatch.settings import Settings

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
COMPACT_EVERY_S = 600.0
STATS_EVERY_S = 10.0


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM / SIGINT finish the current flush+commit, then exit."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def wait_for_search(backend: SearchBackend, settings: Settings, stop: asyncio.Event) -> str:
    """Set up templates/indices, retrying with backoff while the engine is down."""
    retry = RetryPolicy.from_settings(settings)
    attempt = 0
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(ensure_search_ready, backend, settings)
            return report.retention
        except Exception as exc:  # engine down or starting: wait, never give up
            log.warning("search engine not ready (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry.delay(attempt))
            attempt += 1
    return "not set up"


async def _periodic(stop: asyncio.Event, every_s: float, action: str, fn: object) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(fn)  # type: ignore[arg-type]
        except Exception as exc:  # a failed housekeeping round is retried next round
            log.warning("%s failed: %s", action, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def run_search_sink(settings: Settings, stop: asyncio.Event) -> LoopStats:
    """Consume events, sessions and incidents into the search engine until `stop`."""
    backend = make_backend(settings)
    retention = await wait_for_search(backend, settings, stop)
    log.info(
        "search sink: %s at %s, retention %s", backend.name, settings.search_endpoint, retention
    )
    deadletters = DeadLetterWriter(settings)
    await deadletters.start()
    sink = SearchSink(settings, backend, deadletters, chunk_size=settings.sink_batch_max_records)
    consumer = make_consumer(
        settings.bootstrap_servers,
        [settings.topic(t) for t in SEARCH_TOPICS],
        naming.consumer_group(settings, "search"),
        settings.sink_batch_max_records,
    )
    await consumer.start()
    stats = LoopStats()
    tasks = [asyncio.create_task(_log_stats(stop, sink.name, stats, lambda: vars(sink.stats)))]
    if retention.startswith("fallback"):
        tasks.append(
            asyncio.create_task(
                _periodic(
                    stop, RETENTION_EVERY_S, "retention", lambda: apply_retention(backend, settings)
                )
            )
        )
    try:
        config = LoopConfig(settings.sink_batch_max_records, settings.sink_batch_max_wait_ms / 1000)
        await run_sink_loop(
            consumer, sink, stop, config, RetryPolicy.from_settings(settings), stats
        )
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await consumer.stop()
        await deadletters.stop()
        backend.close()
    log.info("search sink stopped: %s %s", vars(stats), vars(sink.stats))
    return stats


async def run_warehouse_sink(settings: Settings, stop: asyncio.Event) -> LoopStats:
    """Consume events, sessions, minute rollups and incidents into Parquet until `stop`."""
    deadletters = DeadLetterWriter(settings)
    await deadletters.start()
    sink = WarehouseSink(settings, deadletters)
    consumer = make_consumer(
        settings.bootstrap_servers,
        [settings.topic(t) for t in WAREHOUSE_TOPICS],
        naming.consumer_group(settings, "warehouse"),
        settings.warehouse_flush_max_records,
    )
    await consumer.start()
    stats = LoopStats()
    stats_task = asyncio.create_task(_log_stats(stop, sink.name, stats, lambda: vars(sink.stats)))
    compaction = asyncio.create_task(
        _periodic(stop, COMPACT_EVERY_S, "compaction", lambda: compact(settings))
    )
    log.info("warehouse sink: writing %s", sink.root)
    try:
        config = LoopConfig(
            settings.warehouse_flush_max_records, settings.warehouse_flush_interval_s
        )
        await run_sink_loop(
            consumer, sink, stop, config, RetryPolicy.from_settings(settings), stats
        )
    finally:
        stop.set()
        stats_task.cancel()
        compaction.cancel()
        await consumer.stop()
        await deadletters.stop()
    log.info("warehouse sink stopped: %s %s", vars(stats), vars(sink.stats))
    return stats


async def _log_stats(stop: asyncio.Event, name: str, stats: LoopStats, more: object) -> None:
    started = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATS_EVERY_S)
        log.info(
            "%s: %.0fs records=%d flushes=%d backpressure=%d %s",
            name,
            time.monotonic() - started,
            stats.records,
            stats.flushes,
            stats.backpressure_waits,
            more(),  # type: ignore[operator]
        )
