"""The Grafana pipeline dashboard against a real Prometheus scraping a real, demo-sized run.

A private copy of the demo (own topic prefix, data dir and ports: collector, exporters,
Prometheus) runs stub → collector → worker → both sinks for about a minute, with Debian's
Prometheus started by `infra` and scraping every service from its generated config. Then
every panel query of the provisioned pipeline dashboard must return data, and `up` must be
1 for every scraped service.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboards.grafana.dashboards import pipeline_dashboard
from infra.process import port_is_free
from infra.prometheus_server import PrometheusServer, query
from streamwatch.service_metrics import EXPORTER_OFFSETS, scrape_targets
from streamwatch.settings import Settings
from tests.infra_helpers import free_port
from tests.test_indexers_support import REPO, private_dir, scoped, sink_env

pytestmark = pytest.mark.integration

SERVICES = {"collector", "worker", "sink-search", "sink-warehouse", "stub"}
PIPELINE_STAGES = {
    "stub",
    "collector",
    "streams.qoe",  # the one pass: validate, dedupe, sessionize, roll up
    "sink.search",
    "sink.warehouse",
}
SETTLE_S = 150.0


def _free_block(size: int) -> int:
    """The first of `size` consecutive free ports (the exporters' documented layout)."""
    for _ in range(50):
        base = free_port()
        if all(port_is_free("127.0.0.1", base + i) for i in range(size)):
            return base
    raise AssertionError("no block of free ports found")


@dataclass
class Run:
    settings: Settings
    prometheus: PrometheusServer
    procs: dict[str, subprocess.Popen[bytes]]

    def logs(self) -> str:
        out = []
        for name in self.procs:
            path = self.settings.data_dir / f"{name}.log"
            tail = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
            out.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(out)


def _start(name: str, argv: list[str], env: dict[str, str], data_dir: Path) -> Any:
    log = (data_dir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, *argv], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )


def _post_bad_event(settings: Settings) -> None:
    # One event the collector must dead-letter: the dead-letter panel needs a reason.
    body = json.dumps([{"event_type": "heartbeat", "event_id": "not-a-uuid"}]).encode()
    url = f"http://127.0.0.1:{settings.collector_port}/v1/events"
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    assert answer["rejected"], answer


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        time.sleep(0.3)
    raise AssertionError(f"{what} not listening on {port}")


@pytest.fixture(scope="module")
def run(settings: Settings) -> Iterator[Run]:
    base = _free_block(max(EXPORTER_OFFSETS.values()) + 1)
    s = asyncio.run(
        scoped(
            settings,
            Path("."),
            data_dir=private_dir("prometheus"),
            kafka_partitions=3,
            metrics_port=base,
            collector_port=free_port(),
            prometheus_port=free_port(),
            prometheus_scrape_interval_s=1,
        )
    )
    prometheus = PrometheusServer(s)
    try:
        prometheus.up()
    except Exception as exc:  # the real server is the point of this test: never skip
        pytest.fail(f"Prometheus could not start: {exc}", pytrace=False)
    env = sink_env(
        s,
        STREAMWATCH_STREAMS_BATCH_WITHIN_S="0.2",
        STREAMWATCH_PROMETHEUS_PORT=str(s.prometheus_port),
    )
    cli = ["-m", "streamwatch.cli"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    result = Run(s, prometheus, procs)
    try:
        procs["collector"] = _start(
            "collector",
            [*cli, "collector", "--host", "127.0.0.1", "--port", str(s.collector_port)],
            env,
            s.data_dir,
        )
        _wait_port(s.collector_port, procs["collector"], "collector")
        procs["worker"] = _start("worker", [*cli, "worker"], env, s.data_dir)
        procs["sink-search"] = _start("sink-search", [*cli, "sink", "search"], env, s.data_dir)
        procs["sink-warehouse"] = _start(
            "sink-warehouse", [*cli, "sink", "warehouse"], env, s.data_dir
        )
        procs["stub"] = _start(
            "stub",
            [*cli, "stub", "run", "--target", "http", "--members", "300", "--rate", "100",
             "--duration", "600", "--warmup", "300", "--scenario", "normal", "--seed", "5",
             "--run-name", "prometheus-run"],
            env,
            s.data_dir,
        )  # fmt: skip
        _post_bad_event(s)
        yield result
    finally:
        for proc in reversed(procs.values()):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its handle
        prometheus.down()


def _has_data(result: list[dict[str, Any]]) -> bool:
    # A series whose newest value is a number (histogram_quantile over no increase is NaN).
    return any(not math.isnan(float(r["value"][1])) for r in result)


def _panel_queries(settings: Settings) -> list[tuple[str, str]]:
    board = pipeline_dashboard(settings)
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def _stages(settings: Settings) -> set[str]:
    expr = 'sum by (stage) (rate(streamwatch_records_total{outcome="ok"}[1m]))'
    return {r["metric"]["stage"] for r in query(settings.prometheus_url, expr)}


def test_every_pipeline_panel_query_returns_data(run: Run) -> None:
    queries = _panel_queries(run.settings)
    assert len(queries) >= 8
    missing: dict[str, str] = {}
    stages: set[str] = set()
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        missing = {}
        for title, expr in queries:
            if not _has_data(query(run.settings.prometheus_url, expr)):
                missing[title] = expr
        stages = _stages(run.settings)
        if not missing and stages >= PIPELINE_STAGES:
            break
        for name, proc in run.procs.items():
            assert proc.poll() is None, f"{name} exited early\n{run.logs()}"
        time.sleep(2)
    assert not missing, f"panels without data: {missing}\n{run.logs()}"
    # The throughput panel shows every stage of the pipeline, not just one service's.
    assert stages >= PIPELINE_STAGES, f"{stages}\n{run.logs()}"
    # Freshness is an age in seconds of a minute-long run, not a unit slip (ms, epoch).
    ages = query(
        run.settings.prometheus_url,
        "max by (stage) (histogram_quantile(0.5, rate(streamwatch_freshness_seconds_bucket[5m])))",
    )
    assert ages, "no freshness series"
    for r in ages:
        age = float(r["value"][1])
        assert math.isnan(age) or 0 <= age < 600, (r["metric"], age)
    lag = {
        (r["metric"]["stage"], r["metric"]["topic"].rsplit(".", 2)[-2])
        for r in query(run.settings.prometheus_url, "streamwatch_consumer_lag")
    }
    # The worker reads the raw topic only (validate and sessionize are one pass); the
    # events topic is read by the sinks, each reporting its own lag.
    assert ("streams", "raw") in lag, lag
    assert ("sink.search", "events") in lag and ("sink.warehouse", "events") in lag, lag
    assert not any(stage == "streams" and t == "events" for stage, t in lag), lag


def test_up_is_1_for_every_scraped_service(run: Run) -> None:
    expected = {t.address: t.service for t in scrape_targets(run.settings)}
    assert set(expected.values()) == SERVICES
    up: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        up = {
            r["metric"]["instance"]: float(r["value"][1])
            for r in query(run.settings.prometheus_url, "up")
        }
        if all(up.get(address) == 1 for address in expected):
            break
        time.sleep(1)
    for address, service in expected.items():
        assert up.get(address) == 1, f"{service} at {address}: up={up.get(address)}\n{run.logs()}"
    prometheus_self = f"127.0.0.1:{run.settings.prometheus_port}"
    assert up.get(prometheus_self) == 1
    assert set(up) == {*expected, prometheus_self}  # nothing scraped that is not the demo's
