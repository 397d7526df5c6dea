"""The SRE app in a real browser (headless Chromium via Playwright): every page renders its
charts and shows no Streamlit error. Screenshots land in tests/artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from testkit import sample_warehouse as sw

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
PAGES = {"overview": "", "incidents": "incidents", "pipeline": "pipeline", "capacity": "capacity"}
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("wh-browser")
    sw.write_warehouse(root, sw.run(sw.Scenario()))
    sw.write_deadletters(root, 12)
    port = _free_port()
    env = {
        **os.environ,
        "STREAMWATCH_WAREHOUSE_DIR": str(root),
        "STREAMWATCH_DASHBOARDS_DEFAULT_WINDOW_MIN": "100000",
        "STREAMWATCH_DASHBOARDS_REFRESH_S": "0",
    }
    log = (tmp_path_factory.mktemp("logs") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamwatch.cli", "dashboards", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_in_chromium(app_url: str, page: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1800})
            tab.goto(f"{app_url}/{PAGES[page]}", wait_until="networkidle")
            tab.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
            if page != "pipeline":
                tab.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=60_000)
            else:
                tab.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=60_000)
            # Let the running script finish before judging the page.
            tab.wait_for_function(
                "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
            )
            tab.screenshot(path=str(ARTIFACTS / f"dashboards_{page}.png"), full_page=True)
            assert tab.locator('[data-testid="stException"]').count() == 0
            errors = tab.locator('[data-testid="stAlertContentError"]')
            assert errors.count() == 0, errors.all_inner_texts()
            assert (
                tab.locator(
                    '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
                ).count()
                > 0
            )
        finally:
            browser.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_stopping_the_dashboards_process_stops_streamlit(tmp_path: Path) -> None:
    """`demo down` signals the pid it started: Streamlit must not outlive it on its port."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamwatch.cli", "dashboards", "--port", str(port)],
        stdout=(tmp_path / "streamlit.log").open("w"), stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    try:
        for _ in range(200):  # Streamlit listens within seconds; give up after many polls
            if _listening(port):
                break
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
            time.sleep(0.3)
        assert _listening(port), "the app never listened"
        proc.terminate()
        proc.wait(timeout=20)
        assert not _listening(port)
    finally:
        if proc.poll() is None:
            proc.kill()
