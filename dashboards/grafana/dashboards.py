"""The provisioned dashboards: QoE overview (search engine) and pipeline health (Prometheus).

The QoE panels compute the same ratios of sums as `contract.metrics.SQL_METRICS`, over the
sessions index the search sink fills (same field names as the warehouse).
"""

from __future__ import annotations

from typing import Any

from dashboards.grafana.model import EXPRESSION, Datasource, dashboard, panel
from streamwatch.settings import Settings

QOE_UID = "streamwatch-qoe"
PIPELINE_UID = "streamwatch-pipeline"
TIME_FIELD = "first_event_at"


def _sessions_index(settings: Settings) -> str:
    try:
        from indexers.naming import sessions_index

        return str(sessions_index(settings))
    except ImportError:  # pragma: no cover - indexers ships naming
        return f"streamwatch-{settings.topic_prefix}sessions"


def datasources(settings: Settings) -> list[Datasource]:
    """The search-engine datasource (QoE) and the Prometheus one (pipeline)."""
    search_type = (
        "grafana-opensearch-datasource"
        if settings.search_backend == "opensearch"
        else "elasticsearch"
    )
    return [
        Datasource(
            name="streamwatch-search",
            uid="streamwatch-search",
            type=search_type,
            url=settings.search_endpoint,
            json_data={
                "index": _sessions_index(settings),
                "database": _sessions_index(settings),
                "timeField": TIME_FIELD,
                "flavor": settings.search_backend,
                "version": "2.19.1" if settings.search_backend == "opensearch" else "8.0.0",
                "maxConcurrentShardRequests": 5,
            },
            database=_sessions_index(settings),
        ),
        Datasource(
            name="streamwatch-prometheus",
            uid="streamwatch-prometheus",
            type="prometheus",
            url=settings.grafana_prometheus_url,
            json_data={"httpMethod": "POST", "timeInterval": "15s"},
        ),
    ]


def _es(
    ref: str, metrics: list[dict[str, Any]], ds: Datasource, query: str = "*"
) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": ds.ref(),
        "query": query,
        "timeField": TIME_FIELD,
        "metrics": metrics,
        "bucketAggs": [
            {"id": "2", "type": "date_histogram", "field": TIME_FIELD,
             "settings": {"interval": "1m", "min_doc_count": "0"}}
        ],
    }  # fmt: skip


def _ratio(ref: str, expression: str, hide: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for t in hide:
        t["hide"] = True
    return [
        *hide,
        {"refId": ref, "datasource": EXPRESSION, "type": "math", "expression": expression},
    ]


def qoe_dashboard(settings: Settings) -> dict[str, Any]:
    """QoE overview over the sessions index, one-minute buckets."""
    ds = datasources(settings)[0]
    count = [{"id": "1", "type": "count"}]
    panels = [
        panel("Plays", ds, [_es("A", count, ds, "play_requested_at:*")], "short",
              description="Sessions that requested play, per minute."),
        panel("Startup time p50 / p95", ds, [_es("A", [{
            "id": "1", "type": "percentiles", "field": "startup_ms",
            "settings": {"percents": ["50", "95"]}}], ds)], "ms"),
        panel("Rebuffer %", ds, [_es("A", [
            {"id": "1", "type": "sum", "field": "rebuffer_ms", "hide": True},
            {"id": "3", "type": "sum", "field": "watch_ms", "hide": True},
            {"id": "4", "type": "bucket_script", "field": "select field",
             "pipelineVariables": [{"name": "reb", "pipelineAgg": "1"},
                                   {"name": "watch", "pipelineAgg": "3"}],
             "settings": {"script": "params.reb * 100 / Math.max(1, params.watch + params.reb)"}},
        ], ds)], "percent", description="rebuffer time / (watch + rebuffer time)."),
        panel("Playback failure %", ds, _ratio("C", "$B * 100 / $A", [
            _es("A", count, ds), _es("B", count, ds, "playback_failed:true")]), "percent"),
        panel("Exits before video start %", ds, _ratio("C", "$B * 100 / $A", [
            _es("A", count, ds), _es("B", count, ds, "start_outcome:exit_before_start")]),
              "percent"),
        panel("Average bitrate (time-weighted)", ds, [_es("A", [
            {"id": "1", "type": "sum", "field": "watch_ms", "hide": True},
            {"id": "3", "type": "sum", "field": "avg_bitrate_kbps", "hide": True,
             "settings": {"script": "doc['avg_bitrate_kbps'].size() == 0 ? 0 : "
                          "doc['avg_bitrate_kbps'].value * doc['watch_ms'].value"}},
            {"id": "4", "type": "bucket_script", "field": "select field",
             "pipelineVariables": [{"name": "w", "pipelineAgg": "1"},
                                   {"name": "bw", "pipelineAgg": "3"}],
             "settings": {"script": "params.bw / Math.max(1, params.w)"}},
        ], ds)], "Kbits"),
    ]  # fmt: skip
    return dashboard(QOE_UID, "streamwatch · QoE overview", panels, ["streamwatch", "qoe"])


def _prom(ref: str, expr: str, legend: str, ds: Datasource) -> dict[str, Any]:
    return {"refId": ref, "datasource": ds.ref(), "expr": expr, "legendFormat": legend}


def pipeline_dashboard(settings: Settings) -> dict[str, Any]:
    """Pipeline health from the exporters of `dashboards.service_metrics`."""
    ds = datasources(settings)[1]

    def q(ref: str, expr: str, legend: str) -> dict[str, Any]:
        return _prom(ref, expr, legend, ds)

    panels = [
        panel("Records per second by stage", ds, [q("A",
            'sum by (stage) (rate(streamwatch_records_total{outcome="ok"}[1m]))', "{{stage}}")],
              "reqps"),
        panel("Consumer lag by stage and topic", ds, [q("A",
            "sum by (stage, topic) (streamwatch_consumer_lag)", "{{stage}} {{topic}}")], "short"),
        panel("Dead letters per second by reason", ds, [q("A",
            "sum by (reason) (rate(streamwatch_deadletters_total[5m]))", "{{reason}}")], "reqps"),
        panel("End-to-end freshness p50 / p99", ds, [
            q("A", "histogram_quantile(0.5, sum by (le, stage) "
                   "(rate(streamwatch_freshness_seconds_bucket[5m])))", "p50 {{stage}}"),
            q("B", "histogram_quantile(0.99, sum by (le, stage) "
                   "(rate(streamwatch_freshness_seconds_bucket[5m])))", "p99 {{stage}}")], "s"),
        panel("Batch size p95", ds, [q("A", "histogram_quantile(0.95, sum by (le, stage) "
                                            "(rate(streamwatch_batch_size_bucket[5m])))",
                                       "{{stage}}")], "short"),
        panel("Step latency p99", ds, [q("A", "histogram_quantile(0.99, sum by (le, stage, step) "
                                              "(rate(streamwatch_stage_latency_seconds_bucket[5m])))",
                                         "{{stage}} {{step}}")], "s"),
        panel("Errors per second by reason", ds, [q("A",
            "sum by (stage, reason) (rate(streamwatch_errors_total[5m]))", "{{stage}} {{reason}}")],
              "reqps"),
        panel("Stage / sink state (1 = up)", ds, [q("A", "streamwatch_up", "{{stage}}")], "short",
              kind="stat"),
    ]  # fmt: skip
    return dashboard(PIPELINE_UID, "streamwatch · pipeline health", panels,
                     ["streamwatch", "pipeline"])  # fmt: skip


def all_dashboards(settings: Settings) -> list[dict[str, Any]]:
    """Every dashboard to provision."""
    return [qoe_dashboard(settings), pipeline_dashboard(settings)]
