"""Incident detection with root-cause localisation over merged minute rollups.

Per minute the detector sees every dimension value's `MinuteCounts` (partials merged) and,
for three metrics (playback failure %, rebuffer %, startup p95), asks of every value with a
big enough cohort:

1. siblings: is it significantly worse than the rest of the traffic in the same minute
   (the aggregate without it)? This catches faults present from the very first minute,
   when no history exists yet;
2. history: is it significantly worse than its own EWMA baseline (mean and variance,
   updated only with normal minutes)? This catches faults hitting everything ("all").

Significance needs all of: a minimum cohort (small cohorts never page), a minimum
absolute and relative departure, and a tail probability at least as small as a z-score of
`z_threshold` (exact binomial for failure %; exact binomial on the share of viewers who
stalled for rebuffer %, because stall time is heavy-tailed and clustered in a few bad
lines; exact binomial on "share of starts slower than the reference p95" for startup p95).
Exact tails matter: a normal approximation with a handful of expected failures pages on
noise once many values are tested every minute.

Localisation: among anomalous values, the narrowest one (smallest cohort) whose removal
takes away most of the aggregate's excess over the typical level (see `localise`) is the
root cause; if none does, "all" when it is anomalous itself, else the value with the
largest excess. An open incident with the same metric is updated, not raised again, while its
dimension value stays anomalous; it resolves after `resolve_after_minutes` normal minutes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist, median

from pydantic import BaseModel, ConfigDict, Field

from contract import metrics
from contract.dimensions import ALL, CAUSE_PRIORITY
from contract.records import Incident, IncidentMetric, MinuteCounts, Severity
from contract.sketch import bucket_of

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
        if self.n == 0:
            self.mean, self.var = x, 0.0
        else:
            d = x - self.mean
            self.mean += alpha * d
            self.var = (1 - alpha) * (self.var + alpha * d * d)
        self.n += 1


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


# --- metric views over counts ---------------------------------------------------------------


def _value(metric: IncidentMetric, c: MinuteCounts) -> float | None:
    if metric in _RATES:
        k, n = _RATES[metric]
        return metrics.ratio_pct(getattr(c, k), getattr(c, n))
    if metric == "rebuffer_pct":
        return c.rebuffer_pct
    return c.startup.quantile(0.95)


_STALL_SHARE = "stalling_share"  # baseline of rebuffering_sessions / active_sessions


def _cohort(metric: IncidentMetric, c: MinuteCounts) -> float:
    if metric in _RATES:
        return float(getattr(c, _RATES[metric][1]))
    if metric == "rebuffer_pct":
        return c.watch_ms + c.rebuffer_ms
    return c.startup.count


def _big_enough(metric: IncidentMetric, c: MinuteCounts, p: DetectorPolicy) -> bool:
    need = {
        "playback_failure_pct": p.min_active_sessions,
        "start_failure_pct": p.min_window_plays,
        "rebuffer_pct": p.min_watch_ms,
        "startup_p95_ms": p.min_startup_samples,
    }[metric]
    if metric == "rebuffer_pct" and c.active_sessions < p.min_active_sessions:
        return False
    return _cohort(metric, c) >= need


def _affected(metric: IncidentMetric, c: MinuteCounts) -> int:
    if metric in _RATES:
        return int(getattr(c, _RATES[metric][0]))
    return c.active_sessions


def _two_proportion_z(k1: float, n1: float, k2: float, n2: float) -> float:
    if n1 <= 0 or n2 <= 0:
        return 0.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(max(p * (1 - p), 1e-9) * (1 / n1 + 1 / n2))
    return (k1 / n1 - k2 / n2) / se


def _departs(metric: IncidentMetric, x: float, ref: float, p: DetectorPolicy) -> bool:
    """Big enough in absolute and relative terms to matter to a viewer."""
    if metric in _RATES:
        return x - ref >= p.failure_min_delta and x >= ref * p.failure_min_ratio
    if metric == "rebuffer_pct":
        return x - ref >= p.rebuffer_min_delta and x >= ref * p.rebuffer_min_ratio
    return x - ref >= p.startup_min_delta_ms and x >= ref * p.startup_min_ratio


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p); exact (small counts are where faults start)."""
    if k <= n * p:
        return 1.0  # only the upper tail matters here
    if k > n:
        return 0.0
    p = min(max(p, 1e-9), 1 - 1e-9)
    log_p, log_q = math.log(p), math.log(1 - p)
    lg_n = math.lgamma(n + 1)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(
            lg_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        )
        total += term
        if term < 1e-15 * total:
            break  # past the mode, terms only shrink
    return min(1.0, total)


def _poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= lam:
        return 1.0
    lam = max(lam, 1e-9)
    total = 0.0
    for i in range(k, k + 10_000):
        term = math.exp(i * math.log(lam) - lam - math.lgamma(i + 1))
        total += term
        if term < 1e-15 * total:
            break
    return min(1.0, total)


def _z_of(p_value: float) -> float:
    """The one-sided z-score with the same tail probability (for one threshold)."""
    return -NormalDist().inv_cdf(min(max(p_value, 1e-300), 0.5))


def _sibling_z(
    metric: IncidentMetric, c: MinuteCounts, rest: MinuteCounts, p: DetectorPolicy
) -> float:
    """How surprising this value is next to the rest of the traffic, as a z-score.

    Exact tails for counts: small cohorts are where a normal approximation pages on noise.
    """
    if metric in _RATES:
        k, n = _RATES[metric]
        rate = max(getattr(rest, k), 0.5) / max(getattr(rest, n), 1)
        return _z_of(_binom_sf(getattr(c, k), getattr(c, n), rate))
    if metric == "rebuffer_pct":
        # Stall time is heavy-tailed and clustered (one bad line stalls again and again),
        # so the test counts viewers: sessions that stalled, against the rest's share.
        rate = max(rest.rebuffering_sessions, 0.5) / max(rest.active_sessions, 1)
        return _z_of(_binom_sf(c.rebuffering_sessions, c.active_sessions, rate))
    # Startup: share of this value's starts slower than the rest's p95, against 5 %.
    ref = rest.startup.quantile(0.95)
    return 0.0 if ref is None else _share_slower_z(c, ref)


def _finding(
    metric: IncidentMetric, dim: DimValue, x: float, ref: float, c: MinuteCounts, z: float
) -> Finding:
    return Finding(metric, dim, x, ref, _cohort(metric, c), _affected(metric, c), z)


def _history_z(
    metric: IncidentMetric,
    x: float,
    b: Baseline,
    c: MinuteCounts,
    share: Baseline | None = None,
) -> float:
    """z of this minute against the value's own EWMA baseline.

    The sampling noise of this minute's estimate (binomial for the two percentages) adds
    to the baseline's variance. A p95 from a few dozen starts is too noisy for a plain
    z-score, so startup asks the robust question instead: are far more than 5 % of this
    minute's starts slower than the usual p95?
    """
    if metric == "startup_p95_ms":
        return _share_slower_z(c, b.mean)
    if metric in _RATES:
        k, n = _RATES[metric]
        rate = min(max(b.mean / 100, 1e-4), 1.0)
        return _z_of(_binom_sf(getattr(c, k), getattr(c, n), rate))
    # Rebuffer: viewers who stalled against the usual share of stalling viewers.
    if share is None or share.n == 0:
        return 0.0
    rate = min(max(share.mean, 1e-4), 1.0)
    return _z_of(_binom_sf(c.rebuffering_sessions, c.active_sessions, rate))


def _share_slower_z(c: MinuteCounts, p95_ref: float) -> float:
    """z of the share of starts slower than `p95_ref`, against 5 % (exact binomial)."""
    slow = sum(k for b, k in c.startup.buckets.items() if b > bucket_of(p95_ref))
    return _z_of(_binom_sf(slow, c.startup.count, 0.05))


def _floored(b: Baseline | None, floor: Baseline | None) -> Baseline | None:
    """`b` with its mean raised to `floor`'s when `floor` is warm and higher."""
    if b is None or floor is None or floor.n == 0 or floor.mean <= b.mean:
        return b
    return Baseline(mean=floor.mean, var=b.var, n=b.n)


def _excess(metric: IncidentMetric, c: MinuteCounts, typical: float) -> float:
    """How much worse than `typical` a cohort is, in additive units (sessions, ms, starts).

    Additive, so the excess of "everything but v" is comparable with the excess of all.
    """
    if metric in _RATES:
        k, n = _RATES[metric]
        return float(getattr(c, k) - getattr(c, n) * typical / 100)
    if metric == "rebuffer_pct":
        return c.rebuffer_ms - (c.watch_ms + c.rebuffer_ms) * typical / 100
    slow = sum(k for b, k in c.startup.buckets.items() if b > bucket_of(typical))
    return slow - 0.05 * c.startup.count


def _bkey(metric: str, dim: DimValue) -> str:
    return f"{metric}|{dim[0]}|{dim[1]}"


def incident_id(metric: str, dim: DimValue, started_at: datetime) -> str:
    """Deterministic id: the same fault replayed gives the same incident id."""
    raw = f"{metric}|{dim[0]}|{dim[1]}|{started_at.isoformat()}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _severity(observed: float, expected: float, affected: int) -> Severity:
    ratio = observed / expected if expected > 0 else math.inf
    if affected >= 500 or ratio >= 5:
        return "critical"
    if affected >= 100 or ratio >= 2.5:
        return "major"
    return "minor"


# --- one minute ---------------------------------------------------------------------------


def _start_view(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts]
) -> dict[DimValue, MinuteCounts]:
    """Start failures and plays of this minute plus the previous ones kept in `state`."""
    sums: dict[DimValue, list[int]] = {dim: [c.failed_starts, c.plays] for dim, c in values.items()}
    for minute in state.recent_starts.values():
        for key, (k, n) in minute.items():
            d, _, v = key.partition("|")
            acc = sums.setdefault((d, v), [0, 0])
            acc[0] += k
            acc[1] += n
    return {dim: MinuteCounts(failed_starts=k, plays=n) for dim, (k, n) in sums.items()}


def _in_play_view(values: Mapping[DimValue, MinuteCounts]) -> dict[DimValue, MinuteCounts]:
    """Active sessions and the failures after first frame (start failures are their own
    metric: one fault, one incident)."""
    return {
        dim: MinuteCounts(
            active_sessions=c.active_sessions,
            failed_sessions=max(c.failed_sessions - c.failed_starts, 0),
        )
        for dim, c in values.items()
    }


def views(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts]
) -> dict[IncidentMetric, Mapping[DimValue, MinuteCounts]]:
    """The counts each metric is judged on: this minute, or a few for start failures;
    playback failures without the start failures (judged by start_failure_pct)."""
    out: dict[IncidentMetric, Mapping[DimValue, MinuteCounts]] = {m: values for m in METRICS}
    out["start_failure_pct"] = _start_view(state, values)
    out["playback_failure_pct"] = _in_play_view(values)
    out[SHARE_METRIC] = values
    return out


def _share_findings(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts], policy: DetectorPolicy
) -> list[Finding]:
    """Titles whose share of this minute's plays is far above their usual share.

    Shares, not plays: the daily load ramp moves every title's plays, not its share.
    """
    total = values.get((ALL, ALL))
    out: list[Finding] = []
    if total is None or total.plays <= 0:
        return out
    for dim, c in values.items():
        if dim[0] != "title_id" or c.plays < policy.min_plays:
            continue
        b = state.baselines.get(_bkey(SHARE_METRIC, dim))
        if b is None or b.n < policy.warmup_minutes:
            continue
        x = 100.0 * c.plays / total.plays
        z = _z_of(_binom_sf(c.plays, total.plays, min(max(b.mean / 100, 1e-4), 1.0)))
        if (
            z >= policy.z_threshold
            and x - b.mean >= policy.share_min_delta
            and x >= b.mean * policy.share_min_ratio
        ):
            out.append(Finding(SHARE_METRIC, dim, x, b.mean, float(c.plays), c.plays, z))
    return out


def find(
    state: DetectorState,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
) -> dict[IncidentMetric, list[Finding]]:
    """Every anomalous dimension value per metric in this minute (no state change)."""
    out: dict[IncidentMetric, list[Finding]] = {m: [] for m in (*METRICS, SHARE_METRIC)}
    if (ALL, ALL) not in values:
        return out
    per_metric = views(state, values)
    out[SHARE_METRIC] = _share_findings(state, values, policy)
    for metric in METRICS:
        view = per_metric[metric]
        total = view[(ALL, ALL)]
        b_all = state.baselines.get(_bkey(metric, (ALL, ALL)))
        share_all = state.baselines.get(_bkey(_STALL_SHARE, (ALL, ALL)))
        for dim, c in view.items():
            if not _big_enough(metric, c, policy):
                continue
            x = _value(metric, c)
            if x is None:
                continue
            finding: Finding | None = None
            b = state.baselines.get(_bkey(metric, dim))
            # A p95 of a few dozen starts is too noisy (and biased low) to hold against
            # its own history; per value, startup is judged against siblings only.
            history_ok = metric != "startup_p95_ms" or dim == (ALL, ALL)
            warm = history_ok and b is not None and b.n >= policy.warmup_minutes
            hz: float | None = None
            if warm and b is not None:
                share = state.baselines.get(_bkey(_STALL_SHARE, dim))
                if dim != (ALL, ALL):
                    # A value that never failed in its short history is not expected to
                    # never fail: its usual level is at least the aggregate's usual level.
                    b = _floored(b, b_all) or b
                    share = _floored(share, share_all)
                hz = _history_z(metric, x, b, c, share)
            if dim != (ALL, ALL):
                rest = total.minus(c)
                r = _value(metric, rest)
                if r is not None and _big_enough(metric, rest, policy):
                    z = _sibling_z(metric, c, rest, policy)
                    # A value that is always worse than its siblings (a poor ISP) is
                    # judged by its own history once it has one: no page for its usual.
                    chronic = hz is not None and hz < policy.chronic_veto_z
                    if z >= policy.z_threshold and _departs(metric, x, r, policy) and not chronic:
                        finding = _finding(metric, dim, x, r, c, z)
            if (
                finding is None
                and hz is not None
                and b is not None
                and hz >= policy.z_threshold
                and _departs(metric, x, b.mean, policy)
            ):
                finding = _finding(metric, dim, x, b.mean, c, hz)
            if finding is not None:
                out[metric].append(finding)
    return out


def _typical(
    metric: IncidentMetric,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy,
    baseline: Baseline | None,
) -> float | None:
    """The metric's normal level this minute.

    Per dimension, the median over its values with a big enough cohort; a fault confined
    to one value of some dimension leaves that dimension's median normal, while it may
    lift every value of the other dimensions (it spreads across regions, titles...). So
    the lowest per-dimension median, and the "all" baseline once warmed up, whichever is
    lower.
    """
    per_dim: dict[str, list[float]] = {}
    for (d, _), c in values.items():
        if d == ALL or not _big_enough(metric, c, policy):
            continue
        x = _value(metric, c)
        if x is not None:
            per_dim.setdefault(d, []).append(x)
    candidates = [median(xs) for xs in per_dim.values() if len(xs) >= 2]
    if baseline is not None and baseline.n >= policy.warmup_minutes:
        candidates.append(baseline.mean)
    return min(candidates) if candidates else None


def _sibling_anomalous(
    metric: IncidentMetric,
    c: MinuteCounts,
    rest: MinuteCounts,
    z_min: float,
    policy: DetectorPolicy,
) -> bool:
    """`c` is significantly and materially worse than `rest` (no minimum cohort)."""
    if _cohort(metric, c) <= 0 or _cohort(metric, rest) <= 0:
        return False
    if metric in _RATES and getattr(c, _RATES[metric][0]) <= 0:
        return False
    x, r = _value(metric, c), _value(metric, rest)
    if x is None or r is None or not _departs(metric, x, r, policy):
        return False
    return _sibling_z(metric, c, rest, policy) >= z_min


def _rate_counts(metric: IncidentMetric, c: MinuteCounts) -> tuple[int, int] | None:
    """(viewers hit, viewers at risk) behind a metric; None for startup."""
    if metric in _RATES:
        k, n = _RATES[metric]
        return int(getattr(c, k)), int(getattr(c, n))
    if metric == "rebuffer_pct":
        return c.rebuffering_sessions, c.active_sessions
    return None


def _explained(
    metric: IncidentMetric,
    remainder: MinuteCounts,
    reference: MinuteCounts,
    candidate: MinuteCounts,
    policy: DetectorPolicy,
) -> bool | None:
    """A finding without the candidate (`remainder`) is back to normal.

    Normal: not significantly worse than `reference`, and (for proportions) more likely at
    the reference's rate than at the candidate's. The second test separates "the newest
    app version of one OS" from "the whole OS" when the remainder is a small cohort that
    no significance test can judge yet: a few failures in it point to the wider value.
    """
    if _sibling_anomalous(metric, remainder, reference, policy.normal_z, policy):
        return False
    if metric == "startup_p95_ms":
        # Starts slower than the reference's p95: 5 % of the reference's by definition.
        p95 = reference.startup.quantile(0.95)
        if p95 is None:
            return True
        top = bucket_of(p95)
        slow = (
            sum(k for b, k in remainder.startup.buckets.items() if b > top),
            remainder.startup.count,
        )
        ref = (0.05 * reference.startup.count, reference.startup.count)
        cand = (
            sum(k for b, k in candidate.startup.buckets.items() if b > top),
            candidate.startup.count,
        )
        kn: tuple[float, float] | None = slow
    else:
        kn, ref_c, cand_c = (_rate_counts(metric, x) for x in (remainder, reference, candidate))
        if ref_c is None or cand_c is None:
            return True
        ref, cand = ref_c, cand_c
    if kn is None or kn[1] <= 0:
        return True
    k, n = min(max(kn[0], 0), kn[1]), kn[1]
    p0 = min(max(max(ref[0], 0.5) / max(ref[1], 1), 1e-6), 1 - 1e-6)
    p1 = min(max(cand[0] / max(cand[1], 1), 1e-6), 1 - 1e-6)
    if p1 <= p0:
        return True
    log_lr = k * math.log(p0 / p1) + (n - k) * math.log((1 - p0) / (1 - p1))
    # The narrower explanation is preferred unless the remainder clearly says otherwise
    # (a background failure or two in it is no evidence of a wider fault); in between,
    # the evidence is weighed again next minute.
    if log_lr >= policy.narrow_sure_log:
        return True
    return None if log_lr >= -policy.narrow_prior_log else False


def _by_removal(
    metric: IncidentMetric,
    findings: list[Finding],
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy,
) -> Finding | None:
    """The narrowest value whose removal brings every anomalous value back to normal.

    A candidate must be clearly worse than the traffic without it; then each finding
    without the candidate's sessions must no longer be worse than that traffic. A value
    below the minimum cohort may be the answer (a small OCA inside an anomalous ISP): the
    findings already established that something is wrong, removal says where.
    """
    total = values[(ALL, ALL)]
    total_cohort = _cohort(metric, total)
    best: tuple[tuple[float, int], Finding] | None = None
    max_excess = _max_excess(metric, findings, values)
    for dim, c in values.items():
        cohort = _cohort(metric, c)
        if dim == (ALL, ALL) or not 0 < cohort < total_cohort:
            continue
        if best is not None and (cohort, _DIM_PRIORITY.index(dim[0])) >= best[0]:
            continue
        found = _removal_candidate(metric, dim, findings, values, policy, max_excess)
        if found is not None:
            best = ((cohort, _DIM_PRIORITY.index(dim[0])), found)
    return None if best is None else best[1]


def _lingering(
    metric: IncidentMetric,
    dim: DimValue,
    view: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy,
) -> bool:
    """An open incident's value is still somewhat worse than the rest (its fault's tail)."""
    c = view.get(dim)
    if metric == SHARE_METRIC or c is None or dim == (ALL, ALL):
        return False
    return _sibling_anomalous(metric, c, view[(ALL, ALL)].minus(c), policy.normal_z, policy)


def _max_excess(
    metric: IncidentMetric, findings: list[Finding], values: Mapping[DimValue, MinuteCounts]
) -> float:
    """The largest excess of a finding over the traffic outside it (additive units)."""
    total = values[(ALL, ALL)]
    out = 0.0
    for f in findings:
        if f.dim != (ALL, ALL):
            c = values[f.dim]
            r = _value(metric, total.minus(c))
            if r is not None:
                out = max(out, _excess(metric, c, r))
    return out


def _removal_candidate(
    metric: IncidentMetric,
    dim: DimValue,
    findings: list[Finding],
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy,
    max_excess: float,
) -> Finding | None:
    """`dim` as the root cause of this minute's findings, or None if it is not one."""
    total = values[(ALL, ALL)]
    c = values.get(dim)
    if c is None or dim == (ALL, ALL):
        return None
    rest = total.minus(c)
    if not _sibling_anomalous(metric, c, rest, policy.normal_z, policy):
        return None
    # Each finding without the candidate, against the traffic outside that finding.
    verdicts = [
        _explained(metric, values[f.dim].minus(c), total.minus(values[f.dim]), c, policy)
        for f in findings
        if f.dim not in (dim, (ALL, ALL))
    ]
    if False in verdicts:
        return None
    x, r = _value(metric, c), _value(metric, rest)
    if x is None or r is None or _excess(metric, c, r) < policy.removal_share * max_excess:
        return None
    z = _sibling_z(metric, c, rest, policy)
    return Finding(metric, dim, x, r, _cohort(metric, c), _affected(metric, c), z, None in verdicts)


def localise(
    metric: IncidentMetric,
    findings: list[Finding],
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
    baseline: Baseline | None = None,
) -> Finding | None:
    """The finding that best explains the minute, or None.

    "Normal" is the typical value (see `_typical`). A value explains the minute when
    the aggregate without it keeps at most `1 - explain_share` of the aggregate's excess
    over normal; the narrowest such value wins. When no single value explains it, "all"
    does if it is anomalous itself (a global fault), else the value with most excess.
    """
    if not findings:
        return None
    if metric == SHARE_METRIC:
        # The title with most plays above its usual share.
        return max(findings, key=lambda f: f.cohort * (1 - f.expected / max(f.observed, 1e-9)))
    removal = _by_removal(metric, findings, values, policy)
    if removal is not None:
        return removal
    total = values[(ALL, ALL)]
    # A value that carries all the traffic (one OS everywhere) localises nothing.
    narrow = [f for f in findings if f.dim != (ALL, ALL) and f.cohort < _cohort(metric, total)]
    typical = _typical(metric, values, policy, baseline)
    if typical is not None:
        total_excess = _excess(metric, total, typical)
        if total_excess > 0:
            explaining = [
                f
                for f in narrow
                if _excess(metric, total.minus(values[f.dim]), typical)
                <= (1 - policy.explain_share) * total_excess
            ]
            if explaining:
                return min(explaining, key=lambda f: (f.cohort, _DIM_PRIORITY.index(f.dim[0])))
            whole = [f for f in findings if f.dim == (ALL, ALL)]
            if whole:
                return whole[0]
            return max(narrow, key=lambda f: _excess(metric, values[f.dim], typical), default=None)
    whole = [f for f in findings if f.dim == (ALL, ALL)]
    return whole[0] if whole else max(narrow, key=lambda f: (f.observed - f.expected) * f.cohort)


def evaluate(
    state: DetectorState,
    window_start: datetime,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
) -> list[Incident]:
    """Evaluate one closed minute; returns incidents opened or resolved (state mutated)."""
    window_end = window_start + timedelta(minutes=1)
    window_ms = int(window_start.timestamp() * 1000)
    findings = find(state, values, policy)
    per_metric = views(state, values)
    emitted: list[Incident] = []
    anomalous = {(f.metric, f.dim) for fs in findings.values() for f in fs}
    bests: dict[IncidentMetric, Finding] = {}
    for metric, fs in findings.items():
        view = per_metric[metric]
        best = localise(metric, fs, view, policy, state.baselines.get(_bkey(metric, (ALL, ALL))))
        if best is not None:
            bests[metric] = best
            if (metric, best.dim) not in anomalous:
                fs.append(best)
                anomalous.add((metric, best.dim))
    # An open incident's value stays anomalous while it is clearly worse than the rest of
    # the traffic, even below the minimum cohort it was localised with.
    for oi in state.open.values():
        metric, dim = oi.incident.metric, (oi.incident.dimension, oi.incident.value)
        view = per_metric[metric]
        if (metric, dim) in anomalous or metric == SHARE_METRIC or dim not in view:
            continue
        total = view[(ALL, ALL)]
        c = view[dim]
        if dim != (ALL, ALL) and _sibling_anomalous(
            metric, c, total.minus(c), policy.z_threshold, policy
        ):
            x, r = _value(metric, c), _value(metric, total.minus(c))
            assert x is not None and r is not None
            z = _sibling_z(metric, c, total.minus(c), policy)
            findings[metric].append(_finding(metric, dim, x, r, c, z))
            anomalous.add((metric, dim))

    # 1. Open incidents: update while anomalous, resolve after a run of normal minutes.
    for key in list(state.open):
        oi = state.open[key]
        inc = oi.incident
        dim = (inc.dimension, inc.value)
        if (inc.metric, dim) in anomalous:
            f = next(f for f in findings[inc.metric] if f.dim == dim)
            oi.normal_streak = 0
            oi.incident = inc.model_copy(
                update={
                    "last_anomalous_at": window_start,
                    "affected_sessions": inc.affected_sessions
                    + (f.affected if inc.metric in _RATES else 0),
                    "observed": max(inc.observed, f.observed),
                }
            )
            if inc.metric not in _RATES:
                oi.incident = oi.incident.model_copy(
                    update={"affected_sessions": max(inc.affected_sessions, f.affected)}
                )
        else:
            oi.normal_streak += 1
            if oi.normal_streak >= policy.resolve_after_minutes:
                resolved = oi.incident.model_copy(
                    update={
                        "status": "resolved",
                        "revision": oi.incident.revision + 1,
                        "resolved_at": window_end,
                    }
                )
                emitted.append(resolved)
                del state.open[key]

    # 2. New incidents: one per metric, localised; suppressed while one is open for the
    #    same metric and its dimension value is still anomalous (the same fault).
    for metric in (*METRICS, SHARE_METRIC):
        best = bests.get(metric)
        if best is None:
            continue
        view = per_metric[metric]
        same_metric_open = [
            oi
            for oi in state.open.values()
            if oi.incident.metric == metric
            and (
                (metric, (oi.incident.dimension, oi.incident.value)) in anomalous
                or _lingering(metric, (oi.incident.dimension, oi.incident.value), view, policy)
            )
        ]
        # Start failures are failures too: one fault, one incident.
        same_fault_open = metric in _RATES and any(
            oi.incident.metric in _RATES and (oi.incident.dimension, oi.incident.value) == best.dim
            for oi in state.open.values()
        )
        # A symptom of an open incident's fault on another metric (slow starts behind a
        # licence outage): that value explains this metric's anomaly too.
        other_open = metric != SHARE_METRIC and any(
            (oi.incident.dimension, oi.incident.value) != best.dim
            and _removal_candidate(
                metric,
                (oi.incident.dimension, oi.incident.value),
                findings[metric],
                view,
                policy,
                _max_excess(metric, findings[metric], view),
            )
            is not None
            for oi in state.open.values()
            if oi.incident.metric != metric
        )
        if same_metric_open or same_fault_open or other_open:
            continue
        # One minute pages only on overwhelming evidence; otherwise the metric must have
        # been anomalous the minute before too (noise rarely lasts, faults do).
        previous = state.pending.get(metric)
        streak = state.pending_streak.get(metric, 0) if previous == window_ms - 60_000 else 0
        if best.tentative and streak < 2:
            continue
        if best.z < policy.immediate_z and streak < 1:
            continue
        iid = incident_id(metric, best.dim, window_start)
        inc = Incident(
            incident_id=iid,
            status="open",
            metric=metric,
            dimension=best.dim[0],
            value=best.dim[1],
            started_at=window_start,
            detected_at=window_end,
            last_anomalous_at=window_start,
            observed=best.observed,
            expected=best.expected,
            affected_sessions=best.affected,
            severity=_severity(best.observed, best.expected, best.affected),
            explanation=(
                f"{metric} {best.observed:.1f} vs {best.expected:.1f} expected for "
                f"{best.dim[0]}={best.dim[1]} (z={best.z:.1f}); removing it brings the "
                f"aggregate back to normal"
            ),
        )
        state.open[iid] = OpenIncident(incident=inc)
        emitted.append(inc)

    # 3. Baselines learn only from normal minutes with a big enough cohort.
    for metric in METRICS:
        for dim, c in per_metric[metric].items():
            if (metric, dim) in anomalous or not _big_enough(metric, c, policy):
                continue
            x = _value(metric, c)
            if x is not None:
                state.baselines.setdefault(_bkey(metric, dim), Baseline()).update(
                    x, policy.ewma_alpha
                )
            if metric == "rebuffer_pct" and c.active_sessions:
                state.baselines.setdefault(_bkey(_STALL_SHARE, dim), Baseline()).update(
                    c.rebuffering_sessions / c.active_sessions, policy.ewma_alpha
                )
    everything = values.get((ALL, ALL))
    if everything is not None and everything.plays > 0:
        for dim, c in values.items():
            if dim[0] == "title_id" and (SHARE_METRIC, dim) not in anomalous:
                state.baselines.setdefault(_bkey(SHARE_METRIC, dim), Baseline()).update(
                    100.0 * c.plays / everything.plays, policy.ewma_alpha
                )
    state.pending_streak = {
        m: state.pending_streak.get(m, 0) + 1 if state.pending.get(m) == window_ms - 60_000 else 1
        for m in bests
    }
    state.pending = {m: window_ms for m in bests}
    # Keep this minute's start counts for the next minutes' start-failure window.
    state.recent_starts[str(window_ms)] = {
        f"{d}|{v}": [c.failed_starts, c.plays]
        for (d, v), c in values.items()
        if c.plays or c.failed_starts
    }
    keep_from = window_ms - (policy.start_window_minutes - 1) * 60_000
    for key in [k for k in state.recent_starts if int(k) < keep_from]:
        del state.recent_starts[key]
    state.last_window_ms = window_ms
    return emitted


def merge_partials(
    rollups: list[tuple[DimValue, MinuteCounts]],
) -> dict[DimValue, MinuteCounts]:
    """Sum the partials of one minute into one `MinuteCounts` per dimension value."""
    out: dict[DimValue, MinuteCounts] = {}
    for dim, c in rollups:
        acc = out.get(dim)
        if acc is None:
            out[dim] = c.model_copy(deep=True)
        else:
            acc.merge_in(c)
    return out
