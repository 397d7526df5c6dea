"""The metrics a threshold rule can watch, each computed from one minute's `MinuteCounts`.

Names follow the qoe_minute entries of `contract.metrics.SQL_METRICS` (plus the startup
quantiles), and every value comes from `contract.metrics` / `contract.records`, so a rule
means the same number as the dashboards and the warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contract import metrics
from contract.records import MinuteCounts


@dataclass(frozen=True)
class RuleMetric:
    """How to read one metric and the size of the population it is measured on."""

    value: Callable[[MinuteCounts], float | None]
    cohort: Callable[[MinuteCounts], int]
    unit: str


def _startup(q: float) -> Callable[[MinuteCounts], float | None]:
    return lambda c: c.startup.quantile(q)


def _starts(c: MinuteCounts) -> int:
    return c.startup.count


RULE_METRICS: dict[str, RuleMetric] = {
    "plays": RuleMetric(lambda c: float(c.plays), lambda c: c.plays, "plays/min"),
    "concurrent_viewers": RuleMetric(
        lambda c: float(c.concurrent_viewers), lambda c: c.concurrent_viewers, "viewers"
    ),
    "rebuffer_pct": RuleMetric(
        lambda c: metrics.rebuffer_pct(c.rebuffer_ms, c.watch_ms), lambda c: c.active_sessions, "%"
    ),
    "rebuffers_per_minute": RuleMetric(
        lambda c: metrics.rebuffer_per_minute(c.rebuffer_count, c.watch_ms),
        lambda c: c.active_sessions,
        "/min",
    ),
    "playback_failure_pct": RuleMetric(
        lambda c: c.playback_failure_pct, lambda c: c.active_sessions, "%"
    ),
    "start_failure_pct": RuleMetric(lambda c: c.start_failure_pct, lambda c: c.ended_sessions, "%"),
    "failed_start_pct": RuleMetric(lambda c: c.failed_start_pct, lambda c: c.plays, "%"),
    "ebvs_pct": RuleMetric(lambda c: c.ebvs_pct, lambda c: c.ended_sessions, "%"),
    "avg_bitrate_kbps": RuleMetric(
        lambda c: c.avg_bitrate_kbps, lambda c: c.active_sessions, "kbps"
    ),
    "startup_p50_ms": RuleMetric(_startup(0.5), _starts, "ms"),
    "startup_p95_ms": RuleMetric(_startup(0.95), _starts, "ms"),
}

# Every qoe_minute metric of the shared definitions must be watchable (checked by a test).
MINUTE_METRICS = tuple(m for m in metrics.SQL_METRICS if not m.startswith("session_"))
