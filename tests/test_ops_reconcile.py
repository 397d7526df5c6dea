"""`streamwatch reconcile` on a real run: stub → Kafka → streams worker → both sinks, with
each real search engine (OpenSearch, Elasticsearch) behind the search sink."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from indexers.services import run_search_sink, run_warehouse_sink
from ops.reconcile import ReconcileReport, reconcile, render_report
from streamwatch.settings import Settings
from tests.conftest import on_backend
from tests.infra_helpers import free_port
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


@pytest.fixture
async def s(
    settings: Settings, tmp_path: Path, search_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Settings]:
    scoped_settings = await scoped(
        on_backend(settings, search_backend, request),
        tmp_path,
        data_dir=private_dir("reconcile"),
        kafka_partitions=6,
        # A port no collector listens on: the live demo's collector (8088) is not this run's.
        collector_port=free_port(),
    )
    yield scoped_settings
    cleanup_search(scoped_settings)


@pytest.fixture
def worker(s: Settings) -> Iterator[SinkProcess]:
    env = sink_env(s, STREAMWATCH_STREAMS_BATCH_WITHIN_S="0.2")
    log = s.data_dir / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.worker", "--loglevel", "WARNING"],
        env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    holder = SinkProcess("worker", env, log)
    holder.proc = proc
    yield holder
    holder.stop()


def _stub(s: Settings, run: str, events: int, seed: int) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "stub", "run", "--target", "kafka",
         "--members", "200", "--max-events", str(events), "--speed", "0", "--start", "now",
         "--seed", str(seed), "--run-name", run],
        env=sink_env(s), cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, object] = json.loads(
        (s.data_dir / "stub" / run / "summary.json").read_text()
    )
    return summary


async def _settled(s: Settings, check: object) -> ReconcileReport:
    holder: list[ReconcileReport] = []

    async def ready() -> bool:
        report = await reconcile(s)
        holder[:] = [report]
        return bool(check(report))  # type: ignore[operator]

    try:
        await wait_until(ready, timeout_s=240, interval_s=1.0, what="reconciliation to settle")
    except AssertionError as exc:
        last = render_report(holder[0]) if holder else "no report"
        raise AssertionError(f"{exc}; last report:\n{last}") from None
    return holder[0]


async def test_reconcile_accounts_for_every_stage_and_names_the_gap(
    s: Settings, worker: SinkProcess
) -> None:
    first = _stub(s, "run-1", 3000, seed=3)
    stop = asyncio.Event()
    search = asyncio.create_task(run_search_sink(s, stop))
    warehouse = asyncio.create_task(run_warehouse_sink(s, stop))
    try:
        report = await _settled(
            s,
            lambda r: (
                r.value("produced") == r.value("streams_seen") == r.value("raw")
                and not r.gaps
                and r.value("indexed") == r.value("warehoused") == r.value("streams_valid")
                # The topic's offsets and the worker's stats are read at different moments.
                and r.value("validated") == r.value("streams_valid")
            ),
        )
    finally:
        stop.set()
        await asyncio.gather(search, warehouse)
    assert report.value("produced") == first["delivered"]
    assert report.value("streams_valid") == report.value("validated")
    text = render_report(report)
    assert "no gap" in text and "unknown" in text  # the collector is not running here

    # Now the search sink is down: new events reach the warehouse, not the search engine.
    _stub(s, "run-2", 1000, seed=4)
    wh_stop = asyncio.Event()
    warehouse = asyncio.create_task(run_warehouse_sink(s, wh_stop))
    try:
        report = await _settled(
            s,
            lambda r: (
                r.value("streams_seen") == r.value("raw")
                and r.value("warehoused") == r.value("streams_valid")
                and any(g.stage == "search sink" for g in r.gaps)
            ),
        )
    finally:
        wh_stop.set()
        await warehouse
    [gap] = report.gaps
    assert gap.stage == "search sink"
    assert gap.missing == (report.value("streams_valid") or 0) - (report.value("indexed") or 0)
    assert gap.missing > 0

    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "reconcile", "--json"],
        env=sink_env(s), cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1  # a gap is a non-zero exit, for scripts and CI
    as_json = json.loads(proc.stdout)
    assert as_json["ok"] is False
    assert [g["stage"] for g in as_json["gaps"]] == ["search sink"]
    delivered = first["delivered"]
    assert delivered is not None
    assert as_json["counts"]["produced"]["value"] == delivered + 1000
