"""Pure parts of the support console: masking, identity, input checks, correlation, summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamwatch.settings import Settings
from support_console import correlation, identity, masking, queries, summary
from support_console.charts import timeline
from support_console.models import ErrorView, IncidentView, MemberRecord, SessionView

T0 = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)  # a Tuesday
SALT = SecretStr("unit-test-salt")


def session(
    sid: str,
    minutes: float,
    outcome: str = "ok",
    *,
    model: str = "Samsung QN90",
    oca: str = "oca-1",
    errors: tuple[ErrorView, ...] = (),
) -> SessionView:
    start = T0 + timedelta(minutes=minutes)
    return SessionView(
        session_id=sid,
        member_id="m-1",
        device_type="tv",
        device_model=model,
        os="tizen",
        oca_id=oca,
        isp="isp-a",
        region="us-east",
        app_version="8.1.0",
        started_at=start,
        ended_at=start + timedelta(minutes=5),
        outcome=outcome,  # type: ignore[arg-type]
        errors=errors,
    )


def drm_error(at: datetime) -> ErrorView:
    return ErrorView(
        code="DRM-3001",
        category="drm",
        severity="fatal",
        at=at,
        agent_action="Restart the app.",
    )


def incident(dim: str, value: str, start_min: int, end_min: int | None) -> IncidentView:
    return IncidentView(
        incident_id=f"inc-{dim}-{value}",
        status="open" if end_min is None else "resolved",
        dimension=dim,
        value=value,
        started_at=T0 + timedelta(minutes=start_min),
        ended_at=None if end_min is None else T0 + timedelta(minutes=end_min),
    )


# --- masking -----------------------------------------------------------------------------


def test_email_is_masked_and_hashed_without_the_raw_address() -> None:
    assert masking.mask_email("Jane.Doe@Example.com") == "j***@e***.com"
    h1 = masking.email_hash(" Jane.Doe@Example.com ", SALT)
    assert h1 == masking.email_hash("jane.doe@example.com", SALT)  # normalised
    assert h1 != masking.email_hash("jane.doe@example.com", SecretStr("other"))  # keyed
    assert "jane" not in h1 and len(h1) == 64


# --- identity ----------------------------------------------------------------------------


def test_password_hash_round_trip_and_login(tmp_path: Path) -> None:
    stored = identity.hash_password("s3cret-pass", iterations=1000)
    assert identity.verify_password("s3cret-pass", stored)
    assert not identity.verify_password("wrong", stored)
    assert not identity.verify_password("s3cret-pass", "garbage")
    settings = Settings(support_agents_file=tmp_path / "agents.json")
    identity.save_agent(tmp_path / "agents.json", "alice", "s3cret-pass")
    assert identity.login("alice", "s3cret-pass", settings) == identity.AgentIdentity(
        "alice", "login"
    )
    assert identity.login("alice", "nope", settings) is None
    assert identity.login("mallory", "s3cret-pass", settings) is None


def test_trusted_header_only_when_configured() -> None:
    headers = {"x-forwarded-user": "bob@corp"}
    assert identity.agent_from_headers(headers, Settings()) is None
    configured = Settings(support_trusted_header="X-Forwarded-User")
    assert identity.agent_from_headers(headers, configured) == identity.AgentIdentity(
        "bob@corp", "header"
    )
    assert identity.agent_from_headers({"X-Forwarded-User": "a b;<"}, configured) is None


# --- input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['"*" OR 1=1', "member_id:*", "x" * 10_000, "a\u0000b", "m-1 OR m-2", "(m-1)", ""],
)
def test_odd_input_is_refused_before_any_query(text: str) -> None:
    with pytest.raises(queries.InvalidInput):
        queries.parse_input(text, SALT)


def test_ids_and_emails_are_accepted() -> None:
    assert queries.parse_input(" m-1a2b ", SALT) == queries.ParsedInput("id", "m-1a2b", "m-1a2b")
    assert queries.parse_input("Zoë-ünïcode", SALT).kind == "id"  # any script, searched exactly
    email = queries.parse_input("Jane.Doe@Example.com", SALT)
    assert email.kind == "email" and email.display == "j***@e***.com"
    assert "jane" not in email.value.lower()


def test_query_bodies_use_only_exact_clauses() -> None:
    start, end = T0, T0 + timedelta(days=7)
    bodies = [
        queries.member_by_id("x"),
        queries.member_by_email_hash("h"),
        queries.member_of_activity("x"),
        queries.sessions_of_member("m", start, end, 10),
        queries.incidents_for_values(["oca-1"]),
        queries.session_events("s"),
        queries.audit_of("agent_id", "a"),
    ]
    for body in bodies:
        assert queries.clause_types(body) <= queries.ALLOWED_CLAUSES, body


# --- correlation ---------------------------------------------------------------------------


def test_only_troubled_sessions_overlapping_on_a_shared_value_are_marked() -> None:
    now = T0 + timedelta(days=1)
    failing = session("s-fail", 10, "start_failure", errors=(drm_error(T0),))
    other_oca = session("s-other", 10, "failed", oca="oca-2")
    fine = session("s-ok", 10, "ok")
    late = session("s-late", 200, "failed")
    incs = [incident("oca_id", "oca-1", 5, 60)]
    marked = {
        s.session_id: s for s in correlation.correlate([failing, other_oca, fine, late], incs, now)
    }
    assert [m.incident_id for m in marked["s-fail"].incidents] == ["inc-oca_id-oca-1"]
    assert not marked["s-other"].incidents
    assert not marked["s-ok"].incidents
    assert not marked["s-late"].incidents


def test_open_incident_on_contract_dimensions_only() -> None:
    now = T0 + timedelta(hours=2)
    s = session("s", 90, "failed")
    assert correlation.marks_for(s, [incident("os", "tizen", 0, None)], now)
    # Incidents name the dimensions of contract.dimensions; no field-path aliases are guessed.
    assert not correlation.marks_for(s, [incident("device.os", "tizen", 0, None)], now)
    assert correlation.marks_for(s, [incident("all", "all", 0, None)], now)
    assert not correlation.marks_for(s, [incident("os", "webos", 0, None)], now)


# --- summary -----------------------------------------------------------------------------


def test_summary_names_counts_device_and_incident() -> None:
    now = T0 + timedelta(days=1)
    bad = [session(f"s{i}", 10 + i, "start_failure", errors=(drm_error(T0),)) for i in range(3)]
    good = [session("g1", 100, "ok", model="Pixel 8"), session("g2", 120, "ok", model="Pixel 8")]
    sessions = correlation.correlate([*bad, *good], [incident("os", "tizen", 0, 12)], now)
    text = summary.summarize(sessions, T0 - timedelta(days=1))
    assert text.startswith("3 of 5 sessions since Mon 16 Nov failed with DRM license errors")
    assert "one device (Samsung QN90 (tv))" in text
    assert "during incident inc-os-tizen (os tizen)" in text
    assert "Nothing wrong on other devices." in text


def test_summary_for_member_without_errors_and_without_sessions() -> None:
    since = T0 - timedelta(days=7)
    assert summary.summarize([], since) == "No playback sessions since Tue 10 Nov."
    text = summary.summarize([session("a", 1), session("b", 2)], since)
    assert text.startswith("All 2 sessions since Tue 10 Nov played without errors")
    one = summary.summarize([session("a", 1)], since)
    assert one.startswith("The one session since Tue 10 Nov played without errors")


def test_case_note_has_no_raw_email_and_lists_next_steps() -> None:
    s = session("s1", 1, "failed", errors=(drm_error(T0),))
    note = summary.case_note(
        member=MemberRecord(member_id="m-1", email_masked="j***@e***.com"),
        sessions=[s],
        summary="x",
        period_start=T0,
        period_end=T0,
        agent="alice",
        case_id="C-1",
        looked_up_at=T0,
    )
    assert "j***@e***.com" in note and "alice" in note and "C-1" in note
    assert "DRM-3001: Restart the app." in note


def test_incident_explains_only_the_trouble_it_measures() -> None:
    now = T0 + timedelta(days=1)
    drm = IncidentView(
        incident_id="inc-drm",
        status="resolved",
        metric="playback_failure_pct",
        dimension="os",
        value="tizen",
        started_at=T0,
        ended_at=T0 + timedelta(minutes=30),
    )
    warning = ErrorView(
        code="NW-1001", category="network", severity="warning", at=T0 + timedelta(minutes=12)
    )
    home_network = session("s-net", 10, "degraded", errors=(warning,))
    license_fail = session(
        "s-drm", 10, "start_failure", errors=(drm_error(T0 + timedelta(minutes=10)),)
    )
    failed_after = session("s-late", 10, "failed", errors=(drm_error(T0 + timedelta(minutes=50)),))
    assert not correlation.explained_by(home_network, drm, now)
    assert correlation.explained_by(license_fail, drm, now)
    assert not correlation.explained_by(failed_after, drm, now)
    oca = drm.model_copy(update={"dimension": "oca_id", "value": "oca-1"})
    assert correlation.explained_by(home_network, oca, now)  # timeouts while the OCA was down
    rebuffer = oca.model_copy(update={"metric": "rebuffer_pct"})
    assert correlation.explained_by(home_network, rebuffer, now)
    assert not correlation.explained_by(session("s-ok", 10, "ok"), rebuffer, now)


def test_summary_names_the_best_explanation_and_counts_the_rest() -> None:
    now = T0 + timedelta(days=1)
    fail = session("s-1", 10, "start_failure", errors=(drm_error(T0 + timedelta(minutes=10)),))
    by_type = incident("device_type", "tv", 0, 30).model_copy(update={"metric": "rebuffer_pct"})
    by_os = incident("os", "tizen", 0, 30).model_copy(update={"metric": "playback_failure_pct"})
    everything = incident("all", "all", 0, 30).model_copy(update={"metric": "playback_failure_pct"})
    (marked,) = correlation.correlate([fail], [everything, by_type, by_os], now)
    assert marked.incidents[0].incident_id == "inc-os-tizen"
    text = summary.summarize([marked], T0)
    assert "it was during incident inc-os-tizen (os tizen)" in text
    assert "(and 1 related incident at the same time)" in text


def _axis_format(chart: object) -> set[str]:
    spec = chart.to_dict()  # type: ignore[attr-defined]
    return {
        layer["encoding"]["x"]["axis"]["format"]
        for layer in spec["layer"]
        if "axis" in layer["encoding"]["x"]
    }


def test_the_timeline_axis_has_seconds_only_when_everything_drawn_spans_minutes() -> None:
    t0 = datetime(2026, 11, 29, 21, 1, tzinfo=UTC)
    short = SessionView(
        session_id="s-1", member_id="m-1", device_type="tv", started_at=t0,
        ended_at=t0 + timedelta(seconds=12), outcome="start_failure",
    )  # fmt: skip
    assert _axis_format(timeline([short])) == {"%H:%M:%S"}
    # An incident shaded for hours widens the axis: minutes, not seconds, then.
    incident = IncidentView(
        incident_id="i-1", status="open", dimension="oca_id", value="oca-1",
        started_at=t0 + timedelta(minutes=2),
    )  # fmt: skip
    wide = timeline([short], [incident], now=t0 + timedelta(hours=4))
    assert _axis_format(wide) == {"%H:%M"}
