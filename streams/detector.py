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

from streams import metrics
from streams.records import Incident, IncidentMetric, MinuteCounts, Severity
from streams.rollup import ALL
from streams.sketch import bucket_of

DimValue = tuple[str, str]
METRICS: tuple[IncidentMetric, ...] = (
    "start_failure_pct",
    "playback_failure_pct",
    "rebuffer_pct",
    "startup_p95_ms",
)
# Failure rates: (sessions failing this minute, sessions at risk this minute). Start
# failures are judged against this minute's plays, so long-running sessions do not dilute
# a fault that only breaks new starts (an OCA or a licence server going down).
_RATES: dict[str, tuple[str, str]] = {
    "playback_failure_pct": ("failed_sessions", "active_sessions"),
    "start_failure_pct": ("failed_starts", "plays"),
}
# Tie-break between equally narrow explanations (e.g. an ISP served by exactly one OCA):
# infrastructure before client, client before content.
_DIM_PRIORITY = ("oca_id", "isp", "region", "app_version", "os", "device_type", "title_id", ALL)


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
    last_window_ms: int | None = None


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
        "start_failure_pct": p.min_plays,
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


def find(
    state: DetectorState,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
) -> dict[IncidentMetric, list[Finding]]:
    """Every anomalous dimension value per metric in this minute (no state change)."""
    total = values.get((ALL, ALL))
    out: dict[IncidentMetric, list[Finding]] = {m: [] for m in METRICS}
    if total is None:
        return out
    for metric in METRICS:
        for dim, c in values.items():
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
    findings = find(state, values, policy)
    emitted: list[Incident] = []
    anomalous = {(f.metric, f.dim) for fs in findings.values() for f in fs}

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
    for metric in METRICS:
        best = localise(
            metric,
            findings[metric],
            values,
            policy,
            state.baselines.get(_bkey(metric, (ALL, ALL))),
        )
        if best is None:
            continue
        same_metric_open = [
            oi
            for oi in state.open.values()
            if oi.incident.metric == metric
            and (metric, (oi.incident.dimension, oi.incident.value)) in anomalous
        ]
        # Start failures are failures too: one fault, one incident.
        same_fault_open = metric in _RATES and any(
            oi.incident.metric in _RATES and (oi.incident.dimension, oi.incident.value) == best.dim
            for oi in state.open.values()
        )
        if same_metric_open or same_fault_open:
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
        for dim, c in values.items():
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
    state.last_window_ms = int(window_start.timestamp() * 1000)
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
