"""Fault scenarios: one fault on one dimension value for a window of simulated time.

Each scenario names the dimension it hits (as the event field path), the value it picks
from the population (the busiest one, so the effect is measurable) and the metric it moves.
After a run, `ScenarioTruth` records what actually happened: the answer key for incident
detection and for the support console's "was this member hit by a known incident".
"""

from __future__ import annotations

import json
from collections import Counter
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
]
SCENARIOS: tuple[str, ...] = ScenarioName.__args__  # type: ignore[attr-defined]


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


def choose_fault(name: str, population: Population, start_ms: int, end_ms: int) -> Fault | None:
    """The fault of scenario `name` over [start_ms, end_ms), or None for `normal`."""
    if name == "normal":
        return None
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

    def write(self, path: Path) -> None:
        """Write as pretty JSON (ids sorted, so the file is stable per seed)."""
        record = asdict(self)
        record["affected_member_ids"] = sorted(self.affected_member_ids)
        record["affected_session_ids"] = sorted(self.affected_session_ids)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def scenario_truth(
    name: str, seed: int, fault: Fault | None, sessions: dict[str, str]
) -> ScenarioTruth:
    """The ground truth of a finished run; `sessions` maps affected session id -> member id."""
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
        affected_member_ids=tuple(sorted(set(sessions.values()))),
        affected_session_ids=tuple(sorted(sessions)),
        params={
            "fail_p": fault.fail_p,
            "throughput_factor": fault.throughput_factor,
            "boost": fault.boost,
        },
    )
