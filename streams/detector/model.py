"""What the detector works with: its policy, remembered state and findings."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from contract.dimensions import ALL, CAUSE_PRIORITY
from contract.records import Incident, IncidentMetric

DimValue = tuple[str, str]


METRICS: tuple[IncidentMetric, ...] = (
    "start_failure_pct",
    "playback_failure_pct",
    "rebuffer_pct",
    "startup_p95_ms",
)


SHARE_METRIC: IncidentMetric = "plays_share_pct"  # a title's share of all plays (flash crowds)


# Failure rates: (sessions failing this minute, sessions at risk this minute). Start
# failures are judged against this minute's plays, so long-running sessions do not dilute
# a fault that only breaks new starts (an OCA or a licence server going down).
_RATES: dict[str, tuple[str, str]] = {
    "playback_failure_pct": ("failed_sessions", "active_sessions"),
    "start_failure_pct": ("failed_starts", "plays"),
}


# Tie-break between equally narrow explanations (e.g. an ISP served by exactly one OCA):
# infrastructure before client, client before content.
_DIM_PRIORITY = (*CAUSE_PRIORITY, ALL)


@dataclass(frozen=True)
class DetectorPolicy:
    """Thresholds; tuned so noise never pages and real faults page in one minute."""

    min_active_sessions: int = 40
    min_plays: int = 15
    min_watch_ms: int = 30 * 60_000  # 30 viewer-minutes
    min_startup_samples: int = 40
    z_threshold: float = 4.0
    failure_min_delta: float = 5.0  # percentage points
    failure_min_ratio: float = 2.0
    rebuffer_min_delta: float = 2.0  # percentage points
    rebuffer_min_ratio: float = 3.0
    rebuffer_trial_ms: int = 10_000
    startup_min_delta_ms: float = 1_500.0
    startup_min_ratio: float = 1.5
    ewma_alpha: float = 0.2
    warmup_minutes: int = 5
    chronic_veto_z: float = 2.0
    resolve_after_minutes: int = 3
    explain_share: float = 0.9  # removing the root cause removes >= 90 % of the excess
    # A single anomalous minute pages only at this z; otherwise two minutes in a row.
    immediate_z: float = 6.0
    removal_share: float = 0.5  # a root cause found by removal carries half the excess
    narrow_prior_log: float = 2.5  # odds (log) the narrower explanation starts with
    narrow_sure_log: float = 1.0  # odds (log) at which the narrower one is taken at once
    min_window_plays: int = 10  # start failures: plays over `start_window_minutes`
    # Start failures are judged over the last few minutes' plays (distinct sessions), so a
    # small OCA's outage is measurable within minutes, not only a big one's.
    start_window_minutes: int = 3
    # Localisation by removal: the aggregate without the root cause is back to normal
    # (its tail against the aggregate's own baseline is no smaller than this z-score).
    normal_z: float = 3.0
    # A title's share of plays (flash crowds): the share must at least double and grow
    # by this many points; its cohort is its plays this minute (min_plays).
    share_min_delta: float = 3.0
    share_min_ratio: float = 2.0


DEFAULT_POLICY = DetectorPolicy()


class Baseline(BaseModel):
    """EWMA mean and variance of one metric of one dimension value."""

    model_config = ConfigDict(extra="forbid")

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, x: float, alpha: float) -> None:
        """Fold in one normal observation."""
        # Plain numbers, no validation on assignment: what assigning the three fields does
        # through pydantic's `__setattr__` (values and fields-set), a thousand times a minute.
        f = self.__dict__
        if f["n"] == 0:
            f["mean"], f["var"] = x, 0.0
        else:
            d = x - f["mean"]
            f["mean"] += alpha * d
            f["var"] = (1 - alpha) * (f["var"] + alpha * d * d)
        f["n"] += 1
        self.__pydantic_fields_set__.update(_BASELINE_FIELDS)


_BASELINE_FIELDS = ("mean", "var", "n")


class OpenIncident(BaseModel):
    """Book-keeping of an incident that has not resolved yet."""

    model_config = ConfigDict(extra="forbid")

    incident: Incident
    normal_streak: int = 0


class DetectorState(BaseModel):
    """Everything the detector remembers between minutes (serializable)."""

    model_config = ConfigDict(extra="forbid")

    baselines: dict[str, Baseline] = Field(default_factory=dict)
    open: dict[str, OpenIncident] = Field(default_factory=dict)
    # Metric -> the last minute (window start, ms) it had a localised anomaly.
    pending: dict[str, int] = Field(default_factory=dict)
    pending_streak: dict[str, int] = Field(default_factory=dict)  # minutes in a row
    # Metric -> the root cause ("dimension|value") of that anomaly, and the first minute
    # (window start, ms) of its run of minutes in a row with that same cause: an incident
    # confirmed on a later minute of the run started at the first.
    pending_cause: dict[str, str] = Field(default_factory=dict)
    pending_since: dict[str, int] = Field(default_factory=dict)
    last_window_ms: int | None = None
    # Previous minutes' (failed_starts, plays) per "dimension|value", by window start (ms).
    recent_starts: dict[str, dict[str, list[int]]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """One dimension value's departure on one metric in one minute."""

    metric: IncidentMetric
    dim: DimValue
    observed: float
    expected: float
    cohort: float
    affected: int
    z: float
    tentative: bool = False  # localised, but a wider value may still turn out the cause


_STALL_SHARE = "stalling_share"  # baseline of rebuffering_sessions / active_sessions


def _bkey(metric: str, dim: DimValue) -> str:
    return f"{metric}|{dim[0]}|{dim[1]}"
