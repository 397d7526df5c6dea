"""Real players (hls.js 1.7.4, dash.js 5.2.1 in Debian Chromium) feed streamwatch end to end.

Each player plays the local ffmpeg ladder from the segment server twice per reporting path:
once throttled (a rebuffer and a downshift), once with media segments answering 404 (hls.js)
or 500 (dash.js) until a fatal error. One run reports with the streamwatch SDK, one with the
player's own CMCD v2 event mode only. Reports go through the real collector into real Kafka;
the raw topic is sessionized and indexed by the pipeline's own pieces
(`testkit.search_loader.index_all`: sessionizer + search-sink documents) into OpenSearch;
`streamwatch support lookup` then finds the member with no member directory loaded.

The page measures each session itself (video element + player API, `players/page/player.js`)
and the session summaries are compared with that: startup time, rebuffer duration and
average bitrate within 5 %, rebuffer count, downshifts and the fatal error code exact.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract.events import EVENT_ADAPTER, Event
from contract.records import SessionSummary
from indexers.search_factory import make_backend
from ingest.error_catalog import load_catalog
from ingest.player_errors import catalog_code
from players import ladder as ladder_mod
from players.background import ServerThread
from players.browser import PlaySpec, play_all
from players.capture import THROTTLED, put_fault
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.search_loader import index_all
from tests.infra_helpers import free_port
from tests.streams_helpers import read_all
from tests.test_support_data import own_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
PLAYER_LIB = {"hls": "hls.js", "dash": "dash.js"}
FAIL = {"hls": 404, "dash": 500}
# The measurements a session summary is made of, by event type.
MEASURES: dict[str, tuple[str, ...]] = {
    "first_frame": ("startup_ms", "bitrate_kbps"),
    "rebuffer_end": ("duration_ms",),
    "playback_end": ("watched_ms",),
    "heartbeat": ("bitrate_kbps",),
}


@dataclass(frozen=True)
class Played:
    """One browser session: how it was set up and what the page measured."""

    spec: PlaySpec
    case: str  # throttled | fatal
    measure: dict[str, Any]


@dataclass
class World:
    """Everything the browser sessions produced, once per test module."""

    played: list[Played]
    summaries: dict[str, SessionSummary]
    raw: list[Event]
    sent: dict[str, list[str]]  # what the pages POSTed, by collector path
    settings: Settings
    env: dict[str, str]

    def one(self, player: str, report: str, case: str) -> Played:
        """The session of that player, reporting path and case."""
        return next(
            p
            for p in self.played
            if p.spec.player == player and p.spec.report == report and p.case == case
        )


def _start_collector(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamwatch.cli", "collector", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("collector did not answer /healthz within 60 s")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def world(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Play every session once, through the real collector and Kafka into the search index."""
    own = own_settings(settings, "players")
    env = {
        **os.environ,
        "STREAMWATCH_TOPIC_PREFIX": own.topic_prefix,
        "STREAMWATCH_KAFKA_BOOTSTRAP_SERVERS": own.bootstrap_servers,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(own.search_index_prefix),
        "STREAMWATCH_DATA_DIR": str(tmp_path_factory.mktemp("players-data")),
        # The page puts the member id in this CMCD custom key (hls.js reporterCallback).
        "STREAMWATCH_CMCD_MEMBER_KEY": "sw-member",
    }
    media = Path(os.environ.get("STREAMWATCH_PLAYER_MEDIA", REPO / ".streamwatch" / "media"))
    ladder = ladder_mod.build(media)
    port = free_port()
    collector = _start_collector(env, port)
    try:
        with ServerThread(ladder, collector_url=f"http://127.0.0.1:{port}") as server:
            run = uuid.uuid4().hex[:6]
            played: list[tuple[PlaySpec, str]] = []
            for player in ("hls", "dash"):
                for report in ("sdk", "cmcd"):
                    for case in ("throttled", "fatal"):
                        token = f"{player}-{report}-{case}-{run}"
                        fault = THROTTLED if case == "throttled" else {
                            "kind": "fail", "status": FAIL[player], "from_index": 3,
                        }  # fmt: skip
                        put_fault(server.base_url, token, fault)
                        spec = PlaySpec(
                            player=player, report=report, token=token,
                            session_id=f"e2e-{token}", member_id=f"member-e2e-{run}",
                            fast_fail=case == "fatal",
                        )  # fmt: skip
                        played.append((spec, case))
            # A bare <video> with the SDK, playing a progressive MP4 to its end.
            token = f"video-sdk-plain-{run}"
            plain = PlaySpec(player="video", report="sdk", token=token,
                             session_id=f"e2e-{token}", member_id=f"member-e2e-{run}")  # fmt: skip
            played.append((plain, "plain"))
            measures = asyncio.run(play_all(server.base_url, [s for s, _ in played]))
            sent = {
                path: _get_json(f"{server.base_url}/capture/collector/{path}")
                for path in ("v1_events", "v1_cmcd")
            }
        ids = {s.session_id for s, _ in played}
        records = asyncio.run(read_all(own, topics.RAW))
        raw = [EVENT_ADAPTER.validate_json(r.value) for r in records]
        raw = [e for e in raw if e.session_id in ids]
        result = index_all(make_backend(own), own, sorted(raw, key=lambda e: e.event_time))
        yield World(
            played=[Played(s, c, m) for (s, c), m in zip(played, measures, strict=True)],
            summaries={k: v for k, v in result.sessions.items() if k in ids},
            raw=raw,
            sent=sent,
            settings=own,
            env=env,
        )
    finally:
        collector.terminate()
        try:
            collector.wait(10)
        except subprocess.TimeoutExpired:
            collector.kill()
            collector.wait(10)


def _sent(world: World, session_id: str, event_type: str) -> list[dict[str, Any]]:
    """Payloads of the events of one type the collector put into Kafka for a session."""
    return [
        e.payload.model_dump()
        for e in world.raw
        if e.session_id == session_id and e.event_type == event_type
    ]


def _close(actual: float | None, expected: float, rel: float = 0.05) -> bool:
    return actual is not None and abs(actual - expected) <= rel * expected + 1.0


def test_faults_did_what_they_should(world: World) -> None:
    """Every throttled session rebuffered and shifted down; every failing one died."""
    for p in world.played:
        m = p.measure
        assert m["startupMs"] is not None and m["startupMs"] > 0, (p.spec, m)
        if p.case == "plain":
            assert m["ended"] and m["fatalErrorCode"] is None, (p.spec, m)
        elif p.case == "throttled":
            assert m["rebufferCount"] >= 1 and m["downshifts"] >= 1, (p.spec, m)
            assert m["fatalErrorCode"] is None and m["ended"], (p.spec, m)
        else:
            assert m["fatalErrorCode"] is not None, (p.spec, m)


@pytest.mark.parametrize("player", ["hls", "dash"])
@pytest.mark.parametrize("case", ["throttled", "fatal"])
def test_sdk_session_summary_matches_the_page(world: World, player: str, case: str) -> None:
    """The SDK path gets every fact right."""
    p = world.one(player, "sdk", case)
    m = p.measure
    s = world.summaries.get(p.spec.session_id)
    assert s is not None, f"no session summary for {p.spec.session_id}"
    assert s.member_id == p.spec.member_id
    first = _sent(world, p.spec.session_id, "first_frame")
    assert _close(s.startup_ms, m["startupMs"]), (s.startup_ms, m["startupMs"], first)
    assert s.rebuffer_count == m["rebufferCount"]
    assert _close(s.rebuffer_ms, m["rebufferMs"]), (s.rebuffer_ms, m["rebufferMs"])
    assert _close(s.avg_bitrate_kbps, m["avgBitrateKbps"]), (s.avg_bitrate_kbps, m)
    assert s.downshifts == m["downshifts"]
    # The SDK measures what streamwatch needs: no payload fact of its events is unknown.
    for e in world.raw:
        if e.session_id == p.spec.session_id:
            assert not [f for f in e.unknown_facts if f.startswith("payload.")], e
    if case == "fatal":
        assert s.fatal_error_code == catalog_code(PLAYER_LIB[player], m["fatalErrorCode"])
        assert s.playback_failed
        errors = [e for e in world.raw if e.session_id == p.spec.session_id]
        own = [e.payload for e in errors if e.event_type == "error"]
        assert [getattr(x, "severity", None) for x in own] == ["fatal"]
        if player == "hls":  # dash.js's error event does not carry the HTTP status
            assert own[0].http_status == FAIL[player]  # type: ignore[union-attr]
    else:
        assert s.fatal_error_code is None and not s.playback_failed


def _key(line: str, key: str) -> str | None:
    return next((kv.split("=", 1)[1] for kv in line.split(",") if kv.startswith(f"{key}=")), None)


def test_sdk_on_a_bare_video(world: World) -> None:
    """A bare <video> knows no bitrate: the summary says unknown; the rest is right."""
    p = world.one("video", "sdk", "plain")
    m = p.measure
    s = world.summaries.get(p.spec.session_id)
    assert s is not None, f"no session summary for {p.spec.session_id}"
    first = _sent(world, p.spec.session_id, "first_frame")
    assert _close(s.startup_ms, m["startupMs"]), (s.startup_ms, m["startupMs"], first)
    assert s.rebuffer_count == m["rebufferCount"]
    assert _close(s.rebuffer_ms, m["rebufferMs"]), (s.rebuffer_ms, m["rebufferMs"])
    assert m["avgBitrateKbps"] is None and s.avg_bitrate_kbps is None
    assert s.exit_reason == "completed" and not s.playback_failed
    assert s.downshifts == 0 and s.fatal_error_code is None


def _sn(line: str) -> int:
    return int(_key(line, "sn") or -1)


def _media_stalls(media_events: list[list[Any]]) -> int:
    """Returns to `playing` after a `waiting`, once playback had started (the page's trace)."""
    stalls, started, waiting = 0, False, False
    for _t, kind, _position in media_events:
        if kind == "playing":
            stalls += started and waiting
            started, waiting = True, False
        elif kind == "waiting" and started:
            waiting = True
        elif kind == "ended":
            waiting = False
    return stalls


def _cmcd_lines(world: World, session_id: str) -> list[str]:
    """The session's reports in the player's own order (`sn`; POSTs may arrive out of order)."""
    lines = [
        line
        for body in world.sent["v1_cmcd"]
        for line in body.splitlines()
        if f'sid="{session_id}"' in line
    ]
    return sorted(lines, key=_sn)


@pytest.mark.parametrize("player", ["hls", "dash"])
@pytest.mark.parametrize("case", ["throttled", "fatal"])
def test_cmcd_only_session(world: World, player: str, case: str) -> None:
    """CMCD v2 event mode: what the player sends is there; what it does not send is unknown."""
    p = world.one(player, "cmcd", case)
    m = p.measure
    lines = _cmcd_lines(world, p.spec.session_id)
    assert lines, "the player sent no CMCD reports"
    # A measurement the player did not send is null in the events and named in
    # `unknown_facts`, never made up.
    events = [e for e in world.raw if e.session_id == p.spec.session_id]
    assert events
    for e in events:
        payload = e.payload.model_dump()
        for name in MEASURES.get(e.event_type, ()):
            if payload[name] is None:
                assert f"payload.{name}" in e.unknown_facts, (e.event_type, name, e.unknown_facts)
    s = world.summaries.get(p.spec.session_id)
    assert s is not None, f"no session summary for {p.spec.session_id}"
    states = [kv.split("=")[1] for ln in lines for kv in ln.split(",") if kv.startswith("sta=")]
    assert "p" in states  # it did report playing
    # A stall the player reported: back to playing from rebuffering (`r`) or, dash.js when
    # it did not count itself as playing yet, waiting (`w`), after the first `p`.
    after_start = states[states.index("p") :]
    rebuffers_sent = sum(
        1 for a, b in itertools.pairwise(after_start) if a in ("r", "w") and b == "p"
    )
    shown = f"states {','.join(states)}; media events {m['mediaEvents']}"
    assert s.rebuffer_count == rebuffers_sent, shown
    # They are the media element's stalls too (a player may also stall without saying so).
    # Counted from the element's own events, seeks included: dash.js jumps buffer gaps with
    # seeks of its own that it does not report (no `sta=k`), and the page, which cannot tell
    # them from a viewer's seek, does not count a wait during a seek as a stall.
    stalls = _media_stalls(m["mediaEvents"])
    assert m["rebufferCount"] <= stalls, shown
    assert rebuffers_sent <= stalls + (1 if case == "fatal" else 0), shown
    # CMCD startup is what the player's states say: first `sta=s` to first `sta=p`. The player
    # enters `s` after loading its manifest, so this is shorter than the page's measure from
    # the play request; it is compared with what was sent, and never above the page's.
    ts = {st: next(str(_key(ln, "ts")) for ln in lines if _key(ln, "sta") == st) for st in "sp"}
    assert s.startup_ms is not None
    assert _close(s.startup_ms, int(ts["p"]) - int(ts["s"])), (s.startup_ms, ts)
    assert s.startup_ms <= m["startupMs"] * 1.05
    sent_errors = [ln for ln in lines if ",e=e," in f",{ln},"]
    if player == "hls" and case == "fatal":
        # hls.js 1.7.4 sends no error report when segment failures turn fatal: not invented.
        assert not sent_errors and "f" not in states
        assert s.fatal_error_code is None
    # Downshifts: only what the reported bitrates (`br`, in the player's order) show, never
    # more than the player really made.
    brs = [int(str(_key(ln, "br")).strip("()").split(";")[0]) for ln in lines if _key(ln, "br")]
    sent_down = sum(1 for a, b in itertools.pairwise(brs) if b < a)
    assert s.downshifts <= sent_down, (s.downshifts, brs)
    if player == "dash":
        # dash.js 5.2.1 sends no bitrate-change events (only `br` on other reports).
        assert not [ln for ln in lines if ",e=bc," in f",{ln},"]
        assert s.downshifts <= m["downshifts"], (s.downshifts, m["downshifts"])
    if player == "dash" and case == "fatal":
        assert sent_errors and all("ec=27" in ln for ln in sent_errors)
        # The player's own code, or its catalog code when the collector maps it.
        assert {e.code for e in s.errors} <= {"27", catalog_code("dash.js", 27)}
        assert s.errors


def test_support_lookup_without_member_directory(world: World) -> None:
    """`streamwatch support lookup` finds the member's sessions and the error's meaning."""
    member = world.played[0].spec.member_id
    done = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "support", "lookup", member,
         "--agent", "e2e-players", "--json"],
        env=world.env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    found = json.dumps(result)
    # Every SDK session, and the hls.js CMCD ones (the member rides in a CMCD custom key).
    for p in world.played:
        if p.spec.report == "sdk" or p.spec.player == "hls":
            assert p.spec.session_id in found, p.spec.session_id
    sdk_fatal = [p for p in world.played if p.spec.report == "sdk" and p.case == "fatal"]
    catalog = load_catalog()
    for p in sdk_fatal:
        assert p.spec.session_id in found
        code = catalog_code(PLAYER_LIB[p.spec.player], p.measure["fatalErrorCode"])
        assert code is not None and code in found
        assert catalog[code].meaning in found


@pytest.mark.parametrize(
    ("player", "manifest"),
    [("hls", "hls/master.m3u8"), ("dash", "dash/manifest.mpd"), ("video", "plain.mp4")],
)
def test_the_page_without_src_plays_the_ladder_in_the_players_format(
    player: str, manifest: str
) -> None:
    """`player.html?player=dash` alone loaded the HLS master, which dash.js cannot play."""
    from playwright.async_api import async_playwright

    from players.browser import CHROMIUM, CHROMIUM_ARGS

    media = Path(os.environ.get("STREAMWATCH_PLAYER_MEDIA", REPO / ".streamwatch" / "media"))

    async def started(base: str) -> dict[str, Any]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/player.html?player={player}&report=none")
                # Until playback starts or fails (a stuck page fails the wait loudly).
                settled = "() => window.__measure && (window.__measure.startupMs !== null"
                settled += " || !!window.__measure.fatalErrorCode)"
                await page.wait_for_function(settled, timeout=60_000)
                measure: dict[str, Any] = await page.evaluate("() => window.__measure")
                assert measure["fatalErrorCode"] is None, measure["fatalErrorDetail"]
                return measure
            finally:
                await browser.close()

    with ServerThread(ladder_mod.build(media)) as server:
        measure = asyncio.run(started(server.base_url))
    assert measure["config"]["src"] == f"/m/demo/{manifest}"
    assert measure["startupMs"] > 0


def test_the_pages_text_wraps_in_a_narrow_window() -> None:
    """The support hint (one long line) ran past a 900 px window: a horizontal scroll bar."""
    from playwright.async_api import async_playwright

    from players.browser import CHROMIUM, CHROMIUM_ARGS

    media = Path(os.environ.get("STREAMWATCH_PLAYER_MEDIA", REPO / ".streamwatch" / "media"))

    async def widths(base: str) -> tuple[int, str]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 700})
                await page.goto(f"{base}/player.html?player=video&report=none&member=m-0123456789")
                hint = "() => document.getElementById('state').textContent.includes('lookup')"
                await page.wait_for_function(hint, timeout=30_000)
                width: int = await page.evaluate("() => document.documentElement.scrollWidth")
                text: str = await page.evaluate(
                    "() => document.getElementById('state').textContent"
                )
                return width, text
            finally:
                await browser.close()

    with ServerThread(ladder_mod.build(media)) as server:
        width, text = asyncio.run(widths(server.base_url))
    assert "streamwatch support lookup m-0123456789" in text
    assert width <= 900
