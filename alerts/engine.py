"""The rule engine: minutes and incidents in, alert transitions (firing / resolved) out.

Pure and deterministic: the same input in the same order gives the same alerts, which is
what lets the notifier rebuild its state from Kafka after a restart and the backtest
replay the warehouse. Each alert key (rule x dimension value) fires once per episode and
resolves once; repeats while it fires are deduplicated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.metrics import RULE_METRICS
from alerts.records import Alert, alert_key
from alerts.rules import (
    INCIDENT_SEVERITY_ORDER,
    ChangeRule,
    IncidentRule,
    RuleSet,
    ThresholdRule,
)
from contract.dimensions import ALL
from contract.records import Incident, MinuteCounts

DimValue = tuple[str, str]
MinuteValues = Mapping[DimValue, MinuteCounts]
_MINUTE = timedelta(minutes=1)


@dataclass
class _Track:
    """Where one alert key stands."""

    breach: int = 0
    healthy: int = 0
    started_at: datetime | None = None
    recovered_at: datetime | None = None
    observed: float | None = None
    firing: Alert | None = None
    open_incidents: dict[str, Incident] = field(default_factory=dict)


def _summary(template: str, **fields: object) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template


class RuleEngine:
    """Evaluates a `RuleSet`; feed minutes in event-time order and incidents as they come."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._tracks: dict[str, _Track] = {}
        # (metric, dimension, value) -> {minute: (value, cohort)} for change rules.
        self._history: dict[tuple[str, str, str], dict[datetime, tuple[float, int]]] = {}
        self.last_minute: datetime | None = None

    @property
    def firing(self) -> dict[str, Alert]:
        """Alerts firing now, by key."""
        return {k: t.firing for k, t in self._tracks.items() if t.firing is not None}

    # -- minutes ----------------------------------------------------------------------
    def on_minute(self, window_start: datetime, values: MinuteValues) -> list[Alert]:
        """Judge one complete minute (partials already merged); returns transitions."""
        self.last_minute = window_start
        self._remember(window_start, values)
        out: list[Alert] = []
        for rule in self.ruleset.rules:
            if isinstance(rule, ThresholdRule):
                out.extend(self._threshold(rule, window_start, values))
            elif isinstance(rule, ChangeRule):
                out.extend(self._change(rule, window_start, values))
        return out

    def _candidates(
        self, rule: ThresholdRule | ChangeRule, values: MinuteValues
    ) -> dict[str, DimValue]:
        keys = {
            alert_key(rule.name, d, v): (d, v)
            for (d, v) in values
            if d == rule.dimension and (not rule.values or v in rule.values)
        }
        # Keys seen before but quiet now are judged too (no traffic = healthy).
        prefix = f"{rule.name}|"
        for key in self._tracks:
            if key.startswith(prefix) and key not in keys:
                d, _, v = key[len(prefix) :].partition("=")
                keys[key] = (d, v)
        return keys

    def _threshold(
        self, rule: ThresholdRule, minute: datetime, values: MinuteValues
    ) -> list[Alert]:
        metric = RULE_METRICS[rule.metric]
        total = values.get((ALL, ALL))
        out: list[Alert] = []
        for key, dim in self._candidates(rule, values).items():
            c = values.get(dim)
            x = metric.value(c) if c is not None else None
            breach = (
                c is not None
                and x is not None
                and metric.cohort(c) >= rule.min_cohort
                and (x > rule.threshold if rule.op == ">" else x < rule.threshold)
            )
            if breach and rule.above_rest is not None and c is not None and x is not None:
                rest = (
                    metric.value(total.minus(c))
                    if total is not None and dim != (ALL, ALL)
                    else None
                )
                breach = rest is not None and (
                    x - rest >= rule.above_rest if rule.op == ">" else rest - x >= rule.above_rest
                )
            alert = self._step(rule, key, dim, minute, breach, x, rule.threshold, rule.for_minutes)
            if alert is not None:
                out.append(alert)
        return out

    def _remember(self, minute: datetime, values: MinuteValues) -> None:
        for rule in self.ruleset.rules:
            if not isinstance(rule, ChangeRule):
                continue
            metric = RULE_METRICS[rule.metric]
            keep_after = minute - timedelta(minutes=rule.compare_minutes_ago + 60)
            for (d, v), c in values.items():
                if d != rule.dimension or (rule.values and v not in rule.values):
                    continue
                x = metric.value(c)
                if x is None:
                    continue
                series = self._history.setdefault((rule.metric, d, v), {})
                series[minute] = (x, metric.cohort(c))
                for old in [m for m in series if m < keep_after]:
                    del series[old]

    def _change(self, rule: ChangeRule, minute: datetime, values: MinuteValues) -> list[Alert]:
        metric = RULE_METRICS[rule.metric]
        then = minute - timedelta(minutes=rule.compare_minutes_ago)
        out: list[Alert] = []
        for key, dim in self._candidates(rule, values).items():
            c = values.get(dim)
            ref = self._history.get((rule.metric, *dim), {}).get(then)
            x = metric.value(c) if c is not None else 0.0
            breach = False
            limit: float | None = None
            if ref is not None and ref[1] >= rule.min_cohort and x is not None:
                if rule.drop_pct is not None:
                    limit = ref[0] * (1 - rule.drop_pct / 100)
                    breach = x < limit
                elif rule.rise_pct is not None:
                    limit = ref[0] * (1 + rule.rise_pct / 100)
                    breach = x > limit
            alert = self._step(rule, key, dim, minute, breach, x, limit, rule.for_minutes)
            if alert is not None:
                out.append(alert)
        return out

    def _step(
        self,
        rule: ThresholdRule | ChangeRule,
        key: str,
        dim: DimValue,
        minute: datetime,
        breach: bool,
        observed: float | None,
        limit: float | None,
        for_minutes: int,
    ) -> Alert | None:
        t = self._tracks.get(key)
        if t is None:
            if not breach:
                return None
            t = self._tracks[key] = _Track()
        if breach:
            if t.breach == 0 and t.firing is None:
                t.started_at = minute
            t.breach += 1
            t.healthy = 0
            t.recovered_at = None
            if observed is not None and (t.observed is None or observed > t.observed):
                t.observed = observed
            if t.firing is None and t.breach >= for_minutes:
                assert t.started_at is not None
                t.firing = self._alert(rule, key, dim, t, minute + _MINUTE, limit)
                return t.firing
            return None
        t.breach = 0
        if t.firing is None:
            del self._tracks[key]
            return None
        if t.healthy == 0:
            t.recovered_at = minute
        t.healthy += 1
        if t.healthy < rule.resolve_after_minutes:
            return None
        resolved = t.firing.model_copy(
            update={"status": "resolved", "resolved_at": t.recovered_at, "observed": t.observed}
        )
        del self._tracks[key]
        return resolved

    def _alert(
        self,
        rule: ThresholdRule | ChangeRule,
        key: str,
        dim: DimValue,
        t: _Track,
        fired_at: datetime,
        limit: float | None,
    ) -> Alert:
        assert t.started_at is not None
        observed = t.observed
        default = (
            f"{rule.metric} {observed:.1f} (limit {limit:.1f}) on {dim[0]}={dim[1]}"
            if observed is not None and limit is not None
            else f"{rule.metric} on {dim[0]}={dim[1]}"
        )
        return Alert(
            key=key,
            rule=rule.name,
            kind=rule.kind,
            status="firing",
            severity=rule.severity,
            metric=rule.metric,
            dimension=dim[0],
            value=dim[1],
            started_at=t.started_at,
            fired_at=fired_at,
            observed=observed,
            threshold=limit,
            summary=_summary(
                rule.summary or default,
                dimension=dim[0],
                value=dim[1],
                observed=observed,
                threshold=limit,
            ),
            runbook=self.ruleset.runbook_url(rule.runbook),
        )

    # -- incidents --------------------------------------------------------------------
    def on_incident(self, incident: Incident) -> list[Alert]:
        """An incident record (any revision) from the detector; returns transitions."""
        out: list[Alert] = []
        for rule in self.ruleset.rules:
            if isinstance(rule, IncidentRule) and self._wants(rule, incident):
                alert = self._incident_step(rule, incident)
                if alert is not None:
                    out.append(alert)
        return out

    @staticmethod
    def _wants(rule: IncidentRule, inc: Incident) -> bool:
        return (
            (not rule.metrics or inc.metric in rule.metrics)
            and (not rule.dimensions or inc.dimension in rule.dimensions)
            and INCIDENT_SEVERITY_ORDER[inc.severity]
            >= INCIDENT_SEVERITY_ORDER[rule.min_incident_severity]
        )

    def _incident_step(self, rule: IncidentRule, inc: Incident) -> Alert | None:
        key = alert_key(rule.name, inc.dimension, inc.value)
        t = self._tracks.setdefault(key, _Track())
        if inc.status == "open":
            known = t.open_incidents.get(inc.incident_id)
            if known is None or inc.revision >= known.revision:
                t.open_incidents[inc.incident_id] = inc
            if t.firing is not None:
                return None
            t.firing = Alert(
                key=key,
                rule=rule.name,
                kind="incident",
                status="firing",
                severity=rule.severity,
                metric=inc.metric,
                dimension=inc.dimension,
                value=inc.value,
                started_at=inc.started_at,
                fired_at=inc.detected_at,
                observed=inc.observed,
                threshold=inc.expected,
                summary=_summary(
                    rule.summary or inc.explanation,
                    dimension=inc.dimension,
                    value=inc.value,
                    observed=inc.observed,
                    threshold=inc.expected,
                ),
                runbook=self.ruleset.runbook_url(rule.runbook),
                incident_ids=(inc.incident_id,),
            )
            return t.firing
        t.open_incidents.pop(inc.incident_id, None)
        if t.firing is None or t.open_incidents:
            if t.firing is None and not t.open_incidents:
                del self._tracks[key]
            return None
        resolved = t.firing.model_copy(
            update={
                "status": "resolved",
                "resolved_at": inc.resolved_at or inc.last_anomalous_at + _MINUTE,
                "observed": max(inc.observed, t.firing.observed or inc.observed),
            }
        )
        del self._tracks[key]
        return resolved
