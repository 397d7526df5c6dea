"""The Streamlit console with `streamlit.testing.v1.AppTest`, on real OpenSearch.

Each case checks what the agent reads (a clear message, no exception) and, for odd input,
that nothing reached the engine: the page's service runs on the real backend with every
search body recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from indexers.search_factory import make_backend
from streamwatch.settings import Settings
from support_console.identity import save_agent
from support_console.service import SupportService
from tests.test_support_data import World, own_settings, scenario_world
from tests.test_support_service import RecordingBackend

APP = str(Path(__file__).resolve().parents[1] / "support_console" / "app.py")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def world(settings: Settings) -> World:
    return scenario_world("oca_outage", settings)


@pytest.fixture
def agents_file(tmp_path: Path) -> Path:
    path = tmp_path / "agents.json"
    save_agent(path, "alice", PASSWORD)
    return path


def _app(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, agents_file: Path, *, sign_in: bool = True
) -> tuple[AppTest, RecordingBackend]:
    """The console on `settings`' indices with a recording (real) backend, signed in."""
    monkeypatch.setenv("STREAMWATCH_SEARCH_INDEX_PREFIX", str(settings.search_index_prefix))
    monkeypatch.setenv("STREAMWATCH_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("STREAMWATCH_SUPPORT_AGENTS_FILE", str(agents_file))
    SupportService.open(settings)  # indices ready, as the page's own service would do
    backend = RecordingBackend(make_backend(settings))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["service"] = SupportService(backend, settings)
    at.run()
    assert not at.exception
    if sign_in:
        at.sidebar.text_input(key="login_name").input("alice")
        at.sidebar.text_input(key="login_password").input(PASSWORD)
        at.sidebar.button[0].click().run()
        assert [s.value for s in at.sidebar.success] == ["Signed in as **alice** (login)"]
    return at, backend


def _search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="query").input(text)
    next(b for b in at.button if b.label == "Look up").click().run()
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_found_member_shows_summary_timeline_errors_and_incident(
    world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path
) -> None:
    at, _ = _app(monkeypatch, world.settings, agents_file)
    truth = world.failed_affected()[0]
    _search(at, truth.member_id)
    # The session is put down to an incident on the fault's own cache: the pipeline's
    # (replayed) detection or the ground-truth one, whichever ranks first as its cause.
    cause = f"({world.fault_dimension} {world.truth.value})"
    assert any("during incident" in i.value and cause in i.value for i in at.info), [
        i.value for i in at.info
    ]
    assert "Known incident truth-oca_outage" in _markdown(at)
    assert at.get("vega_lite_chart"), "timeline chart"
    assert truth.fatal_code and any(truth.fatal_code in e.value for e in at.error)
    assert any("Next step" in e.value for e in at.error)
    assert at.code and truth.member_id in at.code[0].value  # the case note


def test_drilldown_chart(world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path) -> None:
    at, _ = _app(monkeypatch, world.settings, agents_file)
    truth = next((t for t in world.failed_affected() if t.first_frame), world.failed_affected()[0])
    _search(at, truth.member_id)
    charts_before = len(at.get("vega_lite_chart"))
    toggle = next(t for t in at.toggle if t.key == f"drill-{truth.session_id}")
    toggle.set_value(True).run()
    assert not at.exception
    # Bitrate and buffer: two charts, each on its own labelled axis (kbps, seconds).
    added = at.get("vega_lite_chart")[charts_before:]
    assert len(added) == 2
    specs = [json.loads(c.proto.spec) for c in added]
    y_titles = [json.dumps(s) for s in specs]
    assert '"title": "kbps"' in y_titles[0] and '"title": "seconds"' in y_titles[1]


def test_unknown_id(world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path) -> None:
    at, _ = _app(monkeypatch, world.settings, agents_file)
    _search(at, "m-ffffffffffffffff")
    assert any("No member found" in w.value for w in at.warning)


def test_member_with_no_errors(
    world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path
) -> None:
    by_member: dict[str, list[bool]] = {}
    for s in world.replay.sessions.values():
        bad = s.playback_failed or bool(s.errors) or s.rebuffer_count > 0
        by_member.setdefault(s.member_id, []).append(bad or s.start_outcome != "started")
    clean = sorted(m for m, flags in by_member.items() if not any(flags))
    assert clean
    at, _ = _app(monkeypatch, world.settings, agents_file)
    _search(at, clean[0])
    assert any("No errors for this member" in s.value for s in at.success)
    assert any("played without errors" in i.value for i in at.info)


def test_empty_index(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, agents_file: Path
) -> None:
    empty = own_settings(settings, "app-empty")
    at, _ = _app(monkeypatch, empty, agents_file)
    _search(at, "m-1234")
    assert any("no playback data yet" in i.value for i in at.info)


def test_not_signed_in_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path
) -> None:
    at, backend = _app(monkeypatch, world.settings, agents_file, sign_in=False)
    _search(at, world.failed_affected()[0].member_id)
    assert any("Sign in first" in e.value for e in at.error)
    assert backend.bodies == []


def test_wrong_password(world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path) -> None:
    at, _ = _app(monkeypatch, world.settings, agents_file, sign_in=False)
    at.sidebar.text_input(key="login_name").input("alice")
    at.sidebar.text_input(key="login_password").input("not the password")
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert any("wrong password" in e.value for e in at.sidebar.error)


@pytest.mark.parametrize(
    "text",
    ['"*" OR 1=1', "member_id:*", "x" * 10_240, "*", "m-1; DROP TABLE members", "a\u0000b"],
    ids=["or-1-1", "field-wildcard", "10kB", "star", "sql", "nul"],
)
def test_odd_input_gets_a_message_and_never_reaches_the_engine(
    world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path, text: str
) -> None:
    at, backend = _app(monkeypatch, world.settings, agents_file)
    _search(at, text)
    assert any(
        "not an id or an email" in w.value
        or "too long" in w.value
        or "control characters" in w.value
        for w in at.warning
    ), [w.value for w in at.warning]
    assert backend.bodies == []  # nothing was searched at all


def test_non_ascii_input_is_searched_exactly(
    world: World, monkeypatch: pytest.MonkeyPatch, agents_file: Path
) -> None:
    at, backend = _app(monkeypatch, world.settings, agents_file)
    _search(at, "Zoë-ünïcode-東京")
    assert any("No member found" in w.value for w in at.warning)
    assert backend.bodies
    for body in backend.bodies:
        text = str(body)
        assert "query_string" not in text and "wildcard" not in text
        assert "Zoë-ünïcode-東京" in text  # only ever as an exact term value
