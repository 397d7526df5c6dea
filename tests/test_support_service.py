"""The support service (member lookup) against each real search engine (OpenSearch and
Elasticsearch), loaded from stub runs with fixed seeds.

Ground truth comes from the stub: every affected member whose session failed must see the
scenario's incident on that session; members outside the affected list never see it; the
summary names the device and the incident's root cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from indexers.search_backend import SearchBackend
from indexers.search_factory import make_backend
from streamwatch.settings import Settings
from support_console import queries
from support_console.identity import AgentIdentity
from support_console.service import LookupRequest, SupportService
from tests.conftest import on_backend
from tests.test_support_data import World, own_settings, scenario_world

AGENT = AgentIdentity("agent-svc", "cli")
SCENARIOS = ("oca_outage", "drm_license_outage")


class RecordingBackend:
    """The real backend, with every search body kept for inspection (not a mock)."""

    def __init__(self, inner: SearchBackend) -> None:
        self.inner = inner
        self.bodies: list[dict[str, Any]] = []

    def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(json.loads(json.dumps(body)))
        return self.inner.search(index, body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(
    scope="module",
    # Both scenarios on OpenSearch; one on Elasticsearch (the same service code and queries,
    # within the suite's time budget).
    params=[*((scenario, "opensearch") for scenario in SCENARIOS), ("oca_outage", "elasticsearch")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def world(request: pytest.FixtureRequest, settings: Settings) -> World:
    scenario, backend = request.param
    return scenario_world(scenario, on_backend(settings, backend, request))


def _service(world: World) -> tuple[SupportService, RecordingBackend]:
    SupportService.open(world.settings)  # makes indices ready
    backend = RecordingBackend(make_backend(world.settings))
    return SupportService(backend, world.settings), backend


def test_scenario_has_failed_affected_members(world: World) -> None:
    # Guards the tests below against passing vacuously.
    assert len(world.failed_affected()) >= 3
    assert world.replay.sessions and world.replay.events > 10_000


def test_affected_members_with_failed_sessions_see_the_incident(world: World) -> None:
    service, backend = _service(world)
    incident_id = world.truth_incident.incident_id
    for truth in world.failed_affected():
        result = service.lookup(AGENT, LookupRequest(truth.member_id))
        assert result.status == "found", result.message
        session = next(s for s in result.sessions if s.session_id == truth.session_id)
        assert session.troubled
        marks = {m.incident_id: m for m in session.incidents}
        assert incident_id in marks, (truth.session_id, session.outcome, session.incidents)
        assert marks[incident_id].dimension == world.fault_dimension
        assert marks[incident_id].value == world.truth.value
        # The summary names the failing device and the incident's root cause.
        assert truth.device_model in result.summary
        assert f"{world.fault_dimension} {world.truth.value}" in result.summary
        assert incident_id in result.case_note
    for body in backend.bodies:
        assert queries.clause_types(body) <= queries.ALLOWED_CLAUSES


def test_members_outside_the_affected_list_never_see_the_incident(world: World) -> None:
    service, _ = _service(world)
    affected = set(world.truth.affected_member_ids)
    failing_outside = sorted(
        {
            s.member_id
            for s in world.replay.sessions.values()
            if s.member_id not in affected and (s.playback_failed or s.errors)
        }
    )
    assert failing_outside, "the run should have failures unrelated to the fault"
    incident_id = world.truth_incident.incident_id
    for member_id in failing_outside[:25]:
        result = service.lookup(AGENT, LookupRequest(member_id))
        assert result.status == "found"
        for s in result.sessions:
            assert incident_id not in {m.incident_id for m in s.incidents}, (member_id, s)
        assert incident_id not in result.summary


def test_every_kind_of_id_finds_the_member(world: World) -> None:
    service, _ = _service(world)
    truth = world.failed_affected()[0]
    record = next(m for m in world.members if m["member_id"] == truth.member_id)
    email = str(record["email"])
    expectations = {
        truth.member_id: "member_id",
        truth.profile_id: "profile_id",
        truth.device_id: "device_id",
        truth.session_id: "session_id",
        email.upper(): "email",
    }
    for text, kind in expectations.items():
        result = service.lookup(AGENT, LookupRequest(text, case_id="C-42"))
        assert result.status == "found", (text, result.message)
        assert result.member is not None and result.member.member_id == truth.member_id
        assert result.query_kind == kind
        # The raw email is never part of anything shown.
        dumped = result.model_dump_json().lower()
        assert email.lower() not in dumped
        assert email.split("@")[0].lower() not in dumped
    assert result.member is not None and result.member.email_masked
    assert result.member.email_masked.endswith(email.rsplit(".", 1)[1])


def test_sessions_newest_first_with_errors_explained(world: World) -> None:
    service, _ = _service(world)
    truth = world.failed_affected()[0]
    result = service.lookup(AGENT, LookupRequest(truth.member_id))
    starts = [s.started_at for s in result.sessions]
    assert starts == sorted(starts, reverse=True)
    failing = next(s for s in result.sessions if s.session_id == truth.session_id)
    assert truth.fatal_code is not None
    error = next(e for e in failing.errors if e.code == truth.fatal_code)
    assert error.in_catalog and error.meaning and error.agent_action
    assert error.agent_action in result.case_note


def test_period_bounds_the_sessions(world: World) -> None:
    service, _ = _service(world)
    truth = world.failed_affected()[0]
    result = service.lookup(AGENT, LookupRequest(truth.member_id, period=timedelta(hours=1)))
    # The stub ran yesterday from 01:00 UTC; the last hour holds none of it.
    assert result.status == "found"
    assert result.sessions == ()
    assert "No playback sessions" in result.summary


def test_drilldown_has_bitrate_buffer_and_the_error(world: World) -> None:
    service, _ = _service(world)
    truth = (
        next(t for t in world.failed_affected() if t.first_frame)
        if any(t.first_frame for t in world.failed_affected())
        else world.failed_affected()[0]
    )
    result = service.lookup(AGENT, LookupRequest(truth.member_id))
    session = next(s for s in result.sessions if s.session_id == truth.session_id)
    points = service.session_timeline(AGENT, session)
    assert points, "events of the session are indexed"
    assert any(p.event_type == "error" and p.error_code == truth.fatal_code for p in points)
    if truth.first_frame:
        assert any(p.bitrate_kbps for p in points)
        assert any(p.buffer_ms is not None for p in points)


@pytest.mark.parametrize(
    "text", ['"*" OR 1=1', "member_id:*", "x" * 10_240, "*", "m-1 OR 1=1", "a\u202eb"]
)
def test_odd_input_never_reaches_the_engine(world: World, text: str) -> None:
    service, backend = _service(world)
    result = service.lookup(AGENT, LookupRequest(text))
    assert result.status == "invalid"
    assert result.message
    assert backend.bodies == []


def test_exotic_but_valid_input_is_searched_as_an_exact_term(world: World) -> None:
    service, backend = _service(world)
    result = service.lookup(AGENT, LookupRequest("Zoë-ünïcode-北京"))
    assert result.status == "not_found"
    assert "No member found" in result.message
    assert backend.bodies
    for body in backend.bodies:
        assert queries.clause_types(body) <= queries.ALLOWED_CLAUSES
        assert "query_string" not in json.dumps(body)


def test_unknown_id_and_empty_indices(
    settings: Settings, search_backend: str, request: pytest.FixtureRequest
) -> None:
    empty = own_settings(on_backend(settings, search_backend, request), "empty")
    service = SupportService.open(empty)
    result = service.lookup(AGENT, LookupRequest("m-does-not-exist"))
    assert result.status == "empty_index"
    assert "no playback data" in result.message.lower()


def test_unknown_id_in_a_loaded_world(world: World) -> None:
    service, _ = _service(world)
    result = service.lookup(AGENT, LookupRequest("m-0000000000000000"))
    assert result.status == "not_found"
    assert "m-0000000000000000" in result.message


def test_member_with_no_errors(world: World) -> None:
    service, _ = _service(world)
    troubled = {s.member_id for s in world.replay.sessions.values() if s.playback_failed}
    clean = sorted(
        {
            s.member_id
            for s in world.replay.sessions.values()
            if s.member_id not in troubled
            and not s.errors
            and s.rebuffer_count == 0
            and s.start_outcome == "started"
        }
    )
    for member_id in clean[:10]:
        result = service.lookup(AGENT, LookupRequest(member_id))
        if all(not s.troubled for s in result.sessions):
            one = len(result.sessions) == 1
            assert result.summary.startswith("The one session " if one else "All ")
            assert "played without errors" in result.summary
            return
    pytest.fail("no member without problems found")
