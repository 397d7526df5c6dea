"""A run replayed (same event ids) adds nothing, at once and after hours of event time.

Real Kafka, a real worker process, both real sinks: run A is processed; A is sent again at
once; run B, starting hours of event time after A ended, is processed (A's sessions are
then closed and their ids replaced by markers, streams.dedupe); A is sent a third time.
Each replay must leave the summaries, rollups and incidents topics and both stores as they
were, and `reconcile` must report ok, counting the replays as duplicates.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from indexers.services import run_search_sink, run_warehouse_sink
from ops.reconcile import ReconcileReport, reconcile, render_report
from platform_stub.generator import RunOptions, StubRun
from streams.progress import checkpoints, progress, stats_totals
from streamwatch import topics
from streamwatch.settings import Settings
from tests.streams_helpers import produce_raw, read_all
from tests.test_indexers_support import (
    REPO,
    SinkProcess,
    cleanup_search,
    private_dir,
    scoped,
    sink_env,
    wait_until,
)

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
Records = list[tuple[bytes | None, bytes]]


@pytest.fixture
async def s(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(settings, tmp_path, data_dir=private_dir("replay-dedupe"))
    yield scoped_settings
    cleanup_search(scoped_settings)


@pytest.fixture
def worker(s: Settings) -> Iterator[SinkProcess]:
    env = sink_env(
        s, STREAMWATCH_STREAMS_BATCH_WITHIN_S="0.2", STREAMWATCH_STREAMS_SEEN_PURGE_EVERY_S="0.5"
    )
    log = s.data_dir / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.worker", "--loglevel", "WARNING"],
        env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    holder = SinkProcess("worker", env, log)
    holder.proc = proc
    yield holder
    holder.stop()


def stub(seed: int, start_ms: int | None = None) -> Records:
    run = StubRun(RunOptions(seed=seed, members=300, rate=60, duration_s=60, start_ms=start_ms))
    out: Records = []
    for batch in run.batches():
        out += [(k.encode(), v.encode()) for k, v in zip(batch.keys, batch.lines, strict=True)]
    return out


def last_event_ms(records: Records) -> int:
    return max(
        int(datetime.fromisoformat(json.loads(v)["event_time"]).timestamp() * 1000)
        for _, v in records
    )


async def outputs(s: Settings) -> dict[str, int]:
    """How many messages each output of the stage holds."""
    return {
        name: len(await read_all(s, name))
        for name in (topics.SESSIONS, topics.MINUTE, topics.INCIDENTS)
    }


async def stats(s: Settings) -> dict[str, int]:
    """The validator's reconciliation counters, summed over partitions."""
    return stats_totals(await checkpoints(s))


async def settle(s: Settings, valid: int) -> ReconcileReport:
    """Wait until the stage is done with its input and both stores hold `valid` events."""
    holder: list[ReconcileReport] = []

    async def ready() -> bool:
        now = await progress(s)
        if not (now.done and now.detected):
            return False
        report = await reconcile(s)
        holder[:] = [report]
        return (
            not report.gaps
            and report.value("streams_seen") == report.value("raw")
            and report.value("indexed") == report.value("warehoused") == valid
        )

    try:
        await wait_until(ready, timeout_s=240, interval_s=1.0, what="the pipeline to settle")
    except AssertionError as exc:
        last = render_report(holder[0]) if holder else "no report"
        raise AssertionError(f"{exc}; last report:\n{last}") from None
    return holder[0]


async def test_replayed_runs_add_nothing_at_once_and_hours_later(
    s: Settings, worker: SinkProcess
) -> None:
    run_a = stub(seed=41)
    run_b = stub(seed=42, start_ms=last_event_ms(run_a) + 2 * HOUR_MS)
    a, b = len(run_a), len(run_b)
    assert a > 1000 and b > 1000
    stop = asyncio.Event()
    sinks = [
        asyncio.create_task(run_search_sink(s, stop)),
        asyncio.create_task(run_warehouse_sink(s, stop)),
    ]
    try:
        await produce_raw(s, run_a)
        await settle(s, a)
        after_a = await outputs(s)
        assert after_a[topics.SESSIONS] > 0 and after_a[topics.MINUTE] > 0

        # 1. The same run again, at once.
        await produce_raw(s, run_a)
        report = await settle(s, a)
        assert await outputs(s) == after_a
        st = await stats(s)
        assert (st["valid"], st["duplicates"], st["dead_lettered"]) == (a, a, 0)
        assert report.value("streams_valid") == a and report.value("duplicates_dropped") == a

        # 2. A later run moves event time on by hours: A's sessions are closed for good.
        await produce_raw(s, run_b)
        await settle(s, a + b)
        after_b = await outputs(s)
        assert after_b[topics.SESSIONS] > after_a[topics.SESSIONS]

        # 3. A once more, now hours of event time after it ended.
        await produce_raw(s, run_a)
        report = await settle(s, a + b)
        assert await outputs(s) == after_b
        st = await stats(s)
        assert (st["valid"], st["duplicates"], st["dead_lettered"]) == (a + b, 2 * a, 0)
        # The third copy met closed sessions' markers, not ids: kept, tagged late.
        assert st["late_closed"] >= a
        assert report.value("streams_seen") == 3 * a + b
    finally:
        stop.set()
        await asyncio.gather(*sinks)
    assert worker.proc is not None and worker.proc.poll() is None, "worker died"

    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "reconcile", "--json"],
        env=sink_env(s), cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    as_json = json.loads(proc.stdout)
    assert as_json["ok"] is True and as_json["gaps"] == []
    assert as_json["counts"]["duplicates_dropped"]["value"] == 2 * a
