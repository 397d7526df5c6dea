"""The console in a real browser (Debian chromium via Python Playwright).

Starts `streamlit run support_console/app.py` on a free port against the oca_outage world,
signs in, looks up an affected member and checks that the timeline, the errors and the
incident badge are on the page. The screenshot lands in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from streamwatch.settings import Settings
from support_console.identity import save_agent
from support_console.service import SupportService
from tests.test_support_data import World, scenario_world

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("streamlit did not start listening")


@pytest.fixture(scope="module")
def world(settings: Settings) -> World:
    return scenario_world("oca_outage", settings)


@pytest.fixture(scope="module")
def console_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    agents = tmp_path_factory.mktemp("agents") / "agents.json"
    save_agent(agents, "alice", PASSWORD)
    SupportService.open(world.settings)
    port = _free_port()
    env = {
        **os.environ,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(world.settings.search_index_prefix),
        "STREAMWATCH_TOPIC_PREFIX": world.settings.topic_prefix,
        "STREAMWATCH_SUPPORT_AGENTS_FILE": str(agents),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "support_console" / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(console_url: str) -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 2200})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(console_url)
        yield pg
        browser.close()


def test_lookup_of_an_oca_outage_member_in_a_real_browser(page: Page, world: World) -> None:
    truth = world.failed_affected()[0]
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_label("Agent name").fill("alice")
    sidebar.get_by_role("textbox", name="Password").fill(PASSWORD)
    sidebar.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for()

    page.get_by_label("Member id, profile id, session id, device id or email").fill(truth.member_id)
    page.get_by_label("Case id").fill("C-browser")
    page.get_by_role("button", name="Look up").click()
    page.get_by_text("Known incident truth-oca_outage").first.wait_for()
    # The Vega chart renders asynchronously: wait for its SVG / canvas.
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for()
    page.wait_for_timeout(500)  # let the chart finish painting before the screenshot

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "support_console_oca_outage.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    body = page.locator("body").inner_text()
    assert "Timeline" in body
    assert truth.fatal_code is not None and truth.fatal_code in body
    assert "Next step" in body
    assert "Known incident truth-oca_outage" in body
    assert "Traceback" not in body


def test_odd_input_in_a_real_browser(page: Page) -> None:
    box = page.get_by_label("Member id, profile id, session id, device id or email")
    box.fill('"*" OR 1=1')
    page.get_by_role("button", name="Look up").click()
    page.get_by_text("is not an id or an email").wait_for()
    assert "Traceback" not in page.locator("body").inner_text()
