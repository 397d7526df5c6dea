"""Alert rules as code: the schema of `rules.toml` and its loader.

A rules file holds `[[rules]]` (what to alert on) and `[[routes]]` (who hears about it).
Receivers (URLs, keys) are per deployment and live in a separate file (`alerts.receivers`).
See the README's "Alerting" section for the schema with examples; `load_rules` rejects an
unknown key, metric, dimension or receiver reference with a message naming the rule.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerts.metrics import RULE_METRICS
from contract.dimensions import ALL, DIMENSIONS
from contract.records import IncidentMetric
from contract.records import Severity as IncidentSeverity
from streamwatch.errors import ConfigurationError

AlertSeverity = Literal["critical", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
INCIDENT_SEVERITY_ORDER: dict[str, int] = {"minor": 0, "major": 1, "critical": 2}
SHIPPED_RULES = Path(__file__).parent / "rules.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuleBase(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Unique rule id.")
    severity: AlertSeverity
    runbook: str = Field(description="Link to what the on-call engineer should do.")
    summary: str = Field(default="", description="One line for humans; {value} is filled in.")
    resolve_after_minutes: int = Field(
        default=2, ge=1, description="Healthy minutes in a row before the alert resolves."
    )


class ThresholdRule(_RuleBase):
    """A metric of one dimension's values compared with a threshold for a duration."""

    kind: Literal["threshold"]
    metric: str
    dimension: str = Field(
        default=ALL, description="'all' or one of contract.dimensions.DIMENSIONS."
    )
    values: tuple[str, ...] = Field(
        default=(), description="Only these values of the dimension; empty = each value."
    )
    op: Literal[">", "<"] = ">"
    threshold: float
    for_minutes: int = Field(default=1, ge=1, description="Breaching minutes in a row to fire.")
    min_cohort: int = Field(
        default=0, ge=0, description="Minutes measured on fewer sessions count as healthy."
    )
    above_rest: float | None = Field(
        default=None,
        description=(
            "Also require the value to be this much worse than the rest of the traffic "
            "(the total minus this value): 'on one app version', not everywhere."
        ),
    )

    @model_validator(mode="after")
    def _known(self) -> ThresholdRule:
        _check_metric(self.name, self.metric)
        _check_dimension(self.name, self.dimension)
        if self.above_rest is not None and self.dimension == ALL:
            raise ValueError(f"rule {self.name!r}: above_rest needs a dimension other than 'all'")
        return self


class ChangeRule(_RuleBase):
    """A metric compared with itself some time ago (e.g. the same minute last week)."""

    kind: Literal["change"]
    metric: str
    dimension: str = ALL
    values: tuple[str, ...] = ()
    compare_minutes_ago: int = Field(
        default=7 * 24 * 60, ge=1, description="Reference minute; default: one week earlier."
    )
    drop_pct: float | None = Field(default=None, gt=0, description="Fire on a fall of this %.")
    rise_pct: float | None = Field(default=None, gt=0, description="Fire on a rise of this %.")
    for_minutes: int = Field(default=1, ge=1)
    min_cohort: int = Field(default=0, ge=0, description="Reference minutes below this skip.")

    @model_validator(mode="after")
    def _known(self) -> ChangeRule:
        _check_metric(self.name, self.metric)
        _check_dimension(self.name, self.dimension)
        if (self.drop_pct is None) == (self.rise_pct is None):
            raise ValueError(f"rule {self.name!r}: set exactly one of drop_pct and rise_pct")
        return self


class IncidentRule(_RuleBase):
    """The anomaly detector's incidents (ops.incidents.v1) as alerts."""

    kind: Literal["incident"]
    metrics: tuple[IncidentMetric, ...] = Field(
        default=(), description="Only incidents on these detector metrics; empty = all."
    )
    dimensions: tuple[str, ...] = Field(default=(), description="Only these root causes.")
    min_incident_severity: IncidentSeverity = "minor"

    @model_validator(mode="after")
    def _known(self) -> IncidentRule:
        for d in self.dimensions:
            _check_dimension(self.name, d)
        return self


Rule = Annotated[ThresholdRule | ChangeRule | IncidentRule, Field(discriminator="kind")]


class RateLimit(_Strict):
    """At most `max` notifications per `per_s` seconds on a route; the rest wait their turn."""

    max: int = Field(ge=1)
    per_s: float = Field(gt=0)


class Route(_Strict):
    """Which alerts go to which receivers (first matching route wins unless `continue`)."""

    name: str
    severities: tuple[AlertSeverity, ...] = Field(default=(), description="Empty = any.")
    dimensions: tuple[str, ...] = Field(default=(), description="Empty = any.")
    rules: tuple[str, ...] = Field(default=(), description="Empty = any.")
    receivers: tuple[str, ...]
    rate_limit: RateLimit | None = None
    continue_: bool = Field(default=False, alias="continue")

    def matches(self, rule: str, severity: str, dimension: str) -> bool:
        """Whether an alert of `rule` with this severity and dimension takes this route."""
        return (
            (not self.severities or severity in self.severities)
            and (not self.dimensions or dimension in self.dimensions)
            and (not self.rules or rule in self.rules)
        )


class RuleSet(_Strict):
    """A whole rules file."""

    version: Literal[1] = 1
    runbook_base: str = Field(default="", description="Prefix of relative runbook links.")
    rules: tuple[Rule, ...]
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        return self

    def runbook_url(self, runbook: str) -> str:
        """A rule's runbook as a link (relative ones joined to `runbook_base`)."""
        if "://" in runbook or not self.runbook_base:
            return runbook
        return self.runbook_base.rstrip("/") + "/" + runbook.lstrip("/")

    def rule(self, name: str) -> Rule:
        """The rule called `name`."""
        return next(r for r in self.rules if r.name == name)

    def routes_for(self, rule: str, severity: str, dimension: str) -> list[Route]:
        """The routes an alert takes, in file order."""
        out: list[Route] = []
        for route in self.routes:
            if route.matches(rule, severity, dimension):
                out.append(route)
                if not route.continue_:
                    break
        return out

    def receiver_names(self) -> set[str]:
        """Every receiver some route names."""
        return {r for route in self.routes for r in route.receivers}


def _check_metric(rule: str, metric: str) -> None:
    if metric not in RULE_METRICS:
        raise ValueError(
            f"rule {rule!r}: unknown metric {metric!r}; one of {', '.join(sorted(RULE_METRICS))}"
        )


def _check_dimension(rule: str, dimension: str) -> None:
    if dimension != ALL and dimension not in DIMENSIONS:
        raise ValueError(
            f"rule {rule!r}: unknown dimension {dimension!r}; 'all' or one of "
            f"{', '.join(DIMENSIONS)}"
        )


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """A `RuleSet` from TOML text; a clear `ConfigurationError` for anything wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"{source}: invalid rules: {problems}") from exc


def load_rules(path: Path | None = None) -> RuleSet:
    """Load a rules file (default: the shipped `alerts/rules.toml`)."""
    target = path or SHIPPED_RULES
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read rules file {target}: {exc}") from exc
    return parse_rules(text, str(target))
