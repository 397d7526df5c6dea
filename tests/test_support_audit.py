"""The audit trail, on real OpenSearch: one record per lookup, refusals included, fail closed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from indexers.search_factory import make_backend
from streamwatch.settings import Settings
from support_console import indices
from support_console.identity import AgentIdentity
from support_console.service import LookupRequest, SupportService
from tests.test_support_data import World, own_settings, scenario_world

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(settings: Settings) -> World:
    return scenario_world("oca_outage", settings)


def test_each_lookup_is_audited_exactly_once_with_the_agent(world: World) -> None:
    service = SupportService.open(world.settings)
    agent = AgentIdentity(f"agent-{uuid.uuid4().hex[:8]}", "login")
    truth = world.failed_affected()[0]
    email = str(next(m for m in world.members if m["member_id"] == truth.member_id)["email"])
    results = [
        service.lookup(agent, LookupRequest(truth.member_id, case_id="C-1", reason="no play")),
        service.lookup(agent, LookupRequest(email, case_id="C-2")),
        service.lookup(agent, LookupRequest("m-unknown-member")),
        service.lookup(agent, LookupRequest('"*" OR 1=1')),
    ]
    assert [r.status for r in results] == ["found", "found", "not_found", "invalid"]
    records = service.audit_log.records("agent_id", agent.name)
    assert sorted(r.audit_id for r in records) == sorted(str(r.audit_id) for r in results)
    by_id = {r.audit_id: r for r in records}
    first = by_id[str(results[0].audit_id)]
    assert first.agent_id == agent.name and first.agent_source == "login"
    assert first.outcome == "shown" and first.member_id == truth.member_id
    assert first.case_id == "C-1" and first.reason == "no play"
    assert first.shown_session_ids == tuple(s.session_id for s in results[0].sessions)
    assert "truth-oca_outage" in first.shown_incident_ids
    by_email = by_id[str(results[1].audit_id)]
    assert by_email.query_kind == "email" and "@" in by_email.query
    assert email.split("@")[0] not in by_email.query  # masked, never the raw address
    assert by_id[str(results[2].audit_id)].outcome == "not_found"
    assert by_id[str(results[3].audit_id)].outcome == "invalid_input"


def test_lookup_without_identity_is_refused_and_audited(world: World) -> None:
    service = SupportService.open(world.settings)
    truth = world.failed_affected()[0]
    case = f"C-{uuid.uuid4().hex[:8]}"
    result = service.lookup(None, LookupRequest(truth.member_id, case_id=case))
    assert result.status == "refused"
    assert result.member is None and result.sessions == ()
    records = service.audit_log.records("audit_id", str(result.audit_id))
    assert len(records) == 1
    assert records[0].outcome == "refused" and records[0].agent_id is None
    assert records[0].case_id == case and records[0].query == truth.member_id


def test_session_view_is_audited(world: World) -> None:
    service = SupportService.open(world.settings)
    agent = AgentIdentity(f"agent-{uuid.uuid4().hex[:8]}", "header")
    truth = world.failed_affected()[0]
    result = service.lookup(agent, LookupRequest(truth.member_id))
    session = next(s for s in result.sessions if s.session_id == truth.session_id)
    service.session_timeline(agent, session)
    actions = sorted(r.action for r in service.audit_log.records("agent_id", agent.name))
    assert actions == ["member_lookup", "session_view"]


def test_no_audit_no_data(settings: Settings, world: World) -> None:
    # A real failure: the engine refuses writes to the audit index (index.blocks.write).
    locked = own_settings(settings, "locked")
    backend = make_backend(locked)
    service = SupportService.open(locked)
    audit_index = indices.audit(locked)
    client = backend.client  # type: ignore[attr-defined]
    client.indices.put_settings(index=audit_index, body={"index.blocks.write": True})
    try:
        result = service.lookup(AgentIdentity("agent-x", "cli"), LookupRequest("m-anything"))
    finally:
        client.indices.put_settings(index=audit_index, body={"index.blocks.write": False})
    assert result.status == "unavailable"
    assert "audit" in result.message and result.member is None


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(world.settings.search_index_prefix),
        "STREAMWATCH_TOPIC_PREFIX": world.settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "support", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_cli_lookup_json_and_refusal(world: World) -> None:
    truth = world.failed_affected()[0]
    agent = f"cli-{uuid.uuid4().hex[:8]}"
    ok = _cli(world, "lookup", truth.member_id, "--since", "7d", "--agent", agent, "--json")
    assert ok.returncode == 0, ok.stderr
    assert '"status": "found"' in ok.stdout and truth.session_id in ok.stdout
    text = _cli(world, "lookup", truth.member_id, "--agent", agent)
    assert text.returncode == 0 and "--- case note ---" in text.stdout
    refused = _cli(world, "lookup", truth.member_id)
    assert refused.returncode == 5 and "--agent" in refused.stderr
    audit = _cli(world, "audit", "--agent", agent)
    assert audit.returncode == 0 and audit.stdout.count('"outcome":"shown"') == 2
