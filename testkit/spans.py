"""Spans consistent with the stub's playback events, until the stub's control plane emits them.

`spans_for_session` reads one session's player events (the stub's `Event` JSON) and returns
the server side of that play, the way the control plane of issue 15 describes it: the
gateway's `POST /play`, playback's checks behind the cache, the manifest, the DRM license and
steering. A session that failed with a license error (`DRM-2001`, the licence server down)
gets a license service answering 503 on the first try and on every retry; a license that
took long gets one 503 and a retry that got through; any other session gets a clean trace.
`login_spans` gives a member's login or signup outside any play.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from contract.spans import Service, ServiceMinute, Span, trace_id_of

LICENSE_RETRIES = 3  # the player's retries after the first licence request
SLOW_LICENSE_MS = 1500  # a licence slower than this went through on a retry
LICENSE_DOWN_CODES = frozenset({"DRM-2001", "HLS-2001"})


def cloud_region(network_region: str | None) -> str:
    """The cloud region serving a member's network region (`eu-west` -> `eu-west-1`)."""
    return f"{network_region or 'us-east'}-1"


def _span_id(trace_id: str, n: int) -> str:
    return hashlib.blake2b(f"{trace_id}:{n}".encode(), digest_size=8).hexdigest()


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class _Trace:
    """Builds the spans of one trace with deterministic ids."""

    def __init__(self, trace_id: str, region: str, links: Mapping[str, str | None]) -> None:
        self.trace_id = trace_id
        self.region = region
        self.links = links
        self.spans: list[Span] = []

    def add(
        self,
        service: Service,
        endpoint: str,
        start: datetime,
        end: datetime,
        parent: Span | None = None,
        **attrs: Any,
    ) -> Span:
        status = attrs.pop("status_code", "ok")
        span = Span(
            trace_id=self.trace_id,
            span_id=_span_id(self.trace_id, len(self.spans)),
            parent_span_id=parent.span_id if parent else None,
            name=f"{'GET' if service in ('cache', 'steering') else 'POST'} {endpoint}",
            start_time=start,
            end_time=end,
            duration_ms=(end - start).total_seconds() * 1000,
            status_code=status,
            service=service,
            instance_id=f"{service}-{self.region}-i1",
            instance_group=f"{service}-v1",
            region=self.region,
            endpoint=endpoint,
            http_status=attrs.pop("http_status", 200),
            session_id=self.links.get("session_id"),
            member_id=self.links.get("member_id"),
            country=self.links.get("country"),
            **attrs,
        )
        self.spans.append(span)
        return span


def _ms(t: datetime, ms: float) -> datetime:
    return t + timedelta(milliseconds=ms)


def spans_for_session(events: Sequence[Mapping[str, Any]]) -> list[Span]:
    """The control plane's spans of one play, derived from its player events."""
    by_type: dict[str, Mapping[str, Any]] = {}
    for ev in sorted(events, key=lambda e: str(e["event_time"])):
        by_type.setdefault(str(ev["event_type"]), ev)
    play = by_type.get("play_requested")
    if play is None:
        return []
    network = play.get("network") or {}
    trace = _Trace(
        trace_id_of(str(play["session_id"])),
        cloud_region(network.get("region")),
        {
            "session_id": str(play["session_id"]),
            "member_id": play.get("member_id"),
            "country": network.get("country"),
        },
    )
    t0 = _at(play["event_time"])
    error = by_type.get("error")
    error_code = str((error or {}).get("payload", {}).get("code") or "")
    license_down = error is not None and error_code in LICENSE_DOWN_CODES
    manifest = by_type.get("manifest_loaded")
    licensed = by_type.get("license_acquired")
    end = _at((licensed or error or manifest or play)["event_time"])
    root = trace.add(
        "gateway", "/play", t0, max(end, _ms(t0, 30)),
        status_code="error" if license_down else "ok", http_status=503 if license_down else 200,
    )  # fmt: skip
    playback = trace.add("playback", "/playback/start", _ms(t0, 2), _ms(t0, 25), root)
    trace.add("cache", "/cache/get", _ms(t0, 3), _ms(t0, 4), playback, cache_hit=True)
    if manifest is None:
        return trace.spans
    t_manifest = _at(manifest["event_time"])
    trace.add("manifest", "/manifest", _ms(t0, 25), t_manifest, playback)
    if license_down and error is not None:
        _failed_license(trace, root, t_manifest, _at(error["event_time"]))
    elif licensed is not None:
        t_licensed = _at(licensed["event_time"])
        if (t_licensed - t_manifest).total_seconds() * 1000 > SLOW_LICENSE_MS:
            _license_attempt(trace, root, t_manifest, _ms(t_manifest, 1000), 1, failed=True)
            t_manifest = _ms(t_manifest, 1000)
            _license_attempt(trace, root, t_manifest, t_licensed, 2, failed=False)
        else:
            _license_attempt(trace, root, t_manifest, t_licensed, 1, failed=False)
        trace.add("steering", "/steering/select", t_licensed, _ms(t_licensed, 20), root)
    return trace.spans


def _license_attempt(
    trace: _Trace, root: Span, start: datetime, end: datetime, attempt: int, *, failed: bool
) -> None:
    if failed:
        trace.add(
            "license", "/license/acquire", start, end, root, attempt=attempt,
            status_code="error", http_status=503, error_code="LICENSE_BACKEND_UNAVAILABLE",
            status_message="DRM licence backend unavailable",
        )  # fmt: skip
    else:
        trace.add("license", "/license/acquire", start, end, root, attempt=attempt)


def _failed_license(trace: _Trace, root: Span, start: datetime, gave_up: datetime) -> None:
    """First try and every retry answered 503; the player gave up at `gave_up`."""
    attempts = 1 + LICENSE_RETRIES
    step = max((gave_up - start) / attempts, timedelta(milliseconds=50))
    for n in range(attempts):
        t = start + step * n
        _license_attempt(trace, root, t, t + step * 0.8, n + 1, failed=True)


def login_spans(
    member_id: str,
    at: datetime,
    *,
    region: str = "eu-west-1",
    failed: bool = False,
    endpoint: str = "/auth/login",
) -> list[Span]:
    """One login (or signup) of a member, outside any play: gateway -> auth."""
    trace_id = hashlib.blake2b(f"{member_id}:{at.isoformat()}".encode(), digest_size=16)
    trace = _Trace(trace_id.hexdigest(), region, {"member_id": member_id})
    bad: dict[str, Any] = (
        {"status_code": "error", "http_status": 503, "error_code": "AUTH_UNAVAILABLE",
         "status_message": "identity store unavailable"}
        if failed else {}
    )  # fmt: skip
    root = trace.add("gateway", endpoint, at, _ms(at, 120), **bad)
    trace.add("auth", endpoint, _ms(at, 5), _ms(at, 110), root, **bad)
    return trace.spans


def sessions_of(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Player events grouped by session id."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for ev in events:
        out.setdefault(str(ev["session_id"]), []).append(ev)
    return out


def minutes_of(spans: Iterable[Span]) -> list[ServiceMinute]:
    """The additive minute rollup of spans (counts only; latency quantiles nearest-rank)."""
    groups: dict[tuple[datetime, str, str, str], list[Span]] = {}
    for s in spans:
        minute = s.start_time.replace(second=0, microsecond=0)
        groups.setdefault((minute, s.service, s.endpoint, s.region), []).append(s)
    out = []
    for (minute, _, endpoint, region), group in sorted(groups.items()):
        latencies = sorted(s.duration_ms for s in group)
        lookups = [s for s in group if s.cache_hit is not None]
        out.append(
            ServiceMinute(
                minute=minute,
                service=group[0].service,
                endpoint=endpoint,
                region=region,
                requests=len(group),
                errors=sum(s.status_code == "error" for s in group),
                fallbacks=sum(s.fallback_used for s in group),
                cache_lookups=len(lookups),
                cache_hits=sum(bool(s.cache_hit) for s in lookups),
                latency_p50_ms=latencies[(len(latencies) - 1) // 2],
                latency_p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            )
        )
    return out
