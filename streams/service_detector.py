"""Control-plane incidents: which service (endpoint, region, instance group) is at fault.

Per minute the detector sees every (service, endpoint, region)'s `ServiceMinute` and asks,
of those with enough requests, whether its error %, fallback % or median latency departs
from its own EWMA baseline (updated only with normal minutes): by a minimum absolute and
relative amount, and, for the two percentages, with an exact binomial tail at least as
small as a z-score of `z_threshold`.

Localisation follows the call graph (`platform_stub`'s services, `CALLEES`): a caller's
errors and latency include its callees', so an anomalous service is a root cause only if
none of its callees in the same region is anomalous too (a license outage also fails the
gateway's POST /license; the license service is named). When one instance group carries
the errors and the rest of the service is normal, the incident names that group (a bad
deploy). An incident per (service, region) opens once, stays open while anomalous and
resolves after `resolve_after_minutes` normal minutes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from contract.records import Incident, IncidentMetric, Severity
from contract.sketch import bucket_value
from contract.spans import ServiceMinute
from streams.detector.model import Baseline, OpenIncident
from streams.detector.tail_stats import _binom_sf, _z_of

# Who calls whom (the stub's control plane; a real deployment would read its service map).
CALLEES: dict[str, tuple[str, ...]] = {
    "gateway": ("playback", "license", "auth", "discovery", "manifest", "steering", "cache"),
    "playback": ("cache", "manifest", "steering"),
    "manifest": ("cache",),
}


@dataclass(frozen=True)
class ServiceDetectorPolicy:
    """Thresholds: noise never pages, a broken service pages in its first full minute."""

    min_requests: int = 10
    min_baseline_requests: int = 5
    z_threshold: float = 4.0
    min_delta_pct: float = 5.0  # percentage points
    min_ratio: float = 3.0
    rate_floor: float = 0.005  # a baseline error/fallback rate is taken as at least this
    latency_ratio: float = 2.0
    # A median from a few requests wanders (a 2x one at 19 requests was seen on noise).
    min_latency_requests: int = 40
    latency_min_delta_ms: float = 100.0
    ewma_alpha: float = 0.2
    warmup_minutes: int = 3
    resolve_after_minutes: int = 3
    group_share: float = 0.8  # one instance group holds this share of the errors


DEFAULT_POLICY = ServiceDetectorPolicy()


class RateBaseline(BaseModel):
    """EWMA baselines (the QoE detector's) of error rate, fallback rate and log median latency
    of one (service, endpoint, region)."""

    model_config = ConfigDict(extra="forbid")

    error: Baseline = Field(default_factory=Baseline)
    fallback: Baseline = Field(default_factory=Baseline)
    log_p50: Baseline = Field(default_factory=Baseline)

    @property
    def n(self) -> int:
        """Normal minutes folded in."""
        return self.error.n

    def update(self, row: ServiceMinute, p50: float, alpha: float) -> None:
        """Fold in one normal minute."""
        self.error.update(row.errors / row.requests, alpha)
        self.fallback.update(row.fallbacks / row.requests, alpha)
        self.log_p50.update(math.log(max(p50, 1.0)), alpha)


class ServiceDetectorState(BaseModel):
    """Everything the detector remembers between minutes (serializable)."""

    model_config = ConfigDict(extra="forbid")

    baselines: dict[str, RateBaseline] = Field(default_factory=dict)
    open: dict[str, OpenIncident] = Field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """One (service, endpoint, region)'s departure on one metric in one minute."""

    metric: IncidentMetric
    row: ServiceMinute
    observed: float
    expected: float
    z: float


def _p50(row: ServiceMinute) -> float | None:
    """The median from the latency buckets (or the record's own p50)."""
    if not row.latency_buckets:
        return row.latency_p50_ms
    half = sum(row.latency_buckets.values()) / 2
    seen = 0
    for bucket in sorted(row.latency_buckets):
        seen += row.latency_buckets[bucket]
        if seen >= half:
            return bucket_value(bucket)
    return None


def _rate_finding(
    metric: IncidentMetric, row: ServiceMinute, k: int, usual: float, p: ServiceDetectorPolicy
) -> Finding | None:
    base = max(usual, p.rate_floor)
    observed = 100 * k / row.requests
    if observed - 100 * base < p.min_delta_pct or observed < 100 * base * p.min_ratio:
        return None
    z = _z_of(_binom_sf(k, row.requests, base))
    return Finding(metric, row, observed, 100 * usual, z) if z >= p.z_threshold else None


def findings(row: ServiceMinute, b: RateBaseline, p: ServiceDetectorPolicy) -> list[Finding]:
    """This minute's departures of one (service, endpoint, region) from its baseline."""
    out: list[Finding] = []
    for metric, k, usual in (
        ("service_error_pct", row.errors, b.error.mean),
        ("service_fallback_pct", row.fallbacks, b.fallback.mean),
    ):
        found = _rate_finding(metric, row, k, usual, p)  # type: ignore[arg-type]
        if found is not None:
            out.append(found)
    p50, usual_p50 = _p50(row), math.exp(b.log_p50.mean)
    if (
        p50 is not None
        and row.requests >= p.min_latency_requests
        and p50 >= usual_p50 * p.latency_ratio
        and p50 - usual_p50 >= p.latency_min_delta_ms
    ):
        out.append(Finding("service_latency_p50_ms", row, p50, usual_p50, p50 / usual_p50))
    return out


def _key(row: ServiceMinute) -> str:
    return f"{row.service}|{row.endpoint}|{row.region}"


def roots(found: list[Finding]) -> list[Finding]:
    """The findings of services none of whose callees is anomalous in the same region;
    per (service, region) the strongest one."""
    anomalous = {(f.row.service, f.row.region) for f in found}
    best: dict[tuple[str, str], Finding] = {}
    for f in found:
        where = (f.row.service, f.row.region)
        if any((callee, f.row.region) in anomalous for callee in CALLEES.get(f.row.service, ())):
            continue  # a symptom of a callee's fault
        if where not in best or (f.z, f.row.requests) > (best[where].z, best[where].row.requests):
            best[where] = f
    return [best[k] for k in sorted(best)]


def _instance_group(f: Finding, p: ServiceDetectorPolicy) -> str | None:
    """The instance group holding most of the errors while the others are normal."""
    groups = f.row.instance_groups
    if f.metric != "service_error_pct" or len(groups) < 2 or f.row.errors == 0:
        return None
    name, worst = max(groups.items(), key=lambda kv: (kv[1].errors, kv[0]))
    rest_n = f.row.requests - worst.requests
    rest_k = f.row.errors - worst.errors
    if worst.errors < p.group_share * f.row.errors or rest_n <= 0:
        return None
    return name if 100 * rest_k / rest_n < f.expected + p.min_delta_pct else None


def _severity(f: Finding) -> Severity:
    ratio = f.observed / f.expected if f.expected > 0 else math.inf
    if f.row.requests >= 200 or ratio >= 10:
        return "critical"
    return "major" if ratio >= 3 else "minor"


def _explain(f: Finding, group: str | None) -> str:
    r = f.row
    where = f"{r.region}" + (f", instance group {group}" if group else "")
    if f.metric == "service_latency_p50_ms":
        what = f"median latency {f.observed:,.0f} ms vs {f.expected:,.0f} ms usual"
    else:
        kind = "errors" if f.metric == "service_error_pct" else "fallbacks"
        what = f"{f.observed:.1f} % {kind} vs {f.expected:.1f} % usual"
    return (
        f"{r.service} service {r.endpoint} in {where}: {what} ({r.requests} requests); "
        f"its callers' trouble follows from it"
    )


def _open(f: Finding, minute: datetime, p: ServiceDetectorPolicy) -> Incident:
    group = _instance_group(f, p)
    r = f.row
    raw = f"{f.metric}|service|{r.service}|{r.region}|{minute.isoformat()}"
    return Incident(
        incident_id=hashlib.sha1(raw.encode()).hexdigest()[:16],
        status="open",
        metric=f.metric,
        dimension="service",
        value=r.service,
        started_at=minute,
        detected_at=minute + timedelta(minutes=1),
        last_anomalous_at=minute,
        observed=round(f.observed, 3),
        expected=round(f.expected, 3),
        affected_sessions=r.errors if f.metric == "service_error_pct" else r.requests,
        severity=_severity(f),
        explanation=_explain(f, group),
        service=r.service,
        endpoint=r.endpoint,
        region=r.region,
        instance_group=group,
    )


def evaluate(
    state: ServiceDetectorState,
    minute: datetime,
    rows: Iterable[ServiceMinute],
    policy: ServiceDetectorPolicy = DEFAULT_POLICY,
) -> list[Incident]:
    """Judge one closed minute; returns incidents opened or resolved by it."""
    found: list[Finding] = []
    for row in rows:
        if row.requests < policy.min_baseline_requests:
            continue
        b = state.baselines.setdefault(_key(row), RateBaseline())
        judged = b.n >= policy.warmup_minutes and row.requests >= policy.min_requests
        mine = findings(row, b, policy) if judged else []
        if mine:
            found.extend(mine)
        else:
            p50 = _p50(row)
            if p50 is not None:
                b.update(row, p50, policy.ewma_alpha)
    return _lifecycle(state, minute, roots(found), policy)


def _lifecycle(
    state: ServiceDetectorState, minute: datetime, found: list[Finding], p: ServiceDetectorPolicy
) -> list[Incident]:
    out: list[Incident] = []
    now = {f"{f.row.service}|{f.row.region}": f for f in found}
    for key, f in now.items():
        current = state.open.get(key)
        if current is None:
            incident = _open(f, minute, p)
            state.open[key] = OpenIncident(incident=incident)
            out.append(incident)
        else:
            current.normal_streak = 0
            current.incident = current.incident.model_copy(update={"last_anomalous_at": minute})
    for key in [k for k in state.open if k not in now]:
        current = state.open[key]
        current.normal_streak += 1
        if current.normal_streak >= p.resolve_after_minutes:
            inc = current.incident
            out.append(
                inc.model_copy(
                    update={
                        "status": "resolved",
                        "revision": inc.revision + 1,
                        "resolved_at": minute + timedelta(minutes=1),
                    }
                )
            )
            del state.open[key]
    return out
