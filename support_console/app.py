"""The support console (Streamlit): `streamlit run support_console/app.py`.

A member calls: "it won't play". The agent signs in (or is identified by the trusted proxy
header), types whatever id the caller gives, and sees: a plain-language summary, the
sessions on a timeline coloured by outcome, known-incident badges, each error with its
meaning and next step, a drill-down into one session, and a case note to paste.

Nothing here talks to the search engine directly: every read goes through
`SupportService`, which validates input, audits, and builds only term/range queries.
Every failure becomes a message on the page, never a traceback.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st

from streamwatch.pipeline_lag import behind_message, read_lag_sync
from streamwatch.settings import Settings
from support_console import charts, trace_view
from support_console.identity import AgentIdentity, agent_from_headers, login
from support_console.models import LookupResult, SessionView
from support_console.service import LookupRequest, SupportService

PERIODS: dict[str, timedelta] = {
    "last 24 hours": timedelta(hours=24),
    "last 3 days": timedelta(days=3),
    "last 7 days": timedelta(days=7),
    "last 14 days": timedelta(days=14),
    "last 30 days": timedelta(days=30),
}
_OUTCOME_LABEL = {
    "ok": "played fine",
    "degraded": "played with problems",
    "exit_before_start": "left before start",
    "start_failure": "failed to start",
    "failed": "failed",
}


def _service(settings: Settings) -> SupportService | None:
    """One service per browser session (cheap; keeps the search client's connections)."""
    if "service" not in st.session_state:
        try:
            st.session_state["service"] = SupportService.open(settings)
        except Exception as exc:  # engine down at start: say so, keep the page alive
            st.error(
                "The search engine is not reachable, so no lookup is possible right now "
                f"({type(exc).__name__}). Try again in a minute; if it persists, tell the "
                "on-call SRE."
            )
            return None
    service: SupportService = st.session_state["service"]
    return service


def _agent(settings: Settings) -> AgentIdentity | None:
    """The trusted header's agent, else the one who signed in here."""
    try:
        headers: dict[str, str] = dict(st.context.headers)
    except Exception:  # no request context (e.g. a bare script run)
        headers = {}
    from_proxy = agent_from_headers(headers, settings)
    if from_proxy is not None:
        return from_proxy
    agent = st.session_state.get("agent")
    return agent if isinstance(agent, AgentIdentity) else None


def _sidebar_identity(settings: Settings, agent: AgentIdentity | None) -> None:
    with st.sidebar:
        st.header("Agent")
        if agent is not None:
            st.success(f"Signed in as **{agent.name}** ({agent.source})")
            if agent.source == "login" and st.button("Sign out"):
                st.session_state.pop("agent", None)
                st.rerun()
            return
        st.warning("Not signed in: lookups are refused (and the attempt is audited).")
        with st.form("login"):
            name = st.text_input("Agent name", key="login_name")
            password = st.text_input("Password", type="password", key="login_password")
            if st.form_submit_button("Sign in"):
                who = login(name or "", password or "", settings)
                if who is None:
                    st.error("Unknown agent or wrong password.")
                else:
                    st.session_state["agent"] = who
                    st.rerun()


def _search_form() -> LookupRequest | None:
    with st.form("search"):
        cols = st.columns([3, 1])
        text = cols[0].text_input(
            "Member id, profile id, session id, device id or email",
            key="query",
            max_chars=None,  # long pastes get a clear message instead of being cut silently
            placeholder="m-1a2b3c… or jane.doe@example.com",
        )
        period = cols[1].selectbox("Period", list(PERIODS), index=2, key="period")
        cols2 = st.columns([1, 3])
        case_id = cols2[0].text_input("Case id", key="case_id")
        reason = cols2[1].text_input("Reason (for the audit log)", key="reason")
        if not st.form_submit_button("Look up"):
            return None
    return LookupRequest(text, period=PERIODS[period], reason=reason or "", case_id=case_id or "")


def _render_incident_badges(result: LookupResult) -> None:
    for inc in result.incidents:
        hit = sum(
            1 for s in result.sessions if any(m.incident_id == inc.incident_id for m in s.incidents)
        )
        until = f"{inc.ended_at:%H:%M}" if inc.ended_at else "ongoing"
        st.badge(
            f"Known incident {inc.incident_id}: {inc.dimension} = {inc.value}, "
            f"{inc.started_at:%a %d %b %H:%M} to {until} UTC ({hit} of this member's sessions)",
            icon=":material/warning:",
            color="orange",
        )


def _render_session(service: SupportService, agent: AgentIdentity | None, s: SessionView) -> None:
    st.markdown(
        f"**{s.started_at:%a %d %b %H:%M} UTC** · {s.device_label} · app {s.app_version or '-'} · "
        f"{s.isp or '-'} / {s.region or '-'} · OCA {s.oca_id or '-'} · "
        f"**{_OUTCOME_LABEL.get(s.outcome, s.outcome)}**"
    )
    for m in s.incidents:
        st.badge(f"known incident {m.incident_id} ({m.dimension} {m.value})", color="orange")
    cols = st.columns(4)
    cols[0].metric("startup", f"{s.startup_ms} ms" if s.startup_ms is not None else "—")
    cols[1].metric(
        f"rebuffering ({s.rebuffer_count} stalls)",
        f"{s.rebuffer_pct:.1f} %" if s.rebuffer_pct is not None else "—",
    )
    cols[2].metric("avg bitrate", f"{s.avg_bitrate_kbps:,.0f} kbps" if s.avg_bitrate_kbps else "—")
    cols[3].metric("watched", f"{s.watch_ms / 60000:.1f} min")
    for e in s.errors:
        box = st.error if e.severity == "fatal" else st.warning
        box(
            f"**{e.code}** {e.title} ({e.severity}, {e.at:%H:%M:%S} UTC)  \n"
            f"{e.meaning}  \n**Next step:** {e.agent_action}"
        )
    st.caption(f"session {s.session_id}")
    trace_view.render_session_trace(service, agent, s)
    key = f"drill-{s.session_id}"
    if st.toggle("Show bitrate and buffer over the session", key=key):
        cache: dict[str, Any] = st.session_state.setdefault("drilldowns", {})
        if s.session_id not in cache:
            try:
                # Audited once per session view, not on every rerun of the page.
                cache[s.session_id] = service.session_timeline(
                    agent, s, case_id=st.session_state.get("case_id") or ""
                )
            except Exception as exc:
                st.error(f"Could not load this session's events ({type(exc).__name__}).")
                return
        points = cache[s.session_id]
        if not points:
            st.info("No heartbeat events are indexed for this session.")
        else:
            panels = charts.drilldown(points)
            for title, panel in zip(("Bitrate (kbps)", "Buffer (s)"), panels, strict=True):
                st.markdown(f"**{title}**")
                st.altair_chart(panel, width="stretch")


def _render_result(
    service: SupportService, agent: AgentIdentity | None, result: LookupResult
) -> None:
    if result.status in ("invalid", "not_found"):
        st.warning(result.message)
        return
    if result.status == "empty_index":
        st.info(result.message)
        return
    if result.status in ("refused", "unavailable"):
        st.error(result.message)
        return
    member = result.member
    assert member is not None
    st.subheader(f"Member {member.member_id}")
    facts = [f"email {member.email_masked}" if member.email_masked else None]
    facts += [f"plan {member.plan}" if member.plan else None, member.country]
    n_devices = len(member.device_ids)
    facts += [f"{n_devices} device{'s' if n_devices != 1 else ''}" if n_devices else None]
    st.caption(" · ".join(f for f in facts if f))
    st.info(result.summary)
    _render_incident_badges(result)
    trace_view.render_account(service, result)
    if not result.sessions:
        st.success("No playback sessions in this period, so nothing failed.")
        return
    troubled = [s for s in result.sessions if s.troubled]
    if not troubled:
        st.success("No errors for this member in this period: every session played fine.")
    cols = st.columns(3)
    cols[0].metric("sessions", len(result.sessions))
    cols[1].metric("with problems", len(troubled))
    cols[2].metric("during known incidents", sum(1 for s in troubled if s.incidents))
    st.markdown("#### Timeline")
    st.altair_chart(
        charts.timeline(result.sessions, result.incidents, result.period_end), width="stretch"
    )
    st.markdown("#### Sessions, newest first")
    for s in result.sessions:
        label = (
            f"{s.started_at:%a %d %b %H:%M} · {s.device_label} · "
            f"{_OUTCOME_LABEL.get(s.outcome, s.outcome)}"
            + (f" · {', '.join(dict.fromkeys(e.code for e in s.errors))}" if s.errors else "")
            + (" · known incident" if s.incidents else "")
        )
        with st.expander(label, expanded=s.troubled and s is troubled[0]):
            _render_session(service, agent, s)
    st.markdown("#### Case note")
    st.code(result.case_note, language=None, wrap_lines=True)


@st.cache_data(ttl=10, show_spinner=False)
def _behind(bootstrap: str, prefix: str, _settings: Settings) -> str | None:
    """The "data is N minutes behind" message, read from Kafka at most every 10 s."""
    try:
        lag = read_lag_sync(_settings, timeout_s=3.0)
    except Exception as exc:  # an agent needs to know, not a traceback
        return f"Cannot tell whether the data is up to date ({type(exc).__name__})."
    message = behind_message(lag, _settings.dashboards_behind_banner_s)
    if message is None:
        return None
    return message + " Recent sessions and errors may be missing from this lookup."


def _behind_banner(settings: Settings) -> None:
    message = _behind(settings.bootstrap_servers, settings.topic_prefix, settings)
    if message:
        st.warning(message, icon=":material/schedule:")


def main() -> None:
    """The page."""
    st.set_page_config(page_title="streamwatch · support", page_icon="🎬", layout="wide")
    st.title("Member playback lookup")
    settings = Settings()
    _behind_banner(settings)  # before the lookup: an agent must know the data is behind
    _page(settings)


def _page(settings: Settings) -> None:
    agent = _agent(settings)
    _sidebar_identity(settings, agent)
    service = _service(settings)
    if service is None:
        return
    request = _search_form()
    if request is not None:
        try:
            st.session_state["result"] = service.lookup(agent, request, surface="console")
        except Exception as exc:  # a bug must not show a traceback to an agent
            st.error(f"Something went wrong with this lookup ({type(exc).__name__}).")
            return
        st.session_state.pop("drilldowns", None)
    result = st.session_state.get("result")
    if isinstance(result, LookupResult):
        try:
            _render_result(service, agent, result)
        except Exception as exc:  # never a traceback on an agent's screen
            st.error(f"Part of this result could not be shown ({type(exc).__name__}).")


main()
