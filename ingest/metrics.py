"""The collector's Prometheus metrics, on a registry of its own.

A registry per collector (instead of the global default) lets several collectors live in one
process, as the tests do, without duplicate-registration errors. Metric names are part of the
dashboards' contract: change them only together with `dashboards/`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streamwatch.service_metrics import StageMetrics, stage_metrics

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics:
    """Counters and histograms of one collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_accepted = Counter(
            "streamwatch_collector_events_accepted",
            "Events written to the raw topic and acknowledged by Kafka.",
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "streamwatch_collector_events_rejected",
            "Events rejected (and dead-lettered), by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.batches_rejected = Counter(
            "streamwatch_collector_batches_rejected",
            "Whole request bodies refused (400/413/415), by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.requests = Counter(
            "streamwatch_collector_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "streamwatch_collector_received_bytes",
            "Request body bytes received on /v1/events, as sent (before decompression).",
            registry=self.registry,
        )
        self.kafka_unavailable = Counter(
            "streamwatch_collector_kafka_unavailable",
            "Batches answered 503 because Kafka did not acknowledge them in time.",
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "streamwatch_collector_produce_seconds",
            "Time from handing a batch to the producer until Kafka acknowledged all of it.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "streamwatch_collector_request_seconds",
            "Time to answer a request on /v1/events, body read included.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        # The pipeline-wide families (throughput, batch sizes, latencies, dead letters,
        # errors) that every service exports, on this collector's registry.
        self.stage: StageMetrics = stage_metrics("collector", registry=self.registry)
        self.stage.up(True)
        for reason in ("kafka_unavailable", "request_timeout"):
            self.stage.error(reason, 0)  # at 0 from the start: "no errors", not "no data"

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
