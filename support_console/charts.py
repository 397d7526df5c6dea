"""Altair charts of the console: the sessions timeline and one session's drill-down.

Pure builders (data in, chart out) so they can be tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import altair as alt
import pandas as pd

from support_console.models import HeartbeatPoint, IncidentView, SessionView

# One colour per outcome, fixed, so "red" always means the same thing to an agent.
OUTCOME_COLOURS: dict[str, str] = {
    "ok": "#2e7d32",
    "degraded": "#f9a825",
    "exit_before_start": "#9e9e9e",
    "start_failure": "#c62828",
    "failed": "#8e0000",
}


def sessions_frame(sessions: Sequence[SessionView]) -> pd.DataFrame:
    """One row per session with what the timeline shows and its tooltip says."""
    rows = []
    for s in sessions:
        rows.append(
            {
                "start": s.started_at,
                "end": s.ended_at or s.started_at,
                "device": s.device_label,
                "outcome": s.outcome,
                "session": s.session_id,
                "errors": ", ".join(dict.fromkeys(e.code for e in s.errors)) or "none",
                "incident": ", ".join(m.incident_id for m in s.incidents) or "none",
                "startup_ms": s.startup_ms,
                "rebuffer_pct": round(s.rebuffer_pct, 2) if s.rebuffer_pct is not None else None,
            }
        )
    return pd.DataFrame(rows)


def incidents_frame(
    incidents: Sequence[IncidentView], devices: Sequence[str], now: datetime
) -> pd.DataFrame:
    """Incident spans (open ones run until now), one per device row, for the background."""
    rows = [
        {
            "start": i.started_at,
            "end": i.ended_at or now,
            "device": device,
            "incident": f"{i.incident_id}: {i.dimension} {i.value}",
        }
        for i in incidents
        for device in devices
    ]
    return pd.DataFrame(rows, columns=["start", "end", "device", "incident"])


def timeline(
    sessions: Sequence[SessionView],
    incidents: Sequence[IncidentView] = (),
    now: datetime | None = None,
) -> alt.LayerChart:
    """Sessions on a time axis, one row per device, coloured by outcome; incidents shaded.

    A bar spans each session; a dot marks its start, so a start failure that lasted two
    seconds is as visible as a two-hour film. Dots are drawn last: a failure is never hidden
    behind a longer session on the same device.
    """
    frame = sessions_frame(sessions)
    colour = alt.Color(
        "outcome:N",
        scale=alt.Scale(domain=list(OUTCOME_COLOURS), range=list(OUTCOME_COLOURS.values())),
        legend=alt.Legend(title="outcome", orient="bottom"),
    )
    tooltip: list[alt.Tooltip] = [
        alt.Tooltip("session:N"),
        alt.Tooltip("outcome:N"),
        alt.Tooltip("device:N"),
        alt.Tooltip("start:T", format="%Y-%m-%d %H:%M:%S"),
        alt.Tooltip("errors:N"),
        alt.Tooltip("incident:N"),
        alt.Tooltip("startup_ms:Q"),
        alt.Tooltip("rebuffer_pct:Q"),
    ]
    base = alt.Chart(frame).encode(
        x=alt.X("start:T", title="time (UTC)"),
        y=alt.Y("device:N", title=None),
        color=colour,
        tooltip=tooltip,
    )
    bars = base.mark_bar(height=10, opacity=0.45).encode(x2="end:T")
    dots = base.mark_point(filled=True, size=140, opacity=1.0)
    devices = sorted(frame["device"].unique())
    height = max(90, 50 * len(devices))
    layers: list[alt.Chart] = [bars, dots]
    if incidents:
        spans = (
            alt.Chart(incidents_frame(incidents, devices, now or datetime.now(UTC)))
            .mark_bar(color="#fb8c00", opacity=0.25, height=34)
            .encode(
                x="start:T",
                x2="end:T",
                y=alt.Y("device:N", title=None),
                tooltip=[alt.Tooltip("incident:N")],
            )
        )
        layers.insert(0, spans)
    chart = alt.layer(*layers).properties(height=height, width="container")
    return cast(alt.LayerChart, chart)


def drilldown_frame(points: Sequence[HeartbeatPoint]) -> pd.DataFrame:
    """Samples of bitrate and buffer over the session (long form for a layered chart)."""
    rows = []
    for p in points:
        if p.bitrate_kbps is not None:
            rows.append({"at": p.at, "series": "bitrate (kbps)", "value": p.bitrate_kbps})
        if p.buffer_ms is not None:
            rows.append({"at": p.at, "series": "buffer (s)", "value": p.buffer_ms / 1000})
    return pd.DataFrame(rows, columns=["at", "series", "value"])


def markers_frame(points: Sequence[HeartbeatPoint]) -> pd.DataFrame:
    """Rebuffers and errors as labelled instants."""
    rows = [
        {"at": p.at, "what": (p.error_code or "error") if p.event_type == "error" else "rebuffer"}
        for p in points
        if p.event_type in ("error", "rebuffer_start")
    ]
    return pd.DataFrame(rows, columns=["at", "what"])


def drilldown(points: Sequence[HeartbeatPoint]) -> alt.Chart | alt.LayerChart:
    """Bitrate and buffer lines over the session with rebuffers and errors as rules."""
    lines = (
        alt.Chart(drilldown_frame(points))
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("at:T", title="time (UTC)"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("series:N", legend=alt.Legend(orient="bottom", title=None)),
            tooltip=[alt.Tooltip("at:T", format="%H:%M:%S"), "series:N", "value:Q"],
        )
    )
    marks = markers_frame(points)
    if marks.empty:
        return cast(alt.Chart, lines.properties(height=220, width="container"))
    rules = (
        alt.Chart(marks)
        .mark_rule(color="#c62828", strokeDash=[4, 3])
        .encode(x="at:T", tooltip=[alt.Tooltip("at:T", format="%H:%M:%S"), "what:N"])
    )
    return cast(alt.LayerChart, alt.layer(lines, rules).properties(height=220, width="container"))
