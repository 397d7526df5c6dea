"""Columns of the control-plane tables: spans (`telemetry.spans.v1`) and service minutes
(`ops.service_minute.v1`), shaped after `contract.spans.Span` / `ServiceMinute`.

The same flat record is the search document (trace view) and the warehouse row (SQL), as for
every other table of `contract.tables`, which lists these two beside its own.
"""

from __future__ import annotations

from contract.columns import SOURCE_COLUMNS, Column

_C = Column

SPAN_COLUMNS: tuple[Column, ...] = (
    _C("trace_id", "keyword", "OpenTelemetry trace id; a play's is its session id's hex."),
    _C("span_id", "keyword", "Span id (16 hex digits); unique within its trace."),
    _C("parent_span_id", "keyword", "Span id of the caller; null for the trace's root."),
    _C("schema_version", "int", "Version of the span contract (contract.spans)."),
    _C("name", "keyword", "Operation, e.g. 'POST /license/acquire'."),
    _C("kind", "keyword", "server | client | internal."),
    _C("start_time", "timestamp", "When the request started (partitions the table)."),
    _C("end_time", "timestamp", "When the answer was sent."),
    _C("duration_ms", "double", "end_time - start_time in milliseconds."),
    _C("status_code", "keyword", "ok | error | unset (OpenTelemetry span status)."),
    _C("status_message", "text", "Why the span failed, in words, if it did."),
    _C("service", "keyword", "gateway | playback | manifest | license | steering | cache | auth | "
       "discovery."),
    _C("instance_id", "keyword", "Service instance that answered (service.instance.id)."),
    _C("instance_group", "keyword", "Deploy group of that instance."),
    _C("region", "keyword", "Cloud region of the instance (cloud.region)."),
    _C("endpoint", "keyword", "Route, e.g. '/license/acquire'."),
    _C("http_status", "int", "HTTP status answered, if any."),
    _C("error_code", "keyword", "Service error code, if any."),
    _C("attempt", "int", "1 for the first try, 2+ for retries."),
    _C("cache_hit", "bool", "Cache lookups: hit (true) or miss (false); null otherwise."),
    _C("fallback_used", "bool", "A circuit breaker answered with its fallback."),
    _C("circuit_open", "bool", "The circuit breaker was open (call not attempted)."),
    _C("session_id", "keyword", "Playback session of the play; null outside a play."),
    _C("member_id", "keyword", "Member the request was made for, if known."),
    _C("country", "keyword", "Member's country, if known."),
    _C("extra", "json", "Fields of the span without a column, as JSON."),
    *SOURCE_COLUMNS,
)  # fmt: skip

SERVICE_MINUTE_COLUMNS: tuple[Column, ...] = (
    _C("minute", "timestamp", "Start of the 1-minute window of span start times (UTC)."),
    _C("service", "keyword", "Service the spans belong to."),
    _C("endpoint", "keyword", "Route of the spans."),
    _C("region", "keyword", "Cloud region of the instances."),
    _C("requests", "long", "Spans (requests handled) in the minute."),
    _C("errors", "long", "Spans with status error."),
    _C("fallbacks", "long", "Spans answered by a fallback."),
    _C("cache_lookups", "long", "Cache lookups (spans with a cache_hit value)."),
    _C("cache_hits", "long", "Cache lookups that hit."),
    _C("latency_p50_ms", "double", "Latency p50 of the minute's spans."),
    _C("latency_p99_ms", "double", "Latency p99 of the minute's spans."),
    _C("revision", "int", "Revision of the rollup; a later one supersedes (late spans)."),
    _C(
        "latency_buckets",
        "json",
        "Latency histogram as JSON {log bucket index: count} (contract.sketch); merges exactly.",
    ),
    _C("instance_groups", "json", "Requests and errors per instance group as JSON."),
    _C("extra", "json", "Fields of the rollup without a column, as JSON."),
    *SOURCE_COLUMNS,
)
