"""Load recorded events into the search indices in-process, without Kafka or Faust.

For the support console's tests, its benchmark and offline looks at a stub file run:
sessions and incidents come from `streams.replay.replay` (the same pure steps the stream
worker runs: sessionizer, minute rollups, detector), documents and their ids from
`indexers.documents` (as the search sink writes them), indices from
`indexers.search_setup.ensure_search_ready`.

    python -m testkit.search_loader RUN_DIR   # events*.jsonl (+ members.jsonl) of a stub run
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from contract.events import EVENT_ADAPTER, Event
from contract.records import Incident, SessionSummary
from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.documents import document_id, flatten
from indexers.search_backend import BulkOp, SearchBackend, SearchUnavailable
from indexers.search_setup import ensure_search_ready
from streams import detector
from streams.config import StreamsConfig
from streams.replay import replay
from streamwatch.settings import Settings

_BULK = 5000


@dataclass
class Loaded:
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


def derive(
    events: Sequence[Event], policy: detector.DetectorPolicy = detector.DEFAULT_POLICY
) -> Loaded:
    """Sessions (latest revision) and incidents (latest revision) the worker would publish.

    `policy` lets small replays (tests) lower the detector's minimum cohorts, which are
    sized for production traffic.
    """
    out = replay((e.model_dump_json() for e in events), StreamsConfig(detector=policy))
    return Loaded(
        events=len(events),
        sessions=out.latest_summaries(),
        incidents={i.incident_id: i for i in out.incidents},
    )


def _send(backend: SearchBackend, ops: list[BulkOp]) -> None:
    results = backend.bulk(ops)
    bad = [r for r in results if not (r.ok or r.already_done)]
    if bad:
        raise SearchUnavailable(f"{len(bad)} documents rejected: {bad[0].error_reason}")


def _index_events(backend: SearchBackend, settings: Settings, events: Iterable[Event]) -> None:
    events_table = TABLE_BY_NAME["events"]
    pending: list[BulkOp] = []
    made_days: set[str] = set()
    for ev in events:
        index = naming.events_index(settings, ev.event_time.astimezone(UTC).date())
        if index not in made_days:
            backend.create_index(index)  # joins the read alias through the template
            made_days.add(index)
        doc = flatten(json.loads(ev.model_dump_json()), events_table)
        pending.append(BulkOp("index", index, str(ev.event_id), doc))
        if len(pending) >= _BULK:
            _send(backend, pending)
            pending.clear()
    if pending:
        _send(backend, pending)


def index_all(
    backend: SearchBackend,
    settings: Settings,
    events: Iterable[Event],
    *,
    with_events: bool = True,
    policy: detector.DetectorPolicy = detector.DEFAULT_POLICY,
) -> Loaded:
    """Derive sessions and incidents from `events` and index all three families."""
    ensure_search_ready(backend, settings)
    events = list(events)
    if with_events:
        _index_events(backend, settings, events)
    result = derive(events, policy)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Load a stub file run (events, and members when present) into the search indices."""
    from indexers.search_factory import make_backend
    from support_console.directory import find_export, load_members, read_export

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m testkit.search_loader RUN_DIR", file=sys.stderr)
        return 2
    path, settings = Path(args[0]), Settings()
    if not any(path.glob("events*.jsonl")) and not path.is_file():
        print(f"no events*.jsonl in {path} (run the stub with --target file)", file=sys.stderr)
        return 2
    backend = make_backend(settings)
    result = index_all(backend, settings, read_events(path))
    print(
        f"indexed {result.events:,} events, {len(result.sessions):,} sessions, "
        f"{len(result.incidents):,} incidents"
    )
    if path.is_dir() and (path / "members.jsonl").is_file():
        report = load_members(backend, settings, read_export(find_export(path)))
        print(f"indexed {report.indexed:,} members into {report.index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
