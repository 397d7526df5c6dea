"""At-least-once delivery into idempotent stores: duplicates and kill -9 of each sink."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from indexers.services import run_search_sink, run_warehouse_sink
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.event_json import events
from tests.test_indexers_support import (
    SinkProcess,
    cleanup_search,
    produce,
    scoped,
    search_count,
    search_ids,
    sink_env,
    wait_until,
    warehouse_scalar,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def s(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(settings, tmp_path)
    yield scoped_settings
    cleanup_search(scoped_settings)


async def test_every_event_delivered_twice_no_duplicates_in_either_store(s: Settings) -> None:
    produced = list(events(2000, seed=31))
    # Every event twice: once in order, then the whole set again (a replay upstream).
    await produce(s, topics.EVENTS, produced + produced, "session_id")
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_search_sink(s, stop)),
        asyncio.create_task(run_warehouse_sink(s, stop)),
    ]
    try:
        await wait_until(lambda: search_count(s) == 2000, what="search has 2000")
        await wait_until(
            lambda: warehouse_scalar(s, "SELECT count(*) FROM events_all") == 4000,
            what="warehouse stored both deliveries",
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    ids = search_ids(s)
    assert len(ids) == len(set(ids)) == 2000
    assert set(ids) == {e["event_id"] for e in produced}
    assert warehouse_scalar(s, "SELECT count(*) FROM events") == 2000
    assert warehouse_scalar(s, "SELECT count(DISTINCT event_id) FROM events") == 2000
    assert warehouse_scalar(s, "SELECT count(*) FROM errors") == sum(
        e["event_type"] == "error" for e in produced
    )


async def _kill9_mid_run(s: Settings, tmp_path: Path, kind: str, progress: object) -> None:
    """Produce in waves, SIGKILL the sink once it made some progress, restart, finish."""
    produced = list(events(20000, seed=41 if kind == "search" else 42))
    env = sink_env(s)
    first = SinkProcess(kind, env, tmp_path / f"{kind}-1.log").start()
    try:
        await produce(s, topics.EVENTS, produced[:10000], "session_id")
        producing = asyncio.create_task(produce(s, topics.EVENTS, produced[10000:], "session_id"))
        await wait_until(progress, timeout_s=180, interval_s=0.05, what=f"{kind} progress")  # type: ignore[arg-type]
        first.kill9()
        await producing
    finally:
        if first.proc is not None and first.proc.poll() is None:
            first.kill9()
    second = SinkProcess(kind, env, tmp_path / f"{kind}-2.log").start()
    try:
        if kind == "search":
            await wait_until(lambda: search_count(s) == 20000, timeout_s=240, what="all indexed")
        else:
            await wait_until(
                lambda: warehouse_scalar(s, "SELECT count(*) FROM events") == 20000,
                timeout_s=240,
                what="all warehoused",
            )
    finally:
        assert second.stop() == 0, second.log()
    # The restarted sink had work left: the kill really came mid-run.
    resumed = re.search(r"sink stopped: \{'flushes': \d+, 'records': (\d+)", second.log())
    assert resumed is not None and int(resumed.group(1)) > 0, second.log()
    want = {e["event_id"] for e in produced}
    if kind == "search":
        ids = search_ids(s)
        assert len(ids) == len(set(ids)) == 20000 and set(ids) == want
    else:
        assert warehouse_scalar(s, "SELECT count(DISTINCT event_id) FROM events") == 20000
        got = warehouse_scalar(s, "SELECT list(event_id) FROM events")
        assert set(got) == want


async def test_kill9_search_sink_mid_batch_then_restart_no_loss_no_duplicates(
    s: Settings, tmp_path: Path
) -> None:
    def some_indexed() -> bool:
        return 0 < search_count(s) < 20000

    await _kill9_mid_run(s, tmp_path, "search", some_indexed)


async def test_kill9_warehouse_sink_mid_batch_then_restart_no_loss_no_duplicates(
    s: Settings, tmp_path: Path
) -> None:
    def some_files() -> bool:
        root = s.warehouse_dir
        assert root is not None
        return any((root / "events").glob("date=*/hour=*/*.parquet"))

    await _kill9_mid_run(s, tmp_path, "warehouse", some_files)
