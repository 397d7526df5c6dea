"""The demo as a newcomer sees it, in Chromium, with a fault injected (issue 11, acceptance 1).

`streamwatch demo up` starts every service of the platform on this test's own ports, data
directory and topic prefix (so it never meets a live demo on 8088/8501/8502), with a faster
stub: 4 simulated seconds per wall second, its clock pinned to yesterday 21:00 UTC so that a
12-hour axis (09:00) could not pass for a 24-hour one (21:00). Then `streamwatch demo fault
oca_outage` starts an OCA outage in the running stub, and the test waits for the incident.

Every service's Prometheus endpoint must answer on its port (metrics_port + offset).
Every page of both apps is screenshotted into tests/artifacts/ and checked:
- time-axis labels are the data's UTC hours on a 24-hour clock;
- the incident shows with its OCA; an affected member's lookup carries the incident badge;
- the pipeline page lists per-partition lag and no "unreachable";
- the newest, incomplete minute is shaded and not drawn as a drop;
- no Streamlit error or exception element, no "Deploy" button.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from indexers.warehouse_reader import connect_readonly
from streamwatch.service_metrics import EXPORTER_OFFSETS, scrape_targets
from streamwatch.settings import Settings
from tests.conftest import _delete_topics, delete_indices

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
SRE_PAGES = {
    "overview": "",
    "incidents": "incidents",
    "pipeline": "pipeline",
    "capacity": "capacity",
}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-sync"]
# A time label: "21:05", or "Sun 29 Nov 21:05" when an axis spans most of a day (a member's
# session yesterday under an incident still open now, when this runs late in the day).
HH_MM = re.compile(r"^(?:[A-Z][a-z]{2} \d{2} [A-Z][a-z]{2} )?(\d{2}:\d{2})$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_ports(n: int) -> int:
    """The first of `n` consecutive free ports (the exporters: metrics_port + offset)."""
    for _ in range(50):
        first = _free_port()
        if first + n < 65536 and all(_is_free(first + i) for i in range(n)):
            return first
    raise RuntimeError(f"no {n} consecutive free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _yesterday_21h() -> datetime:
    day = datetime.now(UTC).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, 21, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Demo:
    """The running test demo: its settings, environment and URLs."""

    settings: Settings
    env: dict[str, str]
    dashboards: str
    console: str
    oca: str

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `streamwatch ARGS` against this demo."""
        return subprocess.run(
            [sys.executable, "-m", "streamwatch.cli", *args],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


def _poll(what: str, probe: Any, polls: int, every_s: float) -> Any:
    for _ in range(polls):
        found = probe()
        if found:
            return found
        time.sleep(every_s)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def demo(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo-live")
    prefix = f"test-{uuid.uuid4().hex[:8]}.demo."
    ports = {k: _free_port() for k in ("collector", "console", "dashboards", "player_page")}
    ports["metrics"] = _free_ports(len(EXPORTER_OFFSETS))
    env = {
        **os.environ,
        "STREAMWATCH_DATA_DIR": str(data_dir),
        "STREAMWATCH_TOPIC_PREFIX": prefix,
        "STREAMWATCH_KAFKA_PARTITIONS": "3",
        "STREAMWATCH_COLLECTOR_PORT": str(ports["collector"]),
        "STREAMWATCH_SUPPORT_CONSOLE_PORT": str(ports["console"]),
        "STREAMWATCH_DASHBOARDS_PORT": str(ports["dashboards"]),
        "STREAMWATCH_METRICS_PORT": str(ports["metrics"]),
        "STREAMWATCH_PLAYER_PAGE_PORT": str(ports["player_page"]),
        # A compressed demo: 4 simulated seconds per second, a 4-minute history, yesterday
        # evening (events a day old are fine for this collector: its skew allows 2 days).
        "STREAMWATCH_DEMO_RATE": "80",
        "STREAMWATCH_DEMO_MEMBERS": "1500",
        "STREAMWATCH_DEMO_SPEED": "4",
        "STREAMWATCH_DEMO_WARMUP_S": "240",
        "STREAMWATCH_DEMO_START": _yesterday_21h().isoformat(),
        "STREAMWATCH_DEMO_STUB_SEED": "1",  # the same population every run
        "STREAMWATCH_ALLOWED_CLOCK_SKEW_S": str(2 * 86400),
        "STREAMWATCH_WAREHOUSE_FLUSH_INTERVAL_S": "3",
        "STREAMWATCH_DASHBOARDS_REFRESH_S": "0",
        "STREAMWATCH_DASHBOARDS_DEFAULT_WINDOW_MIN": "60",
    }
    settings = Settings(
        data_dir=data_dir,
        topic_prefix=prefix,
        kafka_bootstrap_servers=stack_settings.bootstrap_servers,
        collector_port=ports["collector"],
        metrics_port=ports["metrics"],
    )
    demo = Demo(
        settings,
        env,
        f"http://127.0.0.1:{ports['dashboards']}",
        f"http://127.0.0.1:{ports['console']}",
        oca="",
    )
    try:
        made = demo.cli("topics", "create")
        assert made.returncode == 0, made.stderr
        up = demo.cli("demo", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        stub_log = data_dir / "logs" / "stub.log"
        # The fault starts at the stub's simulated now, once its warm-up is sent.
        _poll("the stub to go live", lambda: "events," in _read(stub_log), 120, 1.0)
        fault = demo.cli("demo", "fault", "oca_outage", "--minutes", "6")
        assert fault.returncode == 0, fault.stdout + fault.stderr
        oca = re.search(r"network\.oca_id = (\S+)", fault.stdout)
        assert oca, fault.stdout
        yield Demo(settings, env, demo.dashboards, demo.console, oca.group(1))
    finally:
        down = demo.cli("demo", "down")
        print(down.stdout)
        asyncio.run(_delete_topics(stack_settings.bootstrap_servers, prefix))
        delete_indices(stack_settings.search_endpoint, prefix)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _incident(demo: Demo) -> tuple[str, str] | None:
    con = connect_readonly(demo.settings)
    try:
        row = con.execute(
            "SELECT incident_id, value FROM incidents WHERE dimension = 'oca_id' AND value = ?",
            [demo.oca],
        ).fetchone()
    finally:
        con.close()
    return (str(row[0]), str(row[1])) if row else None


def _affected_member(demo: Demo) -> str | None:
    """A member whose play on the failing OCA never started during the incident.

    The detector opens the incident at the first whole minute it finds anomalous, which can
    be a minute after the fault began, and a player that times out on the dead cache before
    failing over leaves with `exit_before_start` rather than a start failure: both count.
    With the demo's small population the OCA gets only a few plays a minute, so waiting for
    one kind of failure after the incident's first minute alone could outlast the fault."""
    con = connect_readonly(demo.settings)
    try:
        row = con.execute(
            """SELECT s.member_id FROM sessions s, incidents i
            WHERE i.value = ? AND s.oca_id = i.value
              AND s.start_outcome IN ('start_failure', 'exit_before_start')
              AND s.first_event_at >= i.started_at - INTERVAL 2 MINUTE
            ORDER BY s.first_event_at LIMIT 1""",
            [demo.oca],
        ).fetchone()
    finally:
        con.close()
    return str(row[0]) if row else None


def _data_hours(demo: Demo) -> set[int]:
    con = connect_readonly(demo.settings)
    try:
        lo, hi = con.execute(
            "SELECT min(window_start), max(window_start) FROM qoe_minute"
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    hours = set()
    t = lo.astimezone(UTC)
    while t <= hi.astimezone(UTC) + timedelta(minutes=10):
        hours.add(t.hour)
        t += timedelta(minutes=10)
    return hours


# The console shows a member's fatal playback errors as red cards ("CDN-3001 ..."): content,
# not a failure of the app.
ERROR_CARD = re.compile(r"^[A-Z]+-\d+ ")


def _no_error_no_deploy(tab: Page) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0
    errors = tab.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert all(ERROR_CARD.match(e) for e in errors), errors
    assert tab.get_by_text("Deploy", exact=True).count() == 0
    assert tab.locator('[data-testid="stAppDeployButton"]').count() == 0


def _axis_times(tab: Page) -> list[str]:
    texts: list[str] = tab.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"] svg text')]
                 .map(t => t.textContent.trim())"""
    )
    return [m.group(1) for t in texts if (m := HH_MM.search(t))]


def _cells(tab: Page) -> list[str]:
    """Text of every table cell (Streamlit draws tables on a canvas; cells are in the DOM
    for accessibility)."""
    cells: list[str] = tab.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stDataFrame"] [role=gridcell]')]
                 .map(c => c.textContent)"""
    )
    return cells


def _settled(tab: Page) -> None:
    tab.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )
    # Every element delivered (no loading skeleton) and every chart drawn.
    tab.wait_for_function(
        """() => !document.querySelector('[data-testid="stSkeleton"]')
                 && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
                    .every(c => c.querySelector('svg'))""",
        timeout=120_000,
    )
    tab.wait_for_timeout(1500)


def _points(tab: Page, unit: str) -> list[float]:
    """Values of the line points whose tooltip names `unit` (first chart with it)."""
    labels: list[str] = tab.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"] [aria-label]')]
                 .map(e => e.getAttribute('aria-label'))"""
    )
    values = []
    for label in labels:
        m = re.search(rf"(?:^|; ){re.escape(unit)}: ([\d,.]+)", label)
        if m and "in progress" not in label:
            values.append(float(m.group(1).replace(",", "")))
    return values


def test_live_demo_with_an_oca_outage_in_chromium(demo: Demo) -> None:
    incident = _poll("the OCA incident in the warehouse", lambda: _incident(demo), 120, 2.0)
    _exporters_answer(demo)
    member = _poll("an affected member", lambda: _affected_member(demo), 60, 2.0)
    hours = _data_hours(demo)
    assert hours <= set(range(13, 24)), hours  # afternoon hours: 12-hour labels would differ
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            # A browser far from UTC: labels must still be UTC.
            context = browser.new_context(
                viewport={"width": 1400, "height": 1800}, timezone_id="America/Los_Angeles"
            )
            tab = context.new_page()
            for name, path in SRE_PAGES.items():
                tab.goto(f"{demo.dashboards}/{path}")
                tab.wait_for_selector('[data-testid="stMetric"]', timeout=120_000)
                _settled(tab)
                tab.screenshot(path=str(ARTIFACTS / f"demo_live_{name}.png"), full_page=True)
                _no_error_no_deploy(tab)
                body = tab.locator("body").inner_text()
                times = _axis_times(tab)
                if name in ("overview", "capacity", "incidents"):
                    assert times, f"{name}: no time axis labels"
                    shown = {int(t[:2]) for t in times}
                    assert shown <= hours, f"{name}: axis hours {shown} not in data hours {hours}"
                if name == "overview":
                    plays = _points(tab, "plays")
                    assert len(plays) >= 5, plays
                    # The newest complete minute is a real minute, not a partial one's drop.
                    assert plays[-1] >= 0.5 * sorted(plays)[len(plays) // 2], plays
                    assert "in progress (shaded)" in body or "Every minute shown" in body
                if name == "incidents":
                    assert f"start_failure_pct on oca_id = {demo.oca}" in body
                    assert incident[0] in _cells(tab) and f"oca_id = {demo.oca}" in _cells(tab)
                if name == "pipeline":
                    assert "unreachable" not in body.lower()
                    assert tab.locator('[data-testid="stVegaLiteChart"] svg').count() >= 2
                    cells = _cells(tab)
                    assert f"{demo.settings.topic_prefix}telemetry.raw.v1" in cells
                    assert "Lag (records)" in body or "Lag per partition" in body
            _console(context.new_page(), demo, member, incident[0])
        finally:
            browser.close()


def _exporters_answer(demo: Demo) -> None:
    """Every service's Prometheus endpoint answers on its documented port (acceptance 5)."""
    silent = []
    for target in scrape_targets(demo.settings):
        try:
            with urllib.request.urlopen(target.url, timeout=10) as answer:
                body = answer.read().decode()
            if answer.status != 200 or "# TYPE" not in body:
                silent.append(f"{target.service} {target.url}: HTTP {answer.status}")
        except OSError as exc:
            silent.append(f"{target.service} {target.url}: {exc}")
    assert not silent, silent


def _console(tab: Page, demo: Demo, member: str, incident_id: str) -> None:
    tab.goto(demo.console)
    tab.get_by_label("Agent name").wait_for(timeout=120_000)
    _settled(tab)
    tab.screenshot(path=str(ARTIFACTS / "demo_live_console_login.png"), full_page=True)
    _no_error_no_deploy(tab)
    tab.get_by_label("Agent name").fill("demo")
    tab.get_by_label("Password", exact=True).fill("streamwatch-demo")
    tab.get_by_role("button", name="Sign in").click()
    tab.get_by_text("Signed in as").wait_for(timeout=60_000)
    badge = f"Known incident {incident_id}"
    for _ in range(30):  # the search sink indexes the incident and sessions shortly after
        tab.get_by_label("Member id, profile id, session id, device id or email").fill(member)
        tab.get_by_role("button", name="Look up").click()
        tab.get_by_text(f"Member {member}").wait_for(timeout=60_000)
        tab.wait_for_selector('[data-testid="stVegaLiteChart"] svg', timeout=60_000)
        _settled(tab)
        if tab.get_by_text(badge).count():
            break
        time.sleep(2)
    tab.screenshot(path=str(ARTIFACTS / "demo_live_console_member.png"), full_page=True)
    _no_error_no_deploy(tab)
    body = tab.locator("body").inner_text()
    assert badge in body and f"oca_id = {demo.oca}" in body
    # 24-hour labels (a 12-hour axis would print "09 PM" / "09:05"): the session's hour, 21.
    times = _axis_times(tab)
    assert times and any(int(t[:2]) >= 13 for t in times), times
