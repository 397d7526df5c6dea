"""The Prometheus series every streamwatch service exports, defined once, and their ports.

Every box (collector, stream worker, both sinks, the stub) exposes the same families, which
the provisioned Grafana "pipeline health" dashboard (`dashboards/grafana/`) and Prometheus
read:

    from streamwatch.service_metrics import stage_metrics, start_service_exporter

    start_service_exporter(settings, "sink-search")  # http://<metrics_host>:<port>/metrics
    m = stage_metrics("sink.search")                 # one per stage / sink
    with m.time("flush"):                            # latency histogram per step
        write(batch)
    m.batch(len(batch))                              # batch-size histogram
    m.records(len(batch))                            # throughput (outcome="ok")
    m.records(3, outcome="error"); m.error("timeout")
    m.deadletter("schema_invalid")                   # dead-letter counter by reason
    m.lag(topic, partition, 42)                      # consumer lag gauge
    m.freshness(seconds)                             # Kafka append -> done, histogram
    m.up(True)                                       # stage/sink state (1 up, 0 down)

Series (label `stage` on all): streamwatch_records_total{outcome},
streamwatch_errors_total{reason}, streamwatch_deadletters_total{reason},
streamwatch_batch_size, streamwatch_stage_latency_seconds{step},
streamwatch_consumer_lag{topic,partition}, streamwatch_freshness_seconds, streamwatch_up.

Ports (`EXPORTER_OFFSETS`, from `Settings.metrics_port`, 9464 by default): sink-search 9464,
sink-warehouse 9465, stub 9466, worker N 9467+N. The collector serves the same families on
its own HTTP port (`GET /metrics`, 8088). `scrape_targets` lists them all for Prometheus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from streamwatch.settings import Settings

log = logging.getLogger(__name__)

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
            "Time from a record's append to its input topic until this stage is done with it.",
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


# Each service's exporter port = Settings.metrics_port + offset (+ worker index).
EXPORTER_OFFSETS: dict[str, int] = {"sink-search": 0, "sink-warehouse": 1, "stub": 2, "worker": 3}


@dataclass(frozen=True)
class ScrapeTarget:
    """One exporter Prometheus scrapes: the service (its job name) and where it answers."""

    service: str
    address: str  # host:port
    path: str = "/metrics"

    @property
    def url(self) -> str:
        """Where the exporter answers."""
        return f"http://{self.address}{self.path}"


def exporter_port(settings: Settings, service: str, index: int = 0) -> int | None:
    """The documented exporter port of `service` (None when exporters are off)."""
    if settings.metrics_port == 0:
        return None
    return settings.metrics_port + EXPORTER_OFFSETS[service] + index


def scrape_targets(settings: Settings, workers: int = 1) -> list[ScrapeTarget]:
    """Every service of the demo that exports metrics (what Prometheus scrapes)."""
    targets = [ScrapeTarget("collector", f"{settings.collector_host}:{settings.collector_port}")]
    for service in ("worker", "sink-search", "sink-warehouse", "stub"):
        for index in range(workers if service == "worker" else 1):
            port = exporter_port(settings, service, index)
            if port is not None:
                targets.append(ScrapeTarget(service, f"{settings.metrics_host}:{port}"))
    return targets


_SERVERS: dict[tuple[str, int], Any] = {}


def start_service_exporter(
    settings: Settings, service: str, index: int = 0, registry: CollectorRegistry = REGISTRY
) -> int | None:
    """Serve `registry` on the service's documented port; returns the port, or None.

    Idempotent per process. A taken port is logged and tolerated: metrics must never stop
    the data path (a second copy of a service, e.g. a test run beside the demo, simply goes
    unscraped, and Prometheus's `up` shows the gap).
    """
    port = exporter_port(settings, service, index)
    if port is None:
        return None
    key = (settings.metrics_host, port)
    if key not in _SERVERS:
        try:
            _SERVERS[key] = start_http_server(port, addr=settings.metrics_host, registry=registry)
        except OSError as exc:
            log.warning(
                "%s: metrics exporter not started on %s:%d: %s",
                service,
                settings.metrics_host,
                port,
                exc,
            )
            return None
        log.info("%s: metrics on http://%s:%d/metrics", service, settings.metrics_host, port)
    return port
