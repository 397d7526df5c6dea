"""The session trace (issue 15, acceptance 2) against real OpenSearch, through the service,
the CLI (`support lookup --trace`) and the console in a real browser (Debian chromium).

A member hit by the licence outage sees the licence service's failing spans and a summary
that says so; a member who was not hit sees a clean trace; a failed login shows too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from streamwatch.settings import Settings
from support_console import queries, trace
from support_console.identity import AgentIdentity, save_agent
from support_console.service import LookupRequest, SupportService
from tests.test_support_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    _free_port,
    _wait_for_port,
)
from tests.test_support_data import scenario_world
from tests.trace_world import SCENARIO, TraceWorld, trace_world

REPO = Path(__file__).resolve().parents[1]
AGENT = AgentIdentity("agent-trace", "cli")


@pytest.fixture(scope="module")
def tw(settings: Settings) -> TraceWorld:
    return trace_world(scenario_world(SCENARIO, settings))


def _service(tw: TraceWorld) -> SupportService:
    return SupportService.open(tw.settings)


def test_hit_member_sees_the_failing_licence_spans_and_why(tw: TraceWorld) -> None:
    service = _service(tw)
    found = trace.session_trace(service, AGENT, tw.hit_session, tw.hit_member, surface="cli")
    assert found is not None and found.span_count >= 6
    licence = [s for s in found.failing if s.service == "license"]
    assert [(s.attempt, s.http_status) for s in licence] == [(1, 503), (2, 503), (3, 503), (4, 503)]
    assert all(s.highlighted and s.region == tw.hit_region for s in licence)
    assert found.summary.startswith(f"License service answered 503 in {tw.hit_region}, 3 retries")
    assert "the player gave up with DRM-2001 (License server unavailable)" in found.summary
    # Player events and spans share one time axis: the player's error comes after the
    # last failing licence try.
    lanes = [s.lane for s in found.steps]
    assert lanes[0] == "player" and "license" in lanes
    error = next(s for s in found.steps if s.label == "error DRM-2001")
    assert error.at >= licence[-1].at
    # Only the console's allowed clauses leave for the engine.
    for body in (
        trace.trace_spans_body(found.trace_id),
        trace.player_events_body(tw.hit_session),
    ):
        assert queries.clause_types(body) <= queries.ALLOWED_CLAUSES


def test_member_not_hit_sees_a_clean_trace(tw: TraceWorld) -> None:
    service = _service(tw)
    result = service.lookup(AGENT, LookupRequest(tw.clean_member), surface="cli")
    assert result.status == "found" and result.sessions
    for session in result.sessions:
        found = trace.session_trace(service, AGENT, session.session_id, tw.clean_member)
        assert found is not None
        assert found.clean, found.summary
        assert found.summary.startswith("Clean trace: all ")


def test_login_problems_are_visible_and_trace_needs_an_agent(tw: TraceWorld) -> None:
    service = _service(tw)
    result = service.lookup(AGENT, LookupRequest(tw.hit_member), surface="cli")
    account = trace.account_requests(service, tw.hit_member, result.period_start, result.period_end)
    assert [s.http_status for s in account.steps] == [200, 503]  # newest first
    assert account.summary.startswith("Login and signup: 1 of 2 requests failed")
    assert f"auth service answered 503 in {tw.hit_region}" in account.summary
    assert trace.session_trace(service, None, tw.hit_session, tw.hit_member) is None


def _sw(tw: TraceWorld, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": tw.settings.topic_prefix,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(tw.settings.search_index_prefix),
    }
    return subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_cli_lookup_with_trace(tw: TraceWorld) -> None:
    agent = f"cli-{uuid.uuid4().hex[:6]}"
    hit = _sw(tw, "support", "lookup", tw.hit_member, "--agent", agent, "--trace")
    assert hit.returncode == 0, hit.stderr
    out = hit.stdout
    assert f"--- trace of session {tw.hit_session}" in out
    assert f"License service answered 503 in {tw.hit_region}, 3 retries" in out
    assert "the player gave up with DRM-2001" in out
    failing = [line for line in out.splitlines() if line.startswith(">>")]
    assert sum("license" in line and "FAILED" in line for line in failing) == 4
    assert "Login and signup: 1 of 2 requests failed" in out

    clean = _sw(tw, "support", "lookup", tw.clean_member, "--agent", agent, "--trace", "--json")
    assert clean.returncode == 0, clean.stderr
    answer = json.loads(clean.stdout)
    assert answer["lookup"]["member"]["member_id"] == tw.clean_member
    assert answer["traces"] and all(t["clean"] for t in answer["traces"])
    assert all(t["failing_count"] == 0 and t["span_count"] > 0 for t in answer["traces"])


@pytest.fixture(scope="module")
def console_url(tw: TraceWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    agents = tmp_path_factory.mktemp("agents") / "agents.json"
    save_agent(agents, "alice", PASSWORD)
    port = _free_port()
    env = {
        **os.environ,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(tw.settings.search_index_prefix),
        "STREAMWATCH_TOPIC_PREFIX": tw.settings.topic_prefix,
        "STREAMWATCH_SUPPORT_AGENTS_FILE": str(agents),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "support_console" / "app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# Streamlit marks what a rerun has not redrawn yet as stale (`data-stale="true"`).
NOTHING_STALE = "() => !document.querySelector('[data-stale=\"true\"]')"


def test_trace_in_the_console_in_a_real_browser(console_url: str, tw: TraceWorld) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 2400}).new_page()
            page.set_default_timeout(60_000)
            page.goto(console_url)
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_label("Agent name").fill("alice")
            sidebar.get_by_role("textbox", name="Password").fill(PASSWORD)
            sidebar.get_by_role("button", name="Sign in").click()
            page.get_by_text("Signed in as").wait_for()
            box = page.get_by_label("Member id, profile id, session id, device id or email")
            box.fill(tw.hit_member)
            page.get_by_role("button", name="Look up").click()
            page.get_by_text("Login and signup: 1 of 2 requests failed").wait_for()
            page.get_by_text("Show the server trace of this play").first.click()
            page.get_by_text(f"License service answered 503 in {tw.hit_region}").wait_for()
            page.wait_for_timeout(1500)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "support_trace_hit.png"), full_page=True)
            page.get_by_text("Failing server calls").wait_for()
            page.locator(".vega-embed svg, .vega-embed canvas").nth(1).wait_for()
            page.wait_for_timeout(800)
            page.screenshot(path=str(ARTIFACTS / "support_trace_hit.png"), full_page=True)
            body = page.locator("body").inner_text()
            assert "3 retries, the player gave up with DRM-2001" in body
            assert "Traceback" not in body

            box.fill(tw.clean_member)
            page.get_by_role("button", name="Look up").click()
            page.get_by_text(f"Member {tw.clean_member}").wait_for()
            page.get_by_text("No errors for this member").wait_for()
            page.get_by_text("Case note").wait_for()  # the result is drawn to its end
            # ... and no element of the previous member's answer is left stale: a click on
            # one that the rerun is replacing lands on an inert, then detached, node.
            page.wait_for_function(NOTHING_STALE)
            page.locator('[data-testid="stExpander"] summary').first.click()
            toggle = page.get_by_text("Show the server trace of this play")
            toggle.locator("visible=true").first.click()
            page.get_by_text("Clean trace: all").first.wait_for()
            page.wait_for_timeout(800)
            page.screenshot(path=str(ARTIFACTS / "support_trace_clean.png"), full_page=True)
            assert "Traceback" not in page.locator("body").inner_text()
        finally:
            browser.close()
