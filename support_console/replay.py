"""Load recorded events into the search indices in-process, without Kafka or Faust.

STAND-IN for the real pipeline (collector → Kafka → streams workers → search sink), for the
support console's tests, its benchmark and offline demos. It uses the pipeline's own pure
pieces, so documents look exactly as the search sink writes them:

- `streams.sessionizer.Sessionizer` → session summaries,
- `streams.rollup.MinuteRoller` + `streams.detector.evaluate` → incidents,
- `indexers.documents.flatten` / `document_id` → the documents and their ids,
- `indexers.search_setup.ensure_search_ready` → templates and indices.

Replace its uses with a real pipeline run once the streams worker and the search sink run
end to end in tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract.events import EVENT_ADAPTER, Event
from contract.records import Incident, MinuteCounts, SessionSummary
from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.documents import document_id, flatten
from indexers.search_backend import BulkOp, SearchBackend, SearchUnavailable
from indexers.search_setup import ensure_search_ready
from streams import detector, rollup
from streams.sessionizer import Sessionizer, to_ms
from streamwatch.settings import Settings

_BULK = 5000
_FAR_FUTURE_MS = 10**15


@dataclass
class ReplayResult:
    """What the replay derived and indexed."""

    events: int = 0
    sessions: dict[str, SessionSummary] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)


def read_events(path: Path) -> Iterator[Event]:
    """Events from a JSON-lines file, or every events*.jsonl file in a directory."""
    files = sorted(path.glob("events*.jsonl")) if path.is_dir() else [path]
    for f in files:
        with f.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield EVENT_ADAPTER.validate_json(line)


def _rollup_dims(event: Event) -> dict[str, Any]:
    # The dimensions `streams.rollup.DIMENSIONS` counts an event towards.
    return {
        "region": event.network.region,
        "isp": event.network.isp,
        "oca_id": event.network.oca_id,
        "device_type": event.device.device_type,
        "app_version": event.device.app_version,
        "title_id": event.title_id,
        "os": event.device.os,
        "device_model": event.device.device_model,
    }


class _Detector:
    """Feeds closed minutes to the detector in time order."""

    def __init__(self, policy: detector.DetectorPolicy) -> None:
        self.policy = policy
        self.state = detector.DetectorState()
        self.incidents: dict[str, Incident] = {}

    def minutes(self, rollups: Iterable[Any]) -> None:
        by_minute: dict[datetime, list[tuple[tuple[str, str], MinuteCounts]]] = defaultdict(list)
        for r in rollups:
            if r.revision == 0:
                by_minute[r.window_start].append(((r.dimension, r.value), r.counts))
        for start in sorted(by_minute):
            values = detector.merge_partials(by_minute[start])
            for inc in detector.evaluate(self.state, start, values, self.policy):
                self.incidents[inc.incident_id] = inc

    def finish(self) -> None:
        for oi in self.state.open.values():
            self.incidents[oi.incident.incident_id] = oi.incident


def derive(
    events: Iterable[Event],
    on_event: Any = None,
    policy: detector.DetectorPolicy = detector.DEFAULT_POLICY,
) -> ReplayResult:
    """Sessions and incidents from events in (roughly) event-time order.

    `policy` lets small replays (tests) lower the detector's minimum cohorts, which are
    sized for production traffic.
    """
    result = ReplayResult()
    sessionizer = Sessionizer()
    roller = rollup.MinuteRoller()
    det = _Detector(policy)
    last_advance = 0
    for ev in events:
        result.events += 1
        if on_event is not None:
            on_event(ev)
        applied = sessionizer.feed(ev)
        t = to_ms(ev.event_time)
        roller.add(t, _rollup_dims(ev), applied)
        if applied.summary is not None:
            result.sessions[applied.summary.session_id] = applied.summary
        if t - last_advance >= 60_000:
            last_advance = t
            for s in sessionizer.advance(t):
                result.sessions[s.session_id] = s
            det.minutes(roller.advance(t))
    for s in sessionizer.advance(_FAR_FUTURE_MS):
        result.sessions[s.session_id] = s
    det.minutes(roller.advance(_FAR_FUTURE_MS))
    det.finish()
    result.incidents = det.incidents
    return result


def _send(backend: SearchBackend, ops: list[BulkOp]) -> None:
    results = backend.bulk(ops)
    bad = [r for r in results if not (r.ok or r.already_done)]
    if bad:
        raise SearchUnavailable(f"{len(bad)} documents rejected: {bad[0].error_reason}")


def index_all(
    backend: SearchBackend,
    settings: Settings,
    events: Iterable[Event],
    *,
    with_events: bool = True,
    policy: detector.DetectorPolicy = detector.DEFAULT_POLICY,
) -> ReplayResult:
    """Derive sessions and incidents from `events` and index all three families."""
    ensure_search_ready(backend, settings)
    events_table = TABLE_BY_NAME["events"]
    pending: list[BulkOp] = []
    made_days: set[str] = set()

    def on_event(ev: Event) -> None:
        if not with_events:
            return
        index = naming.events_index(settings, ev.event_time.astimezone(UTC).date())
        if index not in made_days:
            backend.create_index(index)  # joins the read alias through the template
            made_days.add(index)
        doc = flatten(json.loads(ev.model_dump_json()), events_table)
        pending.append(BulkOp("index", index, str(ev.event_id), doc))
        if len(pending) >= _BULK:
            _send(backend, pending)
            pending.clear()

    result = derive(events, on_event, policy)
    if pending:
        _send(backend, pending)
    for table_name, records in (
        ("sessions", result.sessions.values()),
        ("incidents", result.incidents.values()),
    ):
        table = TABLE_BY_NAME[table_name]
        index = (
            naming.sessions_index(settings)
            if table_name == "sessions"
            else naming.incidents_index(settings)
        )
        batch: list[BulkOp] = []
        for rec in records:
            doc = flatten(json.loads(rec.model_dump_json()), table)
            batch.append(BulkOp("index", index, document_id(doc, table), doc))
            if len(batch) >= _BULK:
                _send(backend, batch)
                batch = []
        if batch:
            _send(backend, batch)
    for index in (naming.sessions_index(settings), naming.incidents_index(settings)):
        backend.refresh(index)
    backend.refresh(naming.events_alias(settings))
    return result
