"""The Grafana QoE dashboard's panel queries, run against the real search engine.

No Grafana server can be had here, so each panel target is turned into the search request
Grafana's Elasticsearch/OpenSearch datasource sends (query string, one-minute date histogram,
the target's metrics and pipeline aggregations) and run against the sessions index of a
loaded stub run on the real OpenSearch. Every panel must return buckets with values.
"""

from __future__ import annotations

from typing import Any

import pytest

from dashboards.grafana.dashboards import qoe_dashboard
from indexers import naming
from indexers.search_factory import make_backend
from streamwatch.settings import Settings
from tests.test_support_data import World, scenario_world

pytestmark = pytest.mark.integration

_FIELD_METRICS = ("sum", "avg", "min", "max", "cardinality")


def _metric_agg(metric: dict[str, Any]) -> dict[str, Any] | None:
    """One Grafana metric as a search aggregation (None for `count`: the bucket's doc_count)."""
    kind = metric["type"]
    settings = metric.get("settings", {})
    if kind == "count":
        return None
    if kind in _FIELD_METRICS:
        script = settings.get("script")
        return {kind: {"script": {"source": script}} if script else {"field": metric["field"]}}
    if kind == "percentiles":
        percents = [float(p) for p in settings.get("percents", ["50"])]
        return {"percentiles": {"field": metric["field"], "percents": percents}}
    if kind == "bucket_script":
        paths = {v["name"]: v["pipelineAgg"] for v in metric["pipelineVariables"]}
        return {"bucket_script": {"buckets_path": paths, "script": settings["script"]}}
    raise AssertionError(f"metric type {kind!r} not translated")


def search_body(target: dict[str, Any]) -> dict[str, Any]:
    """The request Grafana's search datasource sends for one target (range filter aside)."""
    (bucket,) = target["bucketAggs"]
    assert bucket["type"] == "date_histogram"
    aggs = {}
    for metric in target["metrics"]:
        agg = _metric_agg(metric)
        if agg is not None:
            aggs[metric["id"]] = agg
    histogram: dict[str, Any] = {
        "date_histogram": {
            "field": bucket["field"],
            "fixed_interval": bucket["settings"]["interval"],
            "min_doc_count": int(bucket["settings"]["min_doc_count"]),
        },
        "aggs": aggs,
    }
    return {
        "size": 0,
        "query": {"query_string": {"query": target["query"], "analyze_wildcard": True}},
        "aggs": {bucket["id"]: histogram},
    }


def _values(target: dict[str, Any], bucket: dict[str, Any]) -> list[float]:
    out = []
    for metric in target["metrics"]:
        if metric.get("hide"):
            continue
        if metric["type"] == "count":
            out.append(float(bucket["doc_count"]))
            continue
        agg = bucket.get(metric["id"], {})
        values = agg.get("values") if metric["type"] == "percentiles" else agg.get("value")
        if isinstance(values, dict):
            out.extend(float(v) for v in values.values() if v is not None)
        elif values is not None:
            out.append(float(values))
    return out


@pytest.fixture(scope="module")
def world(settings: Settings) -> World:
    return scenario_world("oca_outage", settings)


def test_every_qoe_panel_query_returns_values(world: World) -> None:
    board = qoe_dashboard(world.settings)
    index = naming.sessions_index(world.settings)
    backend = make_backend(world.settings)
    empty: list[str] = []
    checked = 0
    try:
        for panel in board["panels"]:
            for target in panel["targets"]:
                if "bucketAggs" not in target:
                    continue  # a server-side expression over the other targets
                answer = backend.search(index, search_body(target))
                (buckets_of,) = answer["aggregations"].values()
                values = [v for b in buckets_of["buckets"] for v in _values(target, b)]
                checked += 1
                if not any(v > 0 for v in values):
                    empty.append(f"{panel['title']} {target['refId']}")
    finally:
        backend.close()
    assert checked >= 8, checked
    assert not empty, f"panel queries without values: {empty}"
