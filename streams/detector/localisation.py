"""Localisation: which anomalous dimension value explains the aggregate's excess."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import median

from contract.dimensions import ALL
from contract.records import IncidentMetric, MinuteCounts
from contract.sketch import bucket_of
from streams.detector.finding import (
    _affected,
    _big_enough,
    _cohort,
    _sibling_anomalous,
    _sibling_z,
    _value,
)
from streams.detector.model import (
    _DIM_PRIORITY,
    _RATES,
    DEFAULT_POLICY,
    SHARE_METRIC,
    Baseline,
    DetectorPolicy,
    DimValue,
    Finding,
)


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
