"""Spans as JSON lines, built with f-strings on the stub's hot path.

Fields left at their `contract.spans.Span` default (None, False, attempt 1) are omitted to
keep the bytes per span down; tests validate samples against the `Span` model.
"""

from __future__ import annotations

from platform_stub.encoding import SECOND_PREFIXES, second_prefix


class TraceContext:
    """What every span of one trace (a play, or one member request) shares."""

    __slots__ = ("links", "region", "trace_id")

    def __init__(
        self,
        trace_id: str,
        region: str,
        session_id: str | None,
        member_id: str | None,
        country: str | None,
    ) -> None:
        self.trace_id = trace_id
        self.region = region
        parts = []
        if session_id is not None:
            parts.append(f'"session_id":"{session_id}"')
        if member_id is not None:
            parts.append(f'"member_id":"{member_id}"')  # the stub's ids need no escaping
        if country is not None:
            parts.append(f'"country":"{country}"')
        self.links = "," + ",".join(parts) if parts else ""


class SpanOutcome:
    """How one attempt ended (filled in by the call, then encoded)."""

    __slots__ = ("cache_hit", "circuit_open", "error_code", "fallback", "http_status", "ok")

    def __init__(self) -> None:
        self.ok = True
        self.http_status: int | None = 200
        self.error_code: str | None = None
        self.cache_hit: bool | None = None
        self.fallback = False
        self.circuit_open = False


class SpanSite:
    """Where a span runs: an endpoint on one instance in one region, with the constant part
    of its JSON encoded once (a site serves thousands of spans)."""

    __slots__ = ("group", "instance", "name_json", "tail_json")

    def __init__(
        self, name: str, service: str, endpoint: str, instance: str, group: str, region: str
    ) -> None:
        self.instance = instance
        self.group = group
        self.name_json = f',"name":"{name}",'
        self.tail_json = (
            f'"service":"{service}","instance_id":"{instance}","instance_group":"{group}",'
            f'"region":"{region}","endpoint":"{endpoint}"'
        )


def span_line(
    ctx: TraceContext,
    span_id: str,
    parent_id: str | None,
    site: SpanSite,
    start_ms: int,
    end_ms: int,
    attempt: int,
    outcome: SpanOutcome,
) -> str:
    """One span of `ctx`'s trace run at `site` (the site's region is the trace's)."""
    parent = f',"parent_span_id":"{parent_id}"' if parent_id else ""
    extra = ""
    if outcome.http_status is not None:
        extra += f',"http_status":{outcome.http_status}'
    if outcome.error_code is not None:
        extra += f',"error_code":"{outcome.error_code}","status_message":"{outcome.error_code}"'
    if attempt > 1:
        extra += f',"attempt":{attempt}'
    if outcome.cache_hit is not None:
        extra += ',"cache_hit":true' if outcome.cache_hit else ',"cache_hit":false'
    if outcome.fallback:
        extra += ',"fallback_used":true'
    if outcome.circuit_open:
        extra += ',"circuit_open":true'
    status = "ok" if outcome.ok else "error"
    # iso_ms written out (two per span): the second's prefix is nearly always remembered.
    sec, ms = divmod(start_ms, 1000)
    start = SECOND_PREFIXES.get(sec) or second_prefix(sec)
    sec2, ms2 = divmod(end_ms, 1000)
    end = start if sec2 == sec else SECOND_PREFIXES.get(sec2) or second_prefix(sec2)
    return (
        f'{{"trace_id":"{ctx.trace_id}","span_id":"{span_id}"{parent}{site.name_json}'
        f'"start_time":"{start}{ms:03d}Z","end_time":"{end}{ms2:03d}Z",'
        f'"duration_ms":{end_ms - start_ms},"status_code":"{status}",{site.tail_json}'
        f"{extra}{ctx.links}}}"
    )
