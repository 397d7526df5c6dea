"""`streamwatch support lookup ID --trace`: the lookup, then each chosen play's trace.

Which plays: the session itself when the agent typed a session id; otherwise the member's
troubled sessions (newest first, at most `MAX_TRACES`), or the newest session when none had
trouble, so a member who was not hit sees a clean trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from support_console.identity import AgentIdentity
from support_console.models import LookupResult, SessionView
from support_console.service import SupportService
from support_console.trace import SessionTrace, TraceStep, account_requests, session_trace

MAX_TRACES = 5


def sessions_to_trace(result: LookupResult, query: str) -> list[SessionView]:
    """The sessions whose traces a `--trace` lookup shows."""
    if result.query_kind == "session_id":
        return [s for s in result.sessions if s.session_id == query][:1]
    troubled = [s for s in result.sessions if s.troubled]
    return (troubled or list(result.sessions[:1]))[:MAX_TRACES]


def _line(step: TraceStep, t0: TraceStep) -> str:
    offset = (step.at - t0.at).total_seconds()
    mark = ">>" if step.highlighted else "  "
    length = f"{step.duration_ms:7.0f} ms" if step.duration_ms is not None else " " * 10
    status = {"ok": "", "warning": "WARN", "error": "FAILED"}[step.status]
    return (
        f"{mark} {step.at:%H:%M:%S.%f}"[:-3] + f" +{offset:7.3f}s  {step.lane:9s} "
        f"{step.label:34.34s} {length} {status:6s} {step.detail}"
    ).rstrip()


def render_trace(trace: SessionTrace) -> str:
    """A trace as text: the summary, then one line per step on the shared time axis."""
    lines = [f"--- trace of session {trace.session_id} (trace id {trace.trace_id}) ---"]
    lines.append(trace.summary)
    if trace.steps:
        first = trace.steps[0]
        lines += [_line(step, first) for step in trace.steps]
    return "\n".join(lines)


def print_with_traces(
    service: SupportService,
    agent: AgentIdentity,
    result: LookupResult,
    query: str,
    *,
    as_json: bool,
    print_result: Callable[[LookupResult], None],
    case_id: str = "",
) -> None:
    """Print the lookup (with `print_result`, as `support lookup` does) and the traces."""
    chosen = sessions_to_trace(result, query)
    traces = [
        t
        for t in (
            session_trace(service, agent, s.session_id, s.member_id, surface="cli", case_id=case_id)
            for s in chosen
        )
        if t is not None
    ]
    member_id = result.member.member_id if result.member else ""
    account = account_requests(service, member_id, result.period_start, result.period_end)
    if as_json:
        out = {
            "lookup": result.model_dump(mode="json"),
            "account_requests": account.model_dump(mode="json"),
            "traces": [
                {**t.model_dump(mode="json"), "clean": t.clean, "failing_count": len(t.failing)}
                for t in traces
            ],
        }
        print(json.dumps(out, indent=2))
        return
    print_result(result)
    print()
    print(account.summary)
    for trace in traces:
        print()
        print(render_trace(trace))
