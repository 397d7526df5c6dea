"""Fault scenarios: one fault on one dimension value for a window of simulated time.

Each scenario names the dimension it hits (as the event field path), the value it picks
from the population (the busiest one, so the effect is measurable) and the metric it moves.
After a run, `ScenarioTruth` records what actually happened: the answer key for incident
detection and for the support console's "was this member hit by a known incident".
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from platform_stub.encoding import iso_ms
from platform_stub.population import Population

ScenarioName = Literal[
    "normal",
    "oca_outage",
    "isp_congestion",
    "drm_license_outage",
    "bad_app_release",
    "flash_crowd",
    "license_5xx_region",
    "playback_latency_spike",
    "steering_distant_oca",
    "cache_cluster_loss",
    "bad_gateway_deploy",
    "login_outage",
]
SCENARIOS: tuple[str, ...] = ScenarioName.__args__  # type: ignore[attr-defined]
# Faults in the control plane's services: their ground truth names a service (and a region
# or an instance group); the player-side ones name a QoE dimension.
CONTROL_PLANE_SCENARIOS: tuple[str, ...] = (
    "license_5xx_region",
    "playback_latency_spike",
    "steering_distant_oca",
    "cache_cluster_loss",
    "bad_gateway_deploy",
    "login_outage",
)
QOE_SCENARIOS: tuple[str, ...] = tuple(s for s in SCENARIOS if s not in CONTROL_PLANE_SCENARIOS)


@dataclass(frozen=True)
class Fault:
    """An active fault: what, where (dimension = value) and when (event time, ms)."""

    kind: str
    start_ms: int
    end_ms: int
    dimension: str  # event field path, e.g. "network.oca_id"
    value: str
    metric: str  # the DESIGN.md metric this fault moves
    fail_p: float = 0.0  # chance a session in scope hits the fatal error
    throughput_factor: float = 1.0  # multiplier on throughput while congested
    boost: float = 1.0  # start-rate multiplier for the flash-crowd title
    # Control-plane faults: which service (endpoint, region, instance group; None = all)
    # answers with errors (`fail_p`) or slower (`latency_factor`).
    service: str | None = None
    endpoint: str | None = None
    region: str | None = None
    instance_group: str | None = None
    latency_factor: float = 1.0

    def active(self, t_ms: int) -> bool:
        """Whether the fault is in effect at event time `t_ms`."""
        return self.start_ms <= t_ms < self.end_ms


def _busiest_oca(population: Population) -> str:
    load: dict[str, float] = {}
    for member in population.members:
        weights = member.isp.oca_cum_weights
        previous = 0.0
        for oca_id, cum in zip(member.isp.oca_ids, weights, strict=True):
            load[oca_id] = load.get(oca_id, 0.0) + cum - previous
            previous = cum
    return sorted(load.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def _busiest(values: list[str]) -> str:
    return sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def _service_fault(name: str, population: Population, start_ms: int, end_ms: int) -> Fault:
    """A control-plane fault, in the region with the most members."""
    region = _busiest([m.region for m in population.members])

    def fault(service: str, metric: str, **kw: object) -> Fault:
        return Fault(
            name, start_ms, end_ms, "service", service, metric, service=service, region=region,
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    if name == "license_5xx_region":
        # The DRM license service answers 503 to most requests: retries, then the player's
        # DRM error.
        return fault("license", "service_error_pct", endpoint="/license/acquire", fail_p=0.9)
    if name == "playback_latency_spike":
        return fault(
            "playback", "service_latency_p50_ms", endpoint="/playback/start", latency_factor=50.0
        )
    if name == "steering_distant_oca":
        # Steering's proximity data is gone: it falls back to its static list, which sends
        # members to an OCA half the world away (lower bitrate, more rebuffering).
        return fault("steering", "service_fallback_pct", endpoint="/steering/select", fail_p=1.0)
    if name == "cache_cluster_loss":
        return fault("cache", "service_error_pct", fail_p=1.0)
    if name == "bad_gateway_deploy":
        group = f"gateway-{region}-b"
        return fault("gateway", "service_error_pct", instance_group=group, fail_p=0.6)
    if name == "login_outage":
        return fault("auth", "service_error_pct", endpoint="/auth/login", fail_p=0.95)
    raise ValueError(f"{name!r} is not a control-plane scenario")


def choose_fault(name: str, population: Population, start_ms: int, end_ms: int) -> Fault | None:
    """The fault of scenario `name` over [start_ms, end_ms), or None for `normal`."""
    if name == "normal":
        return None
    if name in CONTROL_PLANE_SCENARIOS:
        return _service_fault(name, population, start_ms, end_ms)
    if name == "oca_outage":
        # Half the sessions fail outright; the rest fail over to origin after timeouts.
        return Fault(
            name, start_ms, end_ms, "network.oca_id", _busiest_oca(population),
            "start_failure_pct", fail_p=0.5,
        )  # fmt: skip
    if name == "isp_congestion":
        isp = _busiest([m.isp.name for m in population.members])
        return Fault(
            name, start_ms, end_ms, "network.isp", isp, "rebuffer_pct", throughput_factor=0.012
        )
    if name == "drm_license_outage":
        os_name = _busiest([d.family.os for m in population.members for d in m.devices])
        return Fault(name, start_ms, end_ms, "device.os", os_name, "start_failure_pct", fail_p=0.7)
    if name == "bad_app_release":
        devices = [d for m in population.members for d in m.devices]
        family = _busiest([d.family.key for d in devices])
        newest = next(d.family.app_versions[-1] for d in devices if d.family.key == family)
        return Fault(
            name, start_ms, end_ms, "device.app_version", newest,
            "playback_failure_pct", fail_p=0.45,
        )  # fmt: skip
    if name == "flash_crowd":
        return Fault(
            name, start_ms, end_ms, "title_id", population.premiere.title_id,
            "plays_per_minute", boost=8.0,
        )  # fmt: skip
    raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")


@dataclass(frozen=True)
class ScenarioTruth:
    """What a scenario did, written as `scenario.json` next to the run's output."""

    kind: str
    seed: int
    start: str | None
    end: str | None
    start_ms: int | None
    end_ms: int | None
    dimension: str | None
    value: str | None
    metric: str | None
    affected_member_ids: tuple[str, ...] = ()
    affected_session_ids: tuple[str, ...] = ()
    params: dict[str, float] = field(default_factory=dict)
    # Control-plane faults: the service at fault, and where (None for player-side faults).
    service: str | None = None
    endpoint: str | None = None
    region: str | None = None
    instance_group: str | None = None

    def write(self, path: Path) -> None:
        """Write as pretty JSON (ids sorted, so the file is stable per seed)."""
        record = asdict(self)
        record["affected_member_ids"] = sorted(self.affected_member_ids)
        record["affected_session_ids"] = sorted(self.affected_session_ids)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def scenario_truth(
    name: str,
    seed: int,
    fault: Fault | None,
    sessions: dict[str, str],
    members: Iterable[str] = (),
) -> ScenarioTruth:
    """The ground truth of a finished run; `sessions` maps affected session id -> member id;
    `members` are members hit outside a play (e.g. a failed login)."""
    if fault is None:
        return ScenarioTruth(name, seed, None, None, None, None, None, None, None)
    return ScenarioTruth(
        kind=fault.kind,
        seed=seed,
        start=iso_ms(fault.start_ms),
        end=iso_ms(fault.end_ms),
        start_ms=fault.start_ms,
        end_ms=fault.end_ms,
        dimension=fault.dimension,
        value=fault.value,
        metric=fault.metric,
        affected_member_ids=tuple(sorted(set(sessions.values()) | set(members))),
        affected_session_ids=tuple(sorted(sessions)),
        params={
            "fail_p": fault.fail_p,
            "throughput_factor": fault.throughput_factor,
            "boost": fault.boost,
            "latency_factor": fault.latency_factor,
        },
        service=fault.service,
        endpoint=fault.endpoint,
        region=fault.region,
        instance_group=fault.instance_group,
    )


def merge_scenario_truths(parts: Sequence[ScenarioTruth]) -> ScenarioTruth:
    """The ground truth of a run made of shards (`RunOptions.shards`): one fault, shared by
    every shard, and the union of the sessions and members each shard saw it hit."""
    if not parts:
        raise ValueError("no shard truths to merge")
    first = parts[0]
    fault_fields = dataclasses.replace(first, affected_member_ids=(), affected_session_ids=())
    for part in parts[1:]:
        other = dataclasses.replace(part, affected_member_ids=(), affected_session_ids=())
        if other != fault_fields:
            raise ValueError(f"shards disagree on the fault: {first.kind} vs {part.kind}")
    return dataclasses.replace(
        first,
        affected_member_ids=tuple(sorted({m for p in parts for m in p.affected_member_ids})),
        affected_session_ids=tuple(sorted({s for p in parts for s in p.affected_session_ids})),
    )
