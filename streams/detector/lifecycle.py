"""The incident lifecycle: open, update, resolve, and what the baselines learn."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contract.dimensions import ALL
from contract.records import Incident, IncidentMetric, MinuteCounts, Severity
from streams.detector.finding import (
    _big_enough,
    _finding,
    _sibling_anomalous,
    _sibling_z,
    _value,
    find,
    views,
)
from streams.detector.localisation import _lingering, _max_excess, _removal_candidate, localise
from streams.detector.model import (
    _RATES,
    _STALL_SHARE,
    DEFAULT_POLICY,
    METRICS,
    SHARE_METRIC,
    Baseline,
    DetectorPolicy,
    DetectorState,
    DimValue,
    Finding,
    OpenIncident,
    _bkey,
)


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


@dataclass
class _Minute:
    """One closed minute under evaluation: its counts, findings and what is anomalous."""

    start: datetime
    values: Mapping[DimValue, MinuteCounts]
    findings: dict[IncidentMetric, list[Finding]]
    per_metric: dict[IncidentMetric, Mapping[DimValue, MinuteCounts]]
    anomalous: set[tuple[IncidentMetric, DimValue]] = field(default_factory=set)

    @property
    def end(self) -> datetime:
        """End of the minute (exclusive)."""
        return self.start + timedelta(minutes=1)

    @property
    def start_ms(self) -> int:
        """Start of the minute in epoch ms."""
        return int(self.start.timestamp() * 1000)


def evaluate(
    state: DetectorState,
    window_start: datetime,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
) -> list[Incident]:
    """Evaluate one closed minute; returns incidents opened or resolved (state mutated)."""
    per_metric = views(state, values)
    findings = find(state, values, policy, per_metric)
    minute = _Minute(window_start, values, findings, per_metric)
    minute.anomalous = {(f.metric, f.dim) for fs in findings.values() for f in fs}
    bests = _localise_each_metric(state, minute, policy)
    _keep_open_values_anomalous(state, minute, policy)
    emitted = _update_open_incidents(state, minute, policy)
    emitted += _open_new_incidents(state, minute, bests, policy)
    _learn_baselines(state, minute, policy)
    _remember_minute(state, minute, bests, policy)
    return emitted


def _localise_each_metric(
    state: DetectorState, minute: _Minute, policy: DetectorPolicy
) -> dict[IncidentMetric, Finding]:
    bests: dict[IncidentMetric, Finding] = {}
    for metric, fs in minute.findings.items():
        view = minute.per_metric[metric]
        best = localise(metric, fs, view, policy, state.baselines.get(_bkey(metric, (ALL, ALL))))
        if best is not None:
            bests[metric] = best
            if (metric, best.dim) not in minute.anomalous:
                fs.append(best)
                minute.anomalous.add((metric, best.dim))
    return bests


def _keep_open_values_anomalous(
    state: DetectorState, minute: _Minute, policy: DetectorPolicy
) -> None:
    # An open incident's value stays anomalous while it is clearly worse than the rest of
    # the traffic, even below the minimum cohort it was localised with.
    for oi in state.open.values():
        metric, dim = oi.incident.metric, (oi.incident.dimension, oi.incident.value)
        view = minute.per_metric[metric]
        if (metric, dim) in minute.anomalous or metric == SHARE_METRIC or dim not in view:
            continue
        total = view[(ALL, ALL)]
        c = view[dim]
        if dim != (ALL, ALL) and _sibling_anomalous(
            metric, c, total.minus(c), policy.z_threshold, policy
        ):
            x, r = _value(metric, c), _value(metric, total.minus(c))
            assert x is not None and r is not None
            z = _sibling_z(metric, c, total.minus(c), policy)
            minute.findings[metric].append(_finding(metric, dim, x, r, c, z))
            minute.anomalous.add((metric, dim))


def _update_open_incidents(
    state: DetectorState, minute: _Minute, policy: DetectorPolicy
) -> list[Incident]:
    """Open incidents: update while anomalous, resolve after a run of normal minutes."""
    resolved: list[Incident] = []
    for key in list(state.open):
        oi = state.open[key]
        inc = oi.incident
        dim = (inc.dimension, inc.value)
        if (inc.metric, dim) in minute.anomalous:
            f = next(f for f in minute.findings[inc.metric] if f.dim == dim)
            oi.normal_streak = 0
            oi.incident = _still_anomalous(inc, f, minute.start)
            continue
        oi.normal_streak += 1
        if oi.normal_streak >= policy.resolve_after_minutes:
            resolved.append(
                oi.incident.model_copy(
                    update={
                        "status": "resolved",
                        "revision": oi.incident.revision + 1,
                        "resolved_at": minute.end,
                    }
                )
            )
            del state.open[key]
    return resolved


def _still_anomalous(inc: Incident, f: Finding, window_start: datetime) -> Incident:
    # Failure rates count new failures each minute; the other metrics' cohort is a level.
    if inc.metric in _RATES:
        affected = inc.affected_sessions + f.affected
    else:
        affected = max(inc.affected_sessions, f.affected)
    return inc.model_copy(
        update={
            "last_anomalous_at": window_start,
            "affected_sessions": affected,
            "observed": max(inc.observed, f.observed),
        }
    )


def _explained_by_open(
    state: DetectorState,
    minute: _Minute,
    metric: IncidentMetric,
    best: Finding,
    policy: DetectorPolicy,
) -> bool:
    """Whether an open incident already stands for this metric's best finding."""
    view = minute.per_metric[metric]
    findings = minute.findings[metric]
    for oi in state.open.values():
        dim = (oi.incident.dimension, oi.incident.value)
        same_metric = oi.incident.metric == metric
        # The same metric, its dimension value still anomalous: the same fault.
        if same_metric and (
            (metric, dim) in minute.anomalous or _lingering(metric, dim, view, policy)
        ):
            return True
        # Start failures are failures too: one fault, one incident.
        if metric in _RATES and oi.incident.metric in _RATES and dim == best.dim:
            return True
        # A symptom of an open incident's fault on another metric (slow starts behind a
        # licence outage): that value explains this metric's anomaly too.
        if (
            not same_metric
            and metric != SHARE_METRIC
            and dim != best.dim
            and _removal_candidate(
                metric, dim, findings, view, policy, _max_excess(metric, findings, view)
            )
            is not None
        ):
            return True
    return False


def _open_new_incidents(
    state: DetectorState,
    minute: _Minute,
    bests: Mapping[IncidentMetric, Finding],
    policy: DetectorPolicy,
) -> list[Incident]:
    """New incidents: one per metric, localised, unless an open one stands for it."""
    opened: list[Incident] = []
    for metric in (*METRICS, SHARE_METRIC):
        best = bests.get(metric)
        if best is None or _explained_by_open(state, minute, metric, best, policy):
            continue
        # One minute pages only on overwhelming evidence; otherwise the metric must have
        # been anomalous the minute before too (noise rarely lasts, faults do).
        previous = state.pending.get(metric)
        in_a_row = previous == minute.start_ms - 60_000
        streak = state.pending_streak.get(metric, 0) if in_a_row else 0
        if best.tentative and streak < 2:
            continue
        if best.z < policy.immediate_z and streak < 1:
            continue
        started = minute.start
        if in_a_row and state.pending_cause.get(metric) == _cause(best.dim):
            # The fault began with the run's first anomalous minute, not the confirming one.
            # (`pending_cause` and `pending_since` are written together.)
            started -= timedelta(milliseconds=minute.start_ms - state.pending_since[metric])
        inc = _new_incident(metric, best, minute, started)
        state.open[inc.incident_id] = OpenIncident(incident=inc)
        opened.append(inc)
    return opened


def _cause(dim: DimValue) -> str:
    return f"{dim[0]}|{dim[1]}"


def _new_incident(
    metric: IncidentMetric, best: Finding, minute: _Minute, started: datetime
) -> Incident:
    return Incident(
        incident_id=incident_id(metric, best.dim, started),
        status="open",
        metric=metric,
        dimension=best.dim[0],
        value=best.dim[1],
        started_at=started,
        detected_at=minute.end,
        last_anomalous_at=minute.start,
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


def _learn_baselines(state: DetectorState, minute: _Minute, policy: DetectorPolicy) -> None:
    """Baselines learn only from normal minutes with a big enough cohort."""
    for metric in METRICS:
        for dim, c in minute.per_metric[metric].items():
            if (metric, dim) in minute.anomalous or not _big_enough(metric, c, policy):
                continue
            x = _value(metric, c)
            if x is not None:
                _baseline(state, _bkey(metric, dim)).update(x, policy.ewma_alpha)
            if metric == "rebuffer_pct" and c.active_sessions:
                _baseline(state, _bkey(_STALL_SHARE, dim)).update(
                    c.rebuffering_sessions / c.active_sessions, policy.ewma_alpha
                )
    everything = minute.values.get((ALL, ALL))
    if everything is not None and everything.plays > 0:
        for dim, c in minute.values.items():
            if dim[0] == "title_id" and (SHARE_METRIC, dim) not in minute.anomalous:
                _baseline(state, _bkey(SHARE_METRIC, dim)).update(
                    100.0 * c.plays / everything.plays, policy.ewma_alpha
                )


def _baseline(state: DetectorState, key: str) -> Baseline:
    """The baseline under `key`, a new one if there is none (made only then)."""
    b = state.baselines.get(key)
    if b is None:
        b = state.baselines[key] = Baseline()
    return b


def _remember_minute(
    state: DetectorState,
    minute: _Minute,
    bests: Mapping[IncidentMetric, Finding],
    policy: DetectorPolicy,
) -> None:
    window_ms = minute.start_ms
    state.pending_streak = {
        m: state.pending_streak.get(m, 0) + 1 if state.pending.get(m) == window_ms - 60_000 else 1
        for m in bests
    }
    causes: dict[str, str] = {m: _cause(f.dim) for m, f in bests.items()}
    state.pending_since = {
        m: state.pending_since.get(m, window_ms)
        if state.pending.get(m) == window_ms - 60_000 and state.pending_cause.get(m) == cause
        else window_ms
        for m, cause in causes.items()
    }
    state.pending_cause = causes
    state.pending = {m: window_ms for m in bests}
    # Keep this minute's start counts for the next minutes' start-failure window.
    state.recent_starts[str(window_ms)] = {
        f"{d}|{v}": [c.failed_starts, c.plays]
        for (d, v), c in minute.values.items()
        if c.plays or c.failed_starts
    }
    keep_from = window_ms - (policy.start_window_minutes - 1) * 60_000
    for key in [k for k in state.recent_starts if int(k) < keep_from]:
        del state.recent_starts[key]
    state.last_window_ms = window_ms


def merge_partials(
    rollups: list[tuple[DimValue, MinuteCounts]], *, owned: bool = False
) -> dict[DimValue, MinuteCounts]:
    """Sum the partials of one minute into one `MinuteCounts` per dimension value.

    `owned`: the counts are the caller's to give away (parsed for this call and held by
    no one else), so the first of each value is summed into in place, not copied.
    """
    out: dict[DimValue, MinuteCounts] = {}
    for dim, c in rollups:
        acc = out.get(dim)
        if acc is None:
            out[dim] = c if owned else c.clone()
        else:
            acc.merge_in(c)
    return out
