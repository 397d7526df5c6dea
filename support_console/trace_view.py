"""Streamlit parts of the session trace: the per-session trace and the member's logins.

Called from `support_console.app`; everything it reads goes through `support_console.trace`
(audited there).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from support_console import trace, trace_chart
from support_console.identity import AgentIdentity
from support_console.models import LookupResult, SessionView
from support_console.service import SupportService


def render_account(service: SupportService, result: LookupResult) -> None:
    """Login and signup problems of the member in the period, in words (with a table)."""
    if result.member is None:
        return
    try:
        account = trace.account_requests(
            service, result.member.member_id, result.period_start, result.period_end
        )
    except Exception as exc:  # never a traceback on an agent's screen
        st.warning(f"Logins and signups could not be read ({type(exc).__name__}).")
        return
    box = st.error if account.problems else st.caption
    box(account.summary)


def render_session_trace(
    service: SupportService, agent: AgentIdentity | None, session: SessionView
) -> None:
    """The toggle that opens one play's trace, then the trace: summary, chart, failing spans."""
    key = f"trace-{session.session_id}"
    if not st.toggle(
        "Show the server trace of this play (player events and server calls)", key=key
    ):
        return
    cache: dict[str, Any] = st.session_state.setdefault("traces", {})
    if session.session_id not in cache:
        try:
            # Audited once per trace view, not on every rerun of the page.
            cache[session.session_id] = trace.session_trace(
                service, agent, session.session_id, session.member_id,
                case_id=st.session_state.get("case_id") or "",
            )  # fmt: skip
        except Exception as exc:
            st.error(f"Could not load this play's trace ({type(exc).__name__}).")
            return
    found = cache[session.session_id]
    if found is None:
        st.warning("Sign in first: a trace is shown only to an identified agent.")
        return
    assert isinstance(found, trace.SessionTrace)
    if found.failing:
        st.error(found.summary, icon=":material/error:")
    elif found.clean:
        st.success(found.summary, icon=":material/check_circle:")
    else:
        st.info(found.summary)
    drawn, later = trace_chart.drawn_steps(found.steps)
    if drawn:
        st.altair_chart(trace_chart.trace_chart(drawn), width="stretch")
    if later:
        st.caption(
            "Later, not drawn: "
            + ", ".join(
                f"{s.label} at {s.at:%H:%M:%S}" + (f" ({s.detail})" if s.detail else "")
                for s in later[:5]
            )
            + (f" and {len(later) - 5} more" if len(later) > 5 else "")
        )
    if found.failing:
        st.markdown("**Failing server calls**")
        st.dataframe(
            [
                {
                    "time (UTC)": f"{s.at:%H:%M:%S.%f}"[:-3],
                    "service": s.service,
                    "call": s.label,
                    "answer": s.http_status,
                    "region": s.region,
                    "detail": s.detail,
                }
                for s in found.failing
            ],
            hide_index=True,
            width="stretch",
        )
    st.caption(f"trace id {found.trace_id} · {found.span_count} server spans")
