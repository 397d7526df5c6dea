"""Test data for the support console: stub runs with fixed seeds, loaded into real OpenSearch.

Not a test module (it has no tests); the support tests import `scenario_world` from here.
Each scenario gets its own index prefix, so worlds never see each other's members.

What is loaded, per scenario:
- the member directory from the stub population (`members.jsonl` records), via the
  console's own loader;
- events, session summaries and detector incidents, via `testkit.search_loader` (the
  pipeline's pure pieces in-process: streams sessionizer/rollup/detector, indexers documents);
- one incident made from the scenario's ground truth (`truth-<scenario>`), so the console's
  correlation is checked against the truth independently of how well the detector localises
  faults at test scale (the detector is tested in tests/test_streams_detector.py).
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contract.events import EVENT_ADAPTER
from contract.records import Incident
from contract.tables import TABLE_BY_NAME
from indexers.documents import document_id, flatten
from indexers.search_backend import BulkOp, SearchBackend
from indexers.search_factory import make_backend
from platform_stub.generator import RunOptions, StubRun
from platform_stub.population import member_record
from platform_stub.scenarios import ScenarioTruth
from platform_stub.truth import SessionTruth
from streamwatch.settings import Settings
from support_console import indices
from support_console.directory import load_members
from testkit.search_loader import Loaded, index_all

# Fixed seeds and a fixed time of day (01:00 UTC, evening in the Americas, when the stub's
# busiest OCA is busy); the day is yesterday so the data sits inside the default 7 days.
SEEDS = {"oca_outage": 7, "drm_license_outage": 11}
MEMBERS = 800
RATE = 80.0
DURATION_S = 1200.0


@dataclass(frozen=True)
class World:
    """One scenario loaded into its own indices."""

    scenario: str
    settings: Settings
    truth: ScenarioTruth
    sessions: dict[str, SessionTruth]
    members: list[dict[str, object]]
    replay: Loaded
    truth_incident: Incident

    @property
    def fault_dimension(self) -> str:
        """The fault's dimension as a session column (`network.oca_id` -> `oca_id`)."""
        assert self.truth.dimension is not None
        return self.truth.dimension.rpartition(".")[2]

    def failed_affected(self) -> list[SessionTruth]:
        """Affected sessions that ended in a fatal error (the member surely called)."""
        out = []
        for sid in self.truth.affected_session_ids:
            t = self.sessions.get(sid)
            if t is not None and t.ended_in_fatal:
                out.append(t)
        return out


def run_start(now: datetime | None = None) -> datetime:
    """Yesterday 01:00 UTC."""
    day = ((now or datetime.now(UTC)) - timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC)


def _truth_incident(scenario: str, truth: ScenarioTruth) -> Incident:
    assert truth.start and truth.end and truth.dimension and truth.value
    start = datetime.fromisoformat(truth.start.replace("Z", "+00:00"))
    end = datetime.fromisoformat(truth.end.replace("Z", "+00:00"))
    return Incident(
        incident_id=f"truth-{scenario}",
        status="resolved",
        metric="playback_failure_pct",
        dimension=truth.dimension.rpartition(".")[2],
        value=truth.value,
        started_at=start,
        detected_at=start + timedelta(minutes=1),
        last_anomalous_at=end,
        resolved_at=end,
        observed=50.0,
        expected=1.0,
        affected_sessions=len(truth.affected_session_ids),
        severity="major",
        explanation=f"{scenario} (scenario ground truth)",
    )


def _index_incident(backend: SearchBackend, settings: Settings, inc: Incident) -> None:
    table = TABLE_BY_NAME["incidents"]
    doc = flatten(json.loads(inc.model_dump_json()), table)
    index = indices.incidents(settings)
    results = backend.bulk([BulkOp("index", index, document_id(doc, table), doc)])
    assert all(r.ok for r in results), results
    backend.refresh(index)


_OWN_PREFIXES: set[str] = set()


def own_settings(base: Settings, name: str) -> Settings:
    """`base` with an index prefix of its own (deleted when the test process exits)."""
    prefix = f"streamwatch-{base.topic_prefix}{name}-"
    _OWN_PREFIXES.add(prefix)
    return base.model_copy(update={"search_index_prefix": prefix})


@atexit.register
def _delete_own_indices() -> None:
    # The support tests' indices and templates are theirs alone; keep them only on request.
    if not _OWN_PREFIXES or os.environ.get("STREAMWATCH_KEEP_TEST_INDICES"):
        return
    try:
        backend = make_backend(Settings())
        for prefix in _OWN_PREFIXES:
            for index in backend.list_indices(f"{prefix}*"):
                backend.delete_index(index)
            for template in (f"{prefix}{n}" for n in ("events", "sessions", "incidents", "spans")):
                backend.delete_index_template(template)
            for template in (f"{prefix}support-audit", f"{prefix}support-members"):
                backend.delete_index_template(template)
    except Exception:  # the stack may be gone already; leftovers are harmless
        pass


def build_world(scenario: str, base: Settings) -> World:
    """Run the stub for `scenario` and load everything into indices of its own."""
    settings = own_settings(base, scenario.replace("_", "-"))
    run = StubRun(
        RunOptions(
            seed=SEEDS[scenario],
            members=MEMBERS,
            rate=RATE,
            duration_s=DURATION_S,
            scenario=scenario,
            start_ms=int(run_start().timestamp() * 1000),
        )
    )
    events = (EVENT_ADAPTER.validate_json(line) for b in run.batches(5000) for line in b.lines)
    backend = make_backend(settings)
    replay = index_all(backend, settings, events)
    truth = run.scenario_truth()
    members = [member_record(m) for m in run.population.members]
    load_members(backend, settings, members)
    incident = _truth_incident(scenario, truth)
    _index_incident(backend, settings, incident)
    return World(
        scenario=scenario,
        settings=settings,
        truth=truth,
        sessions={t.session_id: t for t in run.truths()},
        members=members,
        replay=replay,
        truth_incident=incident,
    )


_WORLDS: dict[tuple[str, str, str], World] = {}


def scenario_world(scenario: str, base: Settings) -> World:
    """The loaded world of `scenario`, built once per test session."""
    key = (scenario, base.topic_prefix, base.search_endpoint)
    if key not in _WORLDS:
        _WORLDS[key] = build_world(scenario, base)
    return _WORLDS[key]
