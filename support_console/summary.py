"""The plain-language summary an agent reads out, and the case note they paste.

Example: "3 of 5 sessions since Tue 17 Nov failed with DRM errors on one device (Samsung
QN90 (tv)); 2 of them during incident INC-12 (device_family Samsung Tizen). Nothing wrong
on other devices."
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from support_console.models import MemberRecord, SessionView

CATEGORY_PHRASES: dict[str, str] = {
    "drm": "DRM license",
    "network": "network",
    "cdn": "CDN / edge cache",
    "manifest": "manifest",
    "decoder": "decoder",
    "entitlement": "entitlement",
    "device": "device",
    "unknown": "unexplained",
}

_OUTCOME_VERB: dict[str, str] = {
    "failed": "failed",
    "start_failure": "failed",
    "exit_before_start": "never started",
    "degraded": "had problems",
}


def _day(t: datetime) -> str:
    return t.strftime("%a %d %b")


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _device_phrase(labels: Sequence[str]) -> str:
    unique = list(dict.fromkeys(labels))
    if len(unique) == 1:
        return f"one device ({unique[0]})"
    return f"{len(unique)} devices ({', '.join(unique)})"


def _verb(troubled: Sequence[SessionView]) -> str:
    verbs = {_OUTCOME_VERB.get(s.outcome, "had problems") for s in troubled}
    return verbs.pop() if len(verbs) == 1 else "had problems"


def _problem_phrase(troubled: Sequence[SessionView]) -> str:
    """What went wrong: the main error category, or rebuffering when there were no errors."""
    cats = Counter(e.category for s in troubled for e in s.errors if e.severity == "fatal")
    if not cats:
        cats = Counter(e.category for s in troubled for e in s.errors)
    if cats:
        top = [CATEGORY_PHRASES.get(c, c) for c, _ in cats.most_common(2)]
        return f" with {' and '.join(top)} errors"
    if any(s.rebuffer_count for s in troubled):
        return " with rebuffering"
    return ""


def _incident_phrase(troubled: Sequence[SessionView]) -> str:
    """Name the incident that best explains most of the troubled sessions.

    Each session's marks are ranked best-first (`correlation.mark_rank`); the summary names
    the primary incidents and only counts the others (one fault often raises several
    incidents at once: the OS, the device type, an app version), so the agent reads one
    cause, not a list.
    """
    primary: dict[str, tuple[str, str, set[str]]] = {}
    others: set[str] = set()
    for s in troubled:
        if not s.incidents:
            continue
        first = s.incidents[0]
        _, _, hit = primary.setdefault(first.incident_id, (first.dimension, first.value, set()))
        hit.add(s.session_id)
        others.update(m.incident_id for m in s.incidents[1:])
    others -= set(primary)
    total = len(troubled)
    if not primary:
        return "; not during a known incident" if total == 1 else "; none during a known incident"
    parts = []
    for iid, (dim, value, hit) in sorted(primary.items(), key=lambda kv: -len(kv[1][2])):
        k = len(hit)
        who = "it was" if total == 1 else ("all of them" if k == total else f"{k} of them")
        parts.append(f"{who} during incident {iid} ({dim} {value})")
    text = "; " + "; ".join(parts)
    if others:
        text += f" (and {_plural(len(others), 'related incident')} at the same time)"
    return text


def summarize(sessions: Sequence[SessionView], since: datetime) -> str:
    """One paragraph on the member's playback since `since` (sessions newest first)."""
    if not sessions:
        return f"No playback sessions since {_day(since)}."
    troubled = [s for s in sessions if s.troubled]
    n = len(sessions)
    if not troubled:
        devices = _device_phrase([s.device_label for s in sessions])
        which = "The one session" if n == 1 else f"All {_plural(n, 'session')}"
        return f"{which} since {_day(since)} played without errors on {devices}."
    bad_devices = [s.device_label for s in troubled]
    text = (
        f"{len(troubled)} of {_plural(n, 'session')} since {_day(since)} {_verb(troubled)}"
        f"{_problem_phrase(troubled)} on {_device_phrase(bad_devices)}"
    )
    text += _incident_phrase(troubled) + "."
    other = [s for s in sessions if s.device_label not in set(bad_devices)]
    if other:
        bad_other = [s for s in other if s.troubled]
        text += (
            " Nothing wrong on other devices."
            if not bad_other
            else f" Problems on other devices too ({len(bad_other)})."
        )
    else:
        text += " No sessions on other devices."
    return text


def next_steps(sessions: Sequence[SessionView]) -> list[str]:
    """The catalog's agent actions for the errors seen, most frequent first, deduplicated."""
    counts = Counter((e.code, e.agent_action) for s in sessions for e in s.errors if e.agent_action)
    steps: list[str] = []
    if any(s.incidents for s in sessions):
        steps.append(
            "A known incident explains the failures: tell the member it is on our side "
            "and is being worked on; no troubleshooting needed on their device."
        )
    steps.extend(f"{code}: {action}" for (code, action), _ in counts.most_common(3))
    return steps


def case_note(
    *,
    member: MemberRecord,
    sessions: Sequence[SessionView],
    summary: str,
    period_start: datetime,
    period_end: datetime,
    agent: str,
    case_id: str | None,
    looked_up_at: datetime,
) -> str:
    """Plain text for the ticket: who, when, what was seen, what to do. No raw personal data."""
    lines = [
        f"streamwatch lookup {_when(looked_up_at)} by {agent}"
        + (f" (case {case_id})" if case_id else ""),
        f"Member: {member.member_id}"
        + (f", email {member.email_masked}" if member.email_masked else ""),
        f"Period: {_when(period_start)} to {_when(period_end)}",
        f"Summary: {summary}",
    ]
    troubled = [s for s in sessions if s.troubled]
    if troubled:
        lines.append("Sessions with problems:")
    for s in troubled[:20]:
        codes = ", ".join(dict.fromkeys(e.code for e in s.errors)) or "no error code"
        line = f"- {_when(s.started_at)} {s.device_label} {s.outcome.replace('_', ' ')}: {codes}"
        for m in s.incidents:
            line += f" [known incident {m.incident_id}: {m.dimension} {m.value}]"
        lines.append(line)
    if len(troubled) > 20:
        lines.append(f"- ... and {len(troubled) - 20} more")
    steps = next_steps(sessions)
    if steps:
        lines.append("Next steps:")
        lines.extend(f"- {step}" for step in steps)
    return "\n".join(lines)
