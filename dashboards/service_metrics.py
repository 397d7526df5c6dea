"""Prometheus metrics for workers and sinks, and their HTTP exporter.

One small API so every box exposes the same series, which the provisioned Grafana
"pipeline health" dashboard reads:

    from dashboards.service_metrics import stage_metrics, start_exporter

    start_exporter(settings)                 # http://<metrics_host>:<metrics_port>/metrics
    m = stage_metrics("sink.warehouse")      # one per stage / sink
    with m.time("flush"):                    # latency histogram per step
        write(batch)
    m.batch(len(batch))                      # batch-size histogram
    m.records(len(batch))                    # throughput (outcome="ok")
    m.records(3, outcome="error"); m.error("timeout")
    m.deadletter("schema_invalid")           # dead-letter counter by reason
    m.lag(topic, partition, 42)              # consumer lag gauge
    m.freshness(seconds)                     # event time -> done, histogram
    m.up(True)                               # sink/stage state gauge (1 up, 0 down)

Series (label `stage` on all): streamwatch_records_total{outcome},
streamwatch_errors_total{reason}, streamwatch_deadletters_total{reason},
streamwatch_batch_size, streamwatch_stage_latency_seconds{step},
streamwatch_consumer_lag{topic,partition}, streamwatch_freshness_seconds, streamwatch_up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from streamwatch.settings import Settings

BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 50000)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass(frozen=True)
class MetricFamilies:
    """The metric families, registered once per registry."""

    records: Counter
    errors: Counter
    deadletters: Counter
    batch_size: Histogram
    latency: Histogram
    lag: Gauge
    freshness: Histogram
    up: Gauge


def _families(registry: CollectorRegistry) -> MetricFamilies:
    r = registry
    return MetricFamilies(
        records=Counter(
            "streamwatch_records", "Records handled by a stage.", ["stage", "outcome"], registry=r
        ),
        errors=Counter("streamwatch_errors", "Errors by reason.", ["stage", "reason"], registry=r),
        deadletters=Counter(
            "streamwatch_deadletters",
            "Records sent to the dead-letter topic.",
            ["stage", "reason"],
            registry=r,
        ),
        batch_size=Histogram(
            "streamwatch_batch_size",
            "Records per batch.",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=r,
        ),
        latency=Histogram(
            "streamwatch_stage_latency_seconds",
            "Time per step of a stage (decode, process, flush, commit...).",
            ["stage", "step"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ),
        lag=Gauge(
            "streamwatch_consumer_lag",
            "End offset minus committed offset.",
            ["stage", "topic", "partition"],
            registry=r,
        ),
        freshness=Histogram(
            "streamwatch_freshness_seconds",
            "Event time to done by this stage (end-to-end freshness at a sink).",
            ["stage"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        ),
        up=Gauge(
            "streamwatch_up", "1 when the stage/sink is healthy, 0 when not.", ["stage"], registry=r
        ),
    )


_BY_REGISTRY: dict[int, MetricFamilies] = {}


def families(registry: CollectorRegistry = REGISTRY) -> MetricFamilies:
    """The families on `registry` (created on first use; safe to call repeatedly)."""
    key = id(registry)
    if key not in _BY_REGISTRY:
        _BY_REGISTRY[key] = _families(registry)
    return _BY_REGISTRY[key]


@dataclass(frozen=True)
class StageMetrics:
    """The metrics of one stage or sink (all series carry `stage`)."""

    stage: str
    fam: MetricFamilies

    def records(self, n: int = 1, outcome: str = "ok") -> None:
        """Count `n` records handled with `outcome` (ok | error | deadletter | duplicate)."""
        self.fam.records.labels(self.stage, outcome).inc(n)

    def error(self, reason: str, n: int = 1) -> None:
        """Count errors by machine-readable reason."""
        self.fam.errors.labels(self.stage, reason).inc(n)

    def deadletter(self, reason: str, n: int = 1) -> None:
        """Count records sent to the dead-letter topic."""
        self.fam.deadletters.labels(self.stage, reason).inc(n)

    def batch(self, size: int) -> None:
        """Observe one batch's size."""
        self.fam.batch_size.labels(self.stage).observe(size)

    def observe(self, step: str, seconds: float) -> None:
        """Observe one step's duration."""
        self.fam.latency.labels(self.stage, step).observe(seconds)

    @contextmanager
    def time(self, step: str) -> Iterator[None]:
        """Time the block as `step` (monotonic clock; recorded even if it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.observe(step, time.perf_counter() - t0)

    def lag(self, topic: str, partition: int, value: int) -> None:
        """Set the consumer lag of one partition."""
        self.fam.lag.labels(self.stage, topic, str(partition)).set(value)

    def freshness(self, seconds: float) -> None:
        """Observe event time -> done for one record."""
        self.fam.freshness.labels(self.stage).observe(max(0.0, seconds))

    def up(self, healthy: bool) -> None:
        """Set the stage/sink state."""
        self.fam.up.labels(self.stage).set(1 if healthy else 0)


def stage_metrics(stage: str, registry: CollectorRegistry = REGISTRY) -> StageMetrics:
    """The metrics handle of one stage (cheap; call once per stage)."""
    return StageMetrics(stage, families(registry))


@lru_cache(maxsize=8)
def _started(host: str, port: int, registry_id: int) -> Any:
    registry = REGISTRY if registry_id == id(REGISTRY) else _REGISTRIES[registry_id]
    return start_http_server(port, addr=host, registry=registry)


_REGISTRIES: dict[int, CollectorRegistry] = {}


def start_exporter(
    settings: Settings, registry: CollectorRegistry = REGISTRY, port: int | None = None
) -> Any:
    """Serve `registry` on http://metrics_host:port/metrics (idempotent per process).

    Each process needs its own port: several workers on one host pass `port=` (e.g.
    `settings.metrics_port + worker_index`).
    """
    _REGISTRIES[id(registry)] = registry
    return _started(settings.metrics_host, port or settings.metrics_port, id(registry))
