"""ADAPTER (clearly marked): build a warehouse from a real stub run, in-process.

The dashboards' tests and screenshots need warehouse data that came through the real
pipeline logic, without Kafka or the Faust workers. This module:

1. runs the platform stub (`platform_stub.generator.StubRun`, the code behind
   `streamwatch stub run --scenario ...`) with a fixed seed, keeping its ground truth
   (`StubRun.scenario_truth()`, what the stub writes as `scenario.json`);
2. replays its events through the streams logic in one process (`streams.replay.replay`:
   sessionizer, minute rollups, detector);
3. writes the tables with the warehouse sink's own code (`indexers.documents.flatten`,
   `indexers.arrow_rows.rows_to_table`, `indexers.warehouse_writer.write_partitioned`) as
   Parquet partitions `<root>/<table>/date=YYYY-MM-DD/part-0.parquet`.

What stays an adapter is the transport only (no collector, Kafka or warehouse sink loop)
and `ingested_at`, set to the record's time plus a fixed delay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from contract.deadletter import DeadLetter
from contract.records import Incident, MinuteRollup, SessionSummary
from platform_stub.config import PlayerConfig, StubConfig
from platform_stub.generator import RunOptions, StubRun
from platform_stub.scenarios import ScenarioTruth
from streams.replay import replay

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)  # the dead-letter-only warehouse's start


@dataclass(frozen=True)
class Scenario:
    """One stub run: scenario, seed and size (stub knobs only; same seed, same data).

    The default is sized so the detector raises the `isp_congestion` incident on the
    ground-truth ISP (≈3,700 sessions over 20 simulated minutes) while the page tests stay
    fast. Two stub knobs differ from the stub's defaults:

    - heartbeats every 30 s instead of 10 s halve the event count (and the build time);
    - the fault runs from 30 % to 95 % of the window (minutes 6-19) instead of 30-70 %, so
      over the whole run the congested ISP, not mobile devices (which rebuffer more by
      nature), tops the overview's worst offenders for rebuffer %. With seed 7 the margin
      is about 66 vs 59 (`overview.breakdown`'s `excess`).
    """

    name: str = "isp_congestion"
    seed: int = 7
    members: int = 3_000
    rate: float = 100.0  # events per simulated second
    duration_s: float = 1_200.0
    heartbeat_ms: int = 30_000
    fault_end_frac: float = 0.95

    def options(self) -> RunOptions:
        """The stub's run options for this scenario."""
        config = StubConfig(
            player=PlayerConfig(heartbeat_ms=self.heartbeat_ms),
            fault_end_frac=self.fault_end_frac,
        )
        return RunOptions(
            seed=self.seed,
            members=self.members,
            rate=self.rate,
            duration_s=self.duration_s,
            scenario=self.name,
            config=config,
        )


@dataclass
class SampleRun:
    """Everything one stub run produced through streams, plus the stub's ground truth."""

    scenario: Scenario
    events: list[dict[str, Any]] = field(default_factory=list)  # as the stub sent them
    sessions: list[SessionSummary] = field(default_factory=list)
    rollups: list[MinuteRollup] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    truth: ScenarioTruth | None = None
    ground_truth: dict[str, Any] = field(default_factory=dict)


def _ground_truth(truth: ScenarioTruth) -> dict[str, Any]:
    """The stub's `scenario.json`, with the fault's dimension as a warehouse column."""
    if truth.dimension is None:
        return {"scenario": truth.kind, "fault": None}
    return {
        "scenario": truth.kind,
        "fault": {
            "dimension": truth.dimension.rpartition(".")[2],  # network.isp -> isp
            "value": truth.value,
            "metric": truth.metric,
            "start": truth.start,
            "end": truth.end,
        },
    }


def _latest(items: list[Any], key: str) -> list[Any]:
    """The newest revision of each record (publication order breaks ties)."""
    out: dict[str, Any] = {}
    for item in items:
        k = getattr(item, key)
        if k not in out or item.revision >= out[k].revision:
            out[k] = item
    return list(out.values())


@cache
def run(sc: Scenario) -> SampleRun:
    """Run the stub for `sc` and replay its events through streams (cached per process)."""
    stub = StubRun(sc.options())
    lines = [line for batch in stub.batches(5_000) for line in batch.lines]
    result = replay(lines)
    if result.invalid:
        raise ValueError(f"{result.invalid} stub events failed validation")
    # The warehouse sink flattens each Kafka record's decoded JSON (`indexers.decode`):
    # for events, the stub's own bytes.
    events = [json.loads(line) for line in lines]
    truth = stub.scenario_truth()
    return SampleRun(
        scenario=sc,
        events=events,
        sessions=list(result.latest_summaries().values()),
        rollups=_latest(result.rollups, "key"),
        incidents=_latest(result.incidents, "incident_id"),
        truth=truth,
        ground_truth=_ground_truth(truth),
    )


# --- writing the warehouse -------------------------------------------------------------------


def _ts(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    return datetime.fromisoformat(str(v)).astimezone(UTC)


def write_table(
    root: Path, table: str, objs: list[dict[str, Any]], time_key: str, ingest_delay_s: float = 2.0
) -> int:
    """Write one table with the warehouse sink's own code: flatten -> Arrow -> partitions.

    `ingested_at` is the record's time plus `ingest_delay_s` (a fixed, known freshness).
    """
    from contract.tables import TABLE_BY_NAME
    from indexers.arrow_rows import rows_to_table
    from indexers.documents import flatten, source_fields
    from indexers.warehouse_writer import write_partitioned

    if not objs:
        return 0
    spec = TABLE_BY_NAME[table]
    rows = []
    for offset, obj in enumerate(objs):
        t = obj.get(time_key)
        ingested = (_ts(t) if t is not None else T0) + timedelta(seconds=ingest_delay_s)
        rows.append({**flatten(obj, spec), **source_fields(0, offset, ingested.isoformat())})
    arrow, bad = rows_to_table(rows, spec.columns)
    if bad:
        raise ValueError(f"{table}: rows the warehouse would reject: {dict(list(bad.items())[:3])}")
    write_partitioned(root, spec, arrow)
    return int(arrow.num_rows)  # pyarrow ships no type hints: num_rows is Any to mypy


def _received(event: dict[str, Any], delay_s: float = 0.5) -> dict[str, Any]:
    # The collector stamps `received_at`; the stub's own bytes have none.
    if event.get("received_at"):
        return event
    at = _ts(event["event_time"]) + timedelta(seconds=delay_s)
    return {**event, "received_at": at.isoformat()}


def write_warehouse(root: Path, sample: SampleRun) -> dict[str, int]:
    """Write a run's events, sessions, minute rollups and incidents; returns row counts.

    Events are received 0.5 s after their event time and stored 2 s after it, so the
    freshness from receipt to warehouse is a known 1.5 s.
    """
    return {
        "events": write_table(root, "events", [_received(e) for e in sample.events], "event_time"),
        "sessions": write_table(
            root, "sessions", [s.model_dump(mode="json") for s in sample.sessions], "first_event_at"
        ),
        "qoe_minute": write_table(
            root, "qoe_minute", [r.model_dump(mode="json") for r in sample.rollups], "window_start"
        ),
        "incidents": write_table(
            root, "incidents", [i.model_dump(mode="json") for i in sample.incidents], "started_at"
        ),
    }


def write_deadletters(root: Path, count: int, start: datetime = T0) -> int:
    """A warehouse holding only dead-lettered input (every event rejected)."""
    reasons = ("schema_invalid", "event_too_large", "clock_skew", "unknown_event_type")
    objs = [
        DeadLetter.of(
            b'{"not": "an event %d"}' % i,
            reasons[i % len(reasons)],
            "collector" if i % 2 else "streams",
            rejected_at=start + timedelta(seconds=i),
        ).model_dump(mode="json")
        for i in range(count)
    ]
    return write_table(root, "deadletters", objs, "rejected_at")
