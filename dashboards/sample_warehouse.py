"""ADAPTER (last resort, clearly marked): build a warehouse from a scenario, in-process.

Until `platform_stub` (scenario runner with ground truth) and `indexers` (warehouse writer)
land their public functions, the dashboards' tests and screenshots need warehouse data that
came through the real per-event logic. This module:

1. generates player events for a small population with an `isp_congestion` fault on one
   ISP (a stand-in for `streamwatch stub run --scenario isp_congestion`), keeping the
   ground truth;
2. runs them through the streams box's pure functions: `Sessionizer` (session summaries),
   `MinuteRoller` (minute rollups) and `detector.evaluate` (incidents);
3. writes Parquet partitions `<root>/<table>/date=YYYY-MM-DD/part-0.parquet`, flattened by
   `indexers.documents.flatten` (the warehouse sink's own record -> row code) when present.

Replace steps 1 and 3 by the stub and the warehouse writer once they exist.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.deadletter import DeadLetter
from ingest.events import EVENT_ADAPTER, Event
from streams.detector import DetectorState, evaluate, merge_partials
from streams.records import Incident, MinuteRollup, SessionSummary
from streams.rollup import MinuteRoller
from streams.sessionizer import Sessionizer, to_ms

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
ISPS = (("isp-a", 0.3), ("isp-b", 0.25), ("isp-c", 0.25), ("isp-d", 0.2))
REGIONS = ("us-east", "us-west", "eu-west")
DEVICES = (("tv", "TV-X", "tizen"), ("mobile", "Phone-2", "android"), ("web", "Chrome", "web"))
APP_VERSIONS = ("5.1.0", "5.2.0")
TITLES = tuple(f"t-{i}" for i in range(1, 13))


@dataclass(frozen=True)
class Scenario:
    """A small traffic pattern with one fault window on one ISP."""

    name: str = "isp_congestion"
    minutes: int = 30
    plays_per_minute: int = 60
    fault_isp: str | None = "isp-c"
    fault_start_min: int = 10
    fault_end_min: int = 22
    members: int = 400
    seed: int = 7
    start: datetime = T0


@dataclass
class SampleRun:
    """Everything one scenario run produced, plus its ground truth."""

    scenario: Scenario
    events: list[Event] = field(default_factory=list)
    sessions: list[SessionSummary] = field(default_factory=list)
    rollups: list[MinuteRollup] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    ground_truth: dict[str, Any] = field(default_factory=dict)


def _doc(kind: str, t: datetime, env: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        **env,
        "event_id": str(uuid.UUID(int=random.getrandbits(128))),
        "event_type": kind,
        "event_time": t.isoformat(),
        "received_at": (t + timedelta(milliseconds=400)).isoformat(),
        "payload": {"event_type": kind, **payload},
    }


def _session_docs(rng: random.Random, sc: Scenario, t0: datetime, sid: str) -> list[dict[str, Any]]:
    isp = rng.choices([i for i, _ in ISPS], [w for _, w in ISPS])[0]
    region = rng.choice(REGIONS)
    dev = rng.choice(DEVICES)
    member = f"m-{rng.randrange(sc.members)}"
    minute = (t0 - sc.start).total_seconds() / 60
    faulty = sc.fault_isp == isp and sc.fault_start_min <= minute < sc.fault_end_min
    env = {
        "member_id": member,
        "profile_id": f"{member}-p1",
        "session_id": sid,
        "title_id": rng.choice(TITLES),
        "device": {
            "device_id": f"{member}-{dev[0]}",
            "device_type": dev[0],
            "device_model": dev[1],
            "os": dev[2],
            "app_version": rng.choice(APP_VERSIONS),
        },
        "network": {
            "country": "US" if region.startswith("us") else "IE",
            "region": region,
            "isp": isp,
            "asn": 64500 + [i for i, _ in ISPS].index(isp),
            # OCAs serve a region, shared by every ISP: only the ISP explains the fault.
            "oca_id": f"oca-{region}-{rng.randrange(2)}",
            "cdn_tier": "edge" if rng.random() < 0.9 else "origin",
            "connection_type": "wifi",
        },
    }
    docs = [_doc("play_requested", t0, env, {})]
    fate = rng.random()
    if fate < 0.03:  # exit before video start
        docs.append(
            _doc(
                "playback_end",
                t0 + timedelta(seconds=4),
                env,
                {"watched_ms": 0, "exit_reason": "abandoned_startup"},
            )
        )
        return docs
    if fate < 0.05:  # video start failure
        docs.append(
            _doc(
                "error",
                t0 + timedelta(seconds=2),
                env,
                {"code": "NW-1001", "category": "network", "severity": "fatal"},
            )
        )
        return docs
    startup = int(rng.lognormvariate(7.2, 0.35)) + (1500 if faulty else 0)
    kbps = rng.choice((3000, 5000, 8000)) // (3 if faulty else 1)
    t = t0 + timedelta(milliseconds=startup)
    docs.append(_doc("first_frame", t, env, {"startup_ms": startup, "bitrate_kbps": kbps}))
    watch_s = rng.randrange(120, 420)
    stall_every = 60 if faulty else (150 if rng.random() < 0.3 else 10**6)
    for k in range(1, watch_s // 30 + 1):
        if (k * 30) % stall_every < 30:
            dur = rng.randrange(3000, 9000) if faulty else rng.randrange(500, 1500)
            docs.append(_doc("rebuffer_start", t, env, {}))
            t += timedelta(milliseconds=dur)
            docs.append(_doc("rebuffer_end", t, env, {"duration_ms": dur}))
        t += timedelta(seconds=30)
        docs.append(
            _doc(
                "heartbeat",
                t,
                env,
                {"bitrate_kbps": kbps, "buffer_ms": 20_000, "throughput_kbps": kbps * 3},
            )
        )
    if rng.random() < 0.01:
        docs.append(
            _doc("error", t, env, {"code": "DRM-2001", "category": "drm", "severity": "fatal"})
        )
    else:
        docs.append(
            _doc("playback_end", t, env, {"watched_ms": watch_s * 1000, "exit_reason": "user_exit"})
        )
    return docs


def generate_events(sc: Scenario) -> list[Event]:
    """Player events of the scenario, sorted by event time."""
    rng = random.Random(sc.seed)
    random.seed(sc.seed)  # event ids (`_doc`) are deterministic too
    docs: list[dict[str, Any]] = []
    for m in range(sc.minutes):
        for k in range(sc.plays_per_minute):
            t0 = sc.start + timedelta(minutes=m, seconds=60 * k / sc.plays_per_minute)
            docs.extend(_session_docs(rng, sc, t0, f"s-{m:03d}-{k:03d}"))
    events = [EVENT_ADAPTER.validate_python(d) for d in docs]
    events.sort(key=lambda e: e.event_time)
    return events


def process(
    events: Iterable[Event],
) -> tuple[list[SessionSummary], list[MinuteRollup], list[Incident]]:
    """Run the streams box's pure functions over events (one partial)."""
    sz, roller = Sessionizer(), MinuteRoller("p0")
    sessions: dict[str, SessionSummary] = {}
    rollups: list[MinuteRollup] = []
    last_ms = 0
    for e in events:
        applied = sz.feed(e)
        last_ms = to_ms(e.event_time)
        roller.add(last_ms, sz.states[e.session_id].dims, applied)
        if applied.summary is not None:
            sessions[applied.summary.session_id] = applied.summary
    end_ms = last_ms + 3600_000  # far past every timeout: close everything
    for s in sz.advance(end_ms):
        sessions[s.session_id] = s
        roller.add_end(s)
    rollups.extend(roller.advance(end_ms))
    rollups.extend(roller.advance(end_ms))
    latest: dict[str, MinuteRollup] = {}
    for r in rollups:
        if r.key not in latest or r.revision >= latest[r.key].revision:
            latest[r.key] = r
    by_minute: dict[datetime, list[tuple[tuple[str, str], Any]]] = defaultdict(list)
    for r in latest.values():
        by_minute[r.window_start].append(((r.dimension, r.value), r.counts))
    state = DetectorState()
    incidents: dict[str, Incident] = {}
    for minute in sorted(by_minute):
        for inc in evaluate(state, minute, merge_partials(by_minute[minute])):
            incidents[inc.incident_id] = inc
    for oi in state.open.values():
        incidents[oi.incident.incident_id] = oi.incident
    return list(sessions.values()), list(latest.values()), list(incidents.values())


def run(sc: Scenario) -> SampleRun:
    """Generate and process a scenario."""
    events = generate_events(sc)
    sessions, rollups, incidents = process(events)
    truth = {
        "scenario": sc.name,
        "fault": None
        if sc.fault_isp is None
        else {
            "dimension": "isp",
            "value": sc.fault_isp,
            "metric": "rebuffer_pct",
            "start": (sc.start + timedelta(minutes=sc.fault_start_min)).isoformat(),
            "end": (sc.start + timedelta(minutes=sc.fault_end_min)).isoformat(),
        },
    }
    return SampleRun(sc, events, sessions, rollups, incidents, truth)


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
    from indexers.arrow_rows import rows_to_table
    from indexers.documents import TABLE_BY_NAME, flatten, source_fields
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


def write_warehouse(root: Path, sample: SampleRun) -> dict[str, int]:
    """Write a run's events, sessions, minute rollups and incidents; returns row counts."""
    return {
        "events": write_table(
            root, "events", [e.model_dump(mode="json") for e in sample.events], "event_time"
        ),
        "sessions": write_table(
            root, "sessions", [s.model_dump(mode="json") for s in sample.sessions], "first_event_at"
        ),
        "qoe_minute": write_table(
            root, "qoe_minute", [_rollup_row(r) for r in sample.rollups], "window_start"
        ),
        "incidents": write_table(
            root, "incidents", [i.model_dump(mode="json") for i in sample.incidents], "started_at"
        ),
    }


def _rollup_row(r: MinuteRollup) -> dict[str, Any]:
    d = r.model_dump(mode="json", exclude={"counts"})
    counts = r.counts.model_dump(mode="json", exclude={"startup", "errors_by_code"})
    return {**d, **counts}


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
