"""The control plane's calls for one play and for a member's other requests.

`ControlPlane.start_play` is the gateway's POST /play: playback (entitlement from EVCache or
its store, device and region checks), the manifest (EVCache, else built), steering (OCA
selection, with a static fallback). `license` is the gateway's POST /license to the DRM
license service. `member_requests` are the login/signup and home/browse/search requests a
member makes before pressing play. Every attempt of every call is a span appended to
`spans` (JSON lines, with their trace ids in `keys`), in the order the calls end.

One generator of its own (seeded by run) decides latencies, errors and cache hits, so the
player model's random stream is the same with the control plane on or off, and a run stays
deterministic per seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from contract.spans import trace_id_of
from platform_stub.control_plane import services as sv
from platform_stub.control_plane.resilience import CircuitBreaker
from platform_stub.control_plane.span_json import SpanOutcome, SpanSite, TraceContext, span_line
from platform_stub.encoding import NORMALS as _NORMALS
from platform_stub.scenarios import Fault

# Inner work of a server call: (start ms, this span's id) -> (end ms, ok).
Inner = Callable[[int, str], tuple[int, bool]]


class _Route:
    """One endpoint in one region: its caller's breaker and the instances that serve it."""

    __slots__ = ("breaker", "sites")

    def __init__(self, ep: sv.Endpoint, region: str) -> None:
        self.breaker = CircuitBreaker(ep.breaker)
        self.sites = tuple(
            SpanSite(
                ep.name, ep.service, ep.route,
                f"{sv.instance_group(ep.service, region, g)}-{i}",
                sv.instance_group(ep.service, region, g),
                region,
            )
            for g in sv.GROUPS_PER_REGION
            for i in range(sv.INSTANCES_PER_GROUP)
        )  # fmt: skip


@dataclass(frozen=True)
class PlayStart:
    """What POST /play gave the player: when, whether, and whether steering fell back."""

    ready_ms: int
    ok: bool
    steering_fallback: bool


@dataclass(frozen=True)
class LicenseResult:
    """What POST /license gave the player."""

    done_ms: int
    ok: bool


class ControlPlane:
    """The simulated services of all regions, their breakers, and the spans they emit."""

    def __init__(
        self, seed: int, scenario: str, config: sv.ControlPlaneConfig, stream: str = ""
    ) -> None:
        """`stream` tells apart the random streams of a run's shards (`RunOptions.shards`)."""
        self.config = config
        self.rng = random.Random(f"control:{seed}:{scenario}{stream}")
        self.fault: Fault | None = None
        self.struck = False  # a fault touched the last play or license call
        self.affected_members: set[str] = set()  # members whose own requests the fault hit
        self.spans: list[str] = []
        self.keys: list[str] = []
        self._routes: dict[tuple[str, str], _Route] = {}

    def drain(self) -> tuple[list[str], list[str]]:
        """The spans emitted since the last drain, with their keys (trace ids)."""
        spans, keys = self.spans, self.keys
        self.spans, self.keys = [], []
        return spans, keys

    # ---- one attempt, one span ----------------------------------------------------------

    def _route(self, ep: sv.Endpoint, region: str) -> _Route:
        key = (ep.name, region)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route(ep, region)
        return route

    def _instance(self, route: _Route) -> SpanSite:
        """The instance that takes this attempt (the load balancer's pick)."""
        sites = route.sites
        return sites[(self.rng.getrandbits(16) * len(sites)) >> 16]

    def _fault_on(self, ep: sv.Endpoint, region: str, group: str, t: int) -> Fault | None:
        f = self.fault
        if (
            f is None
            or f.service != ep.service
            or not f.active(t)
            or (f.region is not None and f.region != region)
            or (f.endpoint is not None and f.endpoint != ep.route)
            or (f.instance_group is not None and f.instance_group != group)
        ):
            return None
        return f

    def _latency(self, ep: sv.Endpoint, factor: float) -> int:
        z = _NORMALS[self.rng.getrandbits(12)]
        return max(1, int(ep.median_ms * factor * math.exp(ep.sigma * z)))

    def cache_down(self, region: str, t: int) -> bool:
        """Whether the region's cache cluster is lost at `t` (its callers go to origin)."""
        f = self.fault
        return f is not None and f.service == "cache" and f.region == region and f.active(t)

    def serve(
        self,
        ctx: TraceContext,
        ep: sv.Endpoint,
        t: int,
        parent: str | None,
        inner: Inner | None = None,
        slow: float = 1.0,
    ) -> tuple[int, bool, bool]:
        """Call `ep` with its retry policy and breaker: (end ms, ok, fallback used).

        Each attempt is one span; `inner` is the work the service does after its own
        processing (its calls to others), `slow` a latency factor (an overloaded origin).
        """
        route = self._route(ep, ctx.region)
        breaker = route.breaker
        attempt = 1
        while True:
            span_id = self.rng.getrandbits(64).to_bytes(8, "big").hex()
            out = SpanOutcome()
            if t < breaker.open_until:  # not breaker.allows(t)
                # Short-circuited: no request goes out; the caller takes its fallback at once.
                site = self._instance(route)
                out.ok, out.http_status, out.error_code = False, None, "CIRCUIT_OPEN"
                out.circuit_open, out.fallback = True, ep.has_fallback
                self._emit(ctx, span_id, parent, site, t, t, attempt, out)
                return t, False, ep.has_fallback
            end, site = self._attempt(ctx, ep, route, t, span_id, out, inner, slow)
            breaker.record(end, out.ok)
            last = out.ok or attempt >= ep.retry.max_attempts
            if not out.ok and last and ep.has_fallback:
                out.fallback = True
            self._emit(ctx, span_id, parent, site, t, end, attempt, out)
            if last:
                return end, out.ok, out.fallback
            t = end + ep.retry.delay_ms(attempt)
            attempt += 1

    def _attempt(
        self,
        ctx: TraceContext,
        ep: sv.Endpoint,
        route: _Route,
        t: int,
        span_id: str,
        out: SpanOutcome,
        inner: Inner | None,
        slow: float,
    ) -> tuple[int, SpanSite]:
        """One attempt's outcome (in `out`), end time and the instance that served it."""
        where = self._instance(route)
        fault = None if self.fault is None else self._fault_on(ep, ctx.region, where.group, t)
        if fault is None:
            factor, error_p = slow, ep.error_rate
        else:
            self.struck = True
            factor = slow * fault.latency_factor
            error_p = max(ep.error_rate, fault.fail_p)
        end = t + self._latency(ep, factor)
        if self.rng.random() < error_p:
            out.ok = False
            if ep.service == "cache":
                out.http_status, out.error_code = None, "CONNECTION_REFUSED"
            else:
                out.http_status = ep.error_status
                out.error_code = f"HTTP_{ep.error_status}"
        elif inner is not None:
            end, ok = inner(end, span_id)
            if not ok:
                out.ok, out.http_status, out.error_code = False, 500, "DEPENDENCY_FAILED"
        if end - t > ep.timeout_ms:
            end = t + ep.timeout_ms
            out.ok, out.http_status, out.error_code = False, 504, "TIMEOUT"
        return end, where

    def _emit(
        self,
        ctx: TraceContext,
        span_id: str,
        parent: str | None,
        site: SpanSite,
        start: int,
        end: int,
        attempt: int,
        out: SpanOutcome,
    ) -> None:
        self.spans.append(span_line(ctx, span_id, parent, site, start, end, attempt, out))
        self.keys.append(ctx.trace_id)

    # ---- a play -------------------------------------------------------------------------

    def _cache(
        self, ctx: TraceContext, ep: sv.Endpoint, t: int, parent: str, hit_p: float
    ) -> tuple[int, bool]:
        """An EVCache lookup: (end ms, hit). A failed lookup counts as a miss (fallback)."""
        span_id = self.rng.getrandbits(64).to_bytes(8, "big").hex()
        route = self._route(ep, ctx.region)
        breaker = route.breaker
        out = SpanOutcome()
        out.http_status = None
        where = self._instance(route)
        if t < breaker.open_until:  # not breaker.allows(t)
            out.ok, out.error_code, out.circuit_open, out.fallback = (
                False,
                "CIRCUIT_OPEN",
                True,
                True,
            )
            self._emit(ctx, span_id, parent, where, t, t, 1, out)
            return t, False
        fault = self._fault_on(ep, ctx.region, where.group, t)
        end = t + self._latency(ep, 1.0)
        if fault is not None:
            self.struck = True
        if fault is not None or self.rng.random() < ep.error_rate:
            out.ok, out.error_code, out.fallback = False, "CONNECTION_REFUSED", True
        else:
            out.cache_hit = self.rng.random() < hit_p
        breaker.record(end, out.ok)
        self._emit(ctx, span_id, parent, where, t, end, 1, out)
        return end, bool(out.cache_hit)

    def _playback_work(self, ctx: TraceContext, result: list[bool]) -> Inner:
        cfg = self.config

        def work(t: int, span_id: str) -> tuple[int, bool]:
            slow = cfg.origin_overload_factor if self.cache_down(ctx.region, t) else 1.0
            t, hit = self._cache(ctx, sv.CACHE_ENTITLEMENT, t, span_id, cfg.entitlement_hit_ratio)
            if not hit:
                t += int(sv.ENTITLEMENT_DB * slow * math.exp(0.4 * self.rng.gauss(0.0, 1.0)))
            t, hit = self._cache(ctx, sv.CACHE_MANIFEST, t, span_id, cfg.manifest_hit_ratio)
            if not hit:
                t, ok, _ = self.serve(ctx, sv.MANIFEST_BUILD, t, span_id, slow=slow)
                if not ok:
                    return t, False
            t, ok, fallback = self.serve(ctx, sv.STEERING_SELECT, t, span_id)
            result.append(fallback or not ok)
            return t, True

        return work

    def start_play(
        self, session_id: str, member_id: str, region: str, country: str, t0: int
    ) -> PlayStart:
        """POST /play through the gateway, from `t0`."""
        ctx = TraceContext(trace_id_of(session_id), region, session_id, member_id, country)
        self.struck = False
        steering_fallback: list[bool] = []
        playback = self._playback_work(ctx, steering_fallback)

        def gateway_work(t: int, span_id: str) -> tuple[int, bool]:
            end, ok, _ = self.serve(ctx, sv.PLAYBACK_START, t, span_id, playback)
            return end, ok

        end, ok, _ = self.serve(ctx, sv.GATEWAY_PLAY, t0, None, gateway_work)
        return PlayStart(end, ok, bool(steering_fallback and steering_fallback[-1]))

    def license(
        self, session_id: str, member_id: str, region: str, country: str, t: int
    ) -> LicenseResult:
        """POST /license through the gateway to the DRM license service, from `t`."""
        ctx = TraceContext(trace_id_of(session_id), region, session_id, member_id, country)
        self.struck = False

        def gateway_work(t: int, span_id: str) -> tuple[int, bool]:
            end, ok, _ = self.serve(ctx, sv.LICENSE_ACQUIRE, t, span_id)
            return end, ok

        end, ok, _ = self.serve(ctx, sv.GATEWAY_LICENSE, t, None, gateway_work)
        return LicenseResult(end, ok)

    # ---- a member's other requests ------------------------------------------------------

    def member_requests(self, member_id: str, region: str, country: str, t0: int) -> None:
        """The login/signup and home/browse/search requests before a play at `t0`."""
        cfg = self.config
        rng = self.rng
        for ep, rate in (
            (sv.AUTH_SIGNUP, cfg.signup_per_play),
            (sv.AUTH_LOGIN, cfg.login_per_play),
            (sv.DISCOVERY_HOME, cfg.home_per_play),
            (sv.DISCOVERY_BROWSE, cfg.browse_per_play),
            (sv.DISCOVERY_SEARCH, cfg.search_per_play),
        ):
            n = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
            for _ in range(n):
                t = t0 - rng.randint(1_000, cfg.browse_window_ms)
                trace_id = rng.getrandbits(128).to_bytes(16, "big").hex()  # as `:032x`, faster
                ctx = TraceContext(trace_id, region, None, member_id, country)

                def work(
                    t: int, span_id: str, ep: sv.Endpoint = ep, ctx: TraceContext = ctx
                ) -> tuple[int, bool]:
                    end, ok, fallback = self.serve(ctx, ep, t, span_id)
                    return end, ok or fallback

                self.struck = False
                self.serve(ctx, sv.GATEWAY_API, t, None, work)
                if self.struck:
                    self.affected_members.add(member_id)
