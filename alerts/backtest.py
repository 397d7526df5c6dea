"""Backtesting: the warehouse's minute rollups replayed through the rules and the detector.

`streamwatch alerts backtest RULES --since 7d` reads `qoe_minute` (partials summed per
minute and dimension value), runs the anomaly detector over it as the stream workers do
(so the incident rules see the incidents the detector would have raised with today's
code), and runs every rule. It prints what would have fired and when; given the ground
truth of stub runs (`scenario.json` files), it scores each rule: hits, misses, false alarms
and time to fire.

A gap of more than an hour between rollups starts the detector afresh: its baselines are
minute-scale averages, and an hour without data (separate stub runs, an outage of the
pipeline) makes them meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from alerts.engine import RuleEngine
from alerts.minutes import merge
from alerts.records import Alert
from alerts.rules import ChangeRule, IncidentRule, RuleSet, ThresholdRule
from contract.records import MinuteCounts
from contract.sketch import LatencySketch
from platform_stub.scenarios import ScenarioTruth
from streams import detector
from streams.config import StreamsConfig

DimValue = tuple[str, str]
FRESH_AFTER = timedelta(hours=1)
# An alert counts for a fault if it fired from a minute before the fault's start up to
# this long after its end (a rule with a long `for_minutes` fires late, not falsely).
MATCH_AFTER_END = timedelta(minutes=10)
MATCH_BEFORE_START = timedelta(minutes=1)

_COUNT_COLUMNS = (
    "events", "plays", "active_sessions", "concurrent_viewers", "ended_sessions",
    "failed_sessions", "start_failures", "exits_before_start", "in_play_failures",
    "rebuffer_ms", "rebuffer_count", "watch_ms", "bitrate_kbps_ms", "bitrate_ms",
    "upshifts", "downshifts",
)  # fmt: skip
# MinuteCounts fields without a warehouse column: the sink keeps them in `extra`.
_EXTRA_COUNTS = ("failed_starts", "rebuffering_sessions")


def _counts(row: dict[str, Any]) -> MinuteCounts:
    c = MinuteCounts.model_validate({k: row[k] or 0 for k in _COUNT_COLUMNS})
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    for name in _EXTRA_COUNTS:
        setattr(c, name, int(extra.get(f"counts.{name}", 0) or 0))
    if row.get("startup_sketch"):
        c.startup = LatencySketch.model_validate_json(row["startup_sketch"])
    if row.get("errors_by_code"):
        c.errors_by_code = {str(k): int(v) for k, v in json.loads(row["errors_by_code"]).items()}
    return c


def warehouse_minutes(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> Iterator[tuple[datetime, dict[DimValue, MinuteCounts]]]:
    """Complete minutes from the `qoe_minute` view (latest revision of each partial), in order."""
    cols = ", ".join(
        ("window_start", "dimension", "value", *_COUNT_COLUMNS, "startup_sketch",
         "errors_by_code", "extra")
    )  # fmt: skip
    cur = con.execute(
        f"SELECT {cols} FROM qoe_minute WHERE window_start >= ? AND window_start < ? "
        "ORDER BY window_start",
        [since, until],
    )
    names = [d[0] for d in cur.description or ()]
    current: datetime | None = None
    parts: list[tuple[DimValue, MinuteCounts]] = []
    while batch := cur.fetchmany(10_000):
        for values in batch:
            row = dict(zip(names, values, strict=True))
            start: datetime = row["window_start"].astimezone(UTC)
            if current is not None and start != current:
                yield current, merge(parts)
                parts = []
            current = start
            parts.append(((row["dimension"], row["value"]), _counts(row)))
    if current is not None:
        yield current, merge(parts)


@dataclass
class BacktestRun:
    """What the rules would have done."""

    alerts: list[Alert] = field(default_factory=list)  # transitions in order
    minutes: int = 0
    incidents: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def episodes(self) -> list[tuple[Alert, Alert | None]]:
        """(firing, resolved or None) per alert episode, by firing time."""
        resolved = {a.episode: a for a in self.alerts if a.status == "resolved"}
        firing = [a for a in self.alerts if a.status == "firing"]
        return [(a, resolved.get(a.episode)) for a in sorted(firing, key=lambda a: a.fired_at)]


def replay(
    ruleset: RuleSet,
    minutes: Iterator[tuple[datetime, dict[DimValue, MinuteCounts]]],
    policy: detector.DetectorPolicy | None = None,
) -> BacktestRun:
    """Run the detector (the stream workers' policy by default) and the rules over complete
    minutes, oldest first."""
    policy = policy or StreamsConfig().detector
    engine = RuleEngine(ruleset)
    state = detector.DetectorState()
    run = BacktestRun()
    for start, values in minutes:
        if run.last is not None and start - run.last > FRESH_AFTER:
            state = detector.DetectorState()
        run.first = run.first or start
        run.last = start
        run.minutes += 1
        for inc in detector.evaluate(state, start, values, policy):
            run.incidents += 1
            run.alerts.extend(engine.on_incident(inc))
        run.alerts.extend(engine.on_minute(start, values))
    return run


@dataclass
class RuleScore:
    """A rule's record against the ground truth."""

    rule: str
    fired: int = 0
    hits: int = 0
    misses: int = 0
    false_alarms: int = 0
    time_to_fire: list[timedelta] = field(default_factory=list)


def load_truth(path: Path) -> ScenarioTruth:
    """A stub run's `scenario.json`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["affected_member_ids"] = tuple(data.get("affected_member_ids", ()))
    data["affected_session_ids"] = tuple(data.get("affected_session_ids", ()))
    return ScenarioTruth(**data)


def _dimension(truth: ScenarioTruth) -> str:
    return (truth.dimension or "").rsplit(".", 1)[-1]  # "network.oca_id" -> "oca_id"


def _window(truth: ScenarioTruth) -> tuple[datetime, datetime]:
    assert truth.start_ms is not None and truth.end_ms is not None
    start = datetime.fromtimestamp(truth.start_ms / 1000, UTC)
    end = datetime.fromtimestamp(truth.end_ms / 1000, UTC)
    return start, end


def _could_see(rule: ThresholdRule | ChangeRule | IncidentRule, truth: ScenarioTruth) -> bool:
    if isinstance(rule, IncidentRule):
        return not rule.dimensions or _dimension(truth) in rule.dimensions
    return rule.dimension == _dimension(truth)


def _matches(alert: Alert, truth: ScenarioTruth) -> bool:
    start, end = _window(truth)
    return (
        alert.dimension == _dimension(truth)
        and alert.value == truth.value
        and start - MATCH_BEFORE_START <= alert.fired_at <= end + MATCH_AFTER_END
    )


def score(
    ruleset: RuleSet, run: BacktestRun, truths: Sequence[ScenarioTruth]
) -> dict[str, RuleScore]:
    """Per rule: faults it could see and caught (hits) or not (misses), and alerts that match
    no fault (false alarms: the wrong value, the wrong time, or any alert in a normal run)."""
    faults = [t for t in truths if t.dimension is not None and t.start_ms is not None]
    episodes = run.episodes()
    out: dict[str, RuleScore] = {}
    for rule in ruleset.rules:
        s = out[rule.name] = RuleScore(rule.name)
        mine = [a for a, _ in episodes if a.rule == rule.name]
        s.fired = len(mine)
        for truth in faults:
            caught = [a for a in mine if _matches(a, truth)]
            if caught:
                s.hits += 1
                s.time_to_fire.append(min(a.fired_at for a in caught) - _window(truth)[0])
            elif _could_see(rule, truth):
                s.misses += 1
        s.false_alarms = sum(1 for a in mine if not any(_matches(a, t) for t in faults))
    return out


def _fmt_td(td: timedelta) -> str:
    secs = int(td.total_seconds())
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    return f"{sign}{secs // 60}m{secs % 60:02d}s"


def report(
    ruleset: RuleSet,
    run: BacktestRun,
    scores: dict[str, RuleScore] | None,
) -> str:
    """The human-readable backtest report."""
    lines = [
        f"backtest: {run.minutes} minutes"
        + (
            f" from {run.first:%Y-%m-%d %H:%M} to {run.last:%Y-%m-%d %H:%M} UTC"
            if run.first and run.last
            else ""
        )
        + f", {run.incidents} detector incident records, {len(run.episodes())} alerts",
        "",
        "would have fired:",
    ]
    for firing, resolved in run.episodes():
        end = (
            f"resolved {resolved.resolved_at:%Y-%m-%d %H:%M}"
            if resolved and resolved.resolved_at
            else "still firing"
        )
        lines.append(
            f"  {firing.fired_at:%Y-%m-%d %H:%M}  {firing.severity:8s} {firing.rule:32s} "
            f"{firing.dimension}={firing.value}  (from {firing.started_at:%H:%M}, {end})"
        )
    if not run.episodes():
        lines.append("  nothing")
    if scores is not None:
        lines += [
            "",
            f"{'rule':32s} {'fired':>5s} {'hits':>5s} {'misses':>6s} {'false':>6s}  "
            "time to fire (mean / max)",
        ]
        for name, s in scores.items():
            ttf = (
                f"{_fmt_td(sum(s.time_to_fire, timedelta()) / len(s.time_to_fire))} / "
                f"{_fmt_td(max(s.time_to_fire))}"
                if s.time_to_fire
                else "-"
            )
            lines.append(
                f"{name:32s} {s.fired:5d} {s.hits:5d} {s.misses:6d} {s.false_alarms:6d}  {ttf}"
            )
    return "\n".join(lines)


def as_json(run: BacktestRun, scores: dict[str, RuleScore] | None) -> dict[str, Any]:
    """The backtest as JSON-ready data."""
    return {
        "minutes": run.minutes,
        "incident_records": run.incidents,
        "alerts": [
            {
                "firing": f.model_dump(mode="json"),
                "resolved_at": r.resolved_at.isoformat() if r and r.resolved_at else None,
            }
            for f, r in run.episodes()
        ],
        "scores": None
        if scores is None
        else {
            n: {
                "fired": s.fired,
                "hits": s.hits,
                "misses": s.misses,
                "false_alarms": s.false_alarms,
                "time_to_fire_s": [t.total_seconds() for t in s.time_to_fire],
            }
            for n, s in scores.items()
        },
    }
