"""What each simulated service is: endpoints with their latency, errors, timeout, retry and
breaker policies, fallbacks, cache hit ratios; instance groups per region; request rates.

Latencies are log-normal (median, sigma) in ms. Error rates are the healthy background.
Request rates for a member's requests outside a play are per play at the stub's nominal
2 plays per member per day (`StubConfig.sessions_per_member_day`), so per member and day
they are twice these figures (see `ControlPlaneConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from contract.spans import Service
from platform_stub.control_plane.resilience import BreakerPolicy, RetryPolicy

GROUPS_PER_REGION = ("a", "b")  # two deploy (instance) groups per service and region
INSTANCES_PER_GROUP = 3


@dataclass(frozen=True)
class Endpoint:
    """One route of one service and how it behaves when healthy."""

    service: Service
    route: str  # e.g. "/license/acquire"
    method: str
    median_ms: float
    sigma: float
    error_rate: float
    timeout_ms: int
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    error_status: int = 500
    has_fallback: bool = False  # a degraded answer exists (static list, default, origin)

    @cached_property
    def name(self) -> str:
        """The span name: 'METHOD /route' (cached: every span and breaker lookup reads it)."""
        return f"{self.method} {self.route}"


_NO_RETRY = RetryPolicy(1)
# Nobody sits in front of the gateway to break the circuit: its clients only retry.
_NEVER_OPENS = BreakerPolicy(failure_share=2.0)
_RETRY_3 = RetryPolicy(3, backoff_ms=100)

# The gateway's policies are the client's: a failed request is sent again (to any instance).
GATEWAY_PLAY = Endpoint(
    "gateway", "/play", "POST", 4.0, 0.3, 0.0002, 15_000, _RETRY_3, _NEVER_OPENS, 502
)
GATEWAY_LICENSE = Endpoint(
    "gateway", "/license", "POST", 4.0, 0.3, 0.0002, 15_000, _RETRY_3, _NEVER_OPENS, 502
)
GATEWAY_API = Endpoint(
    "gateway", "/api", "GET", 3.0, 0.3, 0.0002, 10_000, _RETRY_3, _NEVER_OPENS, 502
)
PLAYBACK_START = Endpoint(
    "playback", "/playback/start", "POST", 45.0, 0.35, 0.0005, 4_000, _RETRY_3
)
CACHE_ENTITLEMENT = Endpoint(
    "cache", "/evcache/entitlement", "GET", 1.2, 0.4, 0.0002, 50, _NO_RETRY, has_fallback=True
)
CACHE_MANIFEST = Endpoint(
    "cache", "/evcache/manifest", "GET", 1.5, 0.4, 0.0002, 50, _NO_RETRY, has_fallback=True
)
ENTITLEMENT_DB = 35.0  # ms: the playback service's own entitlement read on a cache miss
MANIFEST_BUILD = Endpoint(
    "manifest", "/manifest/build", "POST", 140.0, 0.45, 0.0005, 3_000, _RETRY_3
)
STEERING_SELECT = Endpoint(
    "steering", "/steering/select", "POST", 18.0, 0.4, 0.0005, 1_000, _RETRY_3, has_fallback=True
)
LICENSE_ACQUIRE = Endpoint(
    "license", "/license/acquire", "POST", 240.0, 0.45, 0.0005, 5_000, _RETRY_3, error_status=503
)
AUTH_LOGIN = Endpoint("auth", "/auth/login", "POST", 80.0, 0.4, 0.001, 3_000, _RETRY_3)
AUTH_SIGNUP = Endpoint("auth", "/auth/signup", "POST", 150.0, 0.4, 0.002, 5_000, _RETRY_3)
DISCOVERY_HOME = Endpoint(
    "discovery", "/discovery/home", "GET", 90.0, 0.4, 0.0005, 2_000, _RETRY_3, has_fallback=True
)
DISCOVERY_BROWSE = Endpoint(
    "discovery", "/discovery/browse", "GET", 60.0, 0.4, 0.0005, 2_000, _RETRY_3, has_fallback=True
)
DISCOVERY_SEARCH = Endpoint(
    "discovery", "/discovery/search", "GET", 110.0, 0.45, 0.0005, 2_000, _RETRY_3
)

ENDPOINTS: tuple[Endpoint, ...] = (
    GATEWAY_PLAY, GATEWAY_LICENSE, GATEWAY_API, PLAYBACK_START, CACHE_ENTITLEMENT,
    CACHE_MANIFEST, MANIFEST_BUILD, STEERING_SELECT, LICENSE_ACQUIRE, AUTH_LOGIN, AUTH_SIGNUP,
    DISCOVERY_HOME, DISCOVERY_BROWSE, DISCOVERY_SEARCH,
)  # fmt: skip

# Who calls whom (for root-cause localisation: a callee's fault shows in its callers too).
CALLEES: dict[str, tuple[str, ...]] = {
    "gateway": ("playback", "license", "auth", "discovery"),
    "playback": ("cache", "manifest", "steering"),
    "manifest": ("cache",),
    "steering": (),
    "license": (),
    "cache": (),
    "auth": (),
    "discovery": (),
}


def instance_group(service: str, region: str, group: str) -> str:
    """The deploy group name, e.g. 'gateway-us-east-b'."""
    return f"{service}-{region}-{group}"


@dataclass(frozen=True)
class ControlPlaneConfig:
    """How often members call what, and the cache hit ratios (healthy)."""

    enabled: bool = True
    # A member's requests around a play, per play (x2 = per member and day at the stub's
    # nominal 2 plays per member per day): the home page once, a few browse rows, now and
    # then a search; a login when the token has expired; rarely a signup.
    home_per_play: float = 1.0
    browse_per_play: float = 3.0
    search_per_play: float = 0.5
    login_per_play: float = 0.3
    signup_per_play: float = 0.01
    browse_window_ms: int = 45_000  # those requests fall in this time before the play
    entitlement_hit_ratio: float = 0.92
    manifest_hit_ratio: float = 0.85
    # Under a cache-cluster loss the origin (the services themselves) is slower.
    origin_overload_factor: float = 1.8
