"""Altair charts of the console: the sessions timeline and one session's drill-down.

Pure builders (data in, chart out) so they can be tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, cast

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


# Vega-Lite's default time axis is a 12-hour clock in the browser's zone; a UTC time unit
# with an explicit 24-hour format is what an agent reading "UTC" expects.
UTC_SECOND: Final = "utcyearmonthdatehoursminutesseconds"
ROW_STEP: Final = 44  # pixels per device row of the timeline


SECONDS_FORMAT: Final = "%H:%M:%S"


def _utc_x(
    field: str, times: pd.Series, title: str | None = "time (UTC)", fmt: str | None = None
) -> alt.X:
    """A UTC time axis: `%H:%M`, with the day when the times span more than most of a day,
    and with seconds when they span less than a few minutes (every label would otherwise
    read the same minute)."""
    span = pd.Timestamp(times.max()) - pd.Timestamp(times.min()) if len(times) else None
    if fmt is None:
        if span is not None and span > pd.Timedelta(hours=20):
            fmt = "%a %d %b %H:%M"
        elif span is not None and span < pd.Timedelta(minutes=5):
            fmt = SECONDS_FORMAT
        else:
            fmt = "%H:%M"
    return alt.X(
        f"{field}:T",
        timeUnit=UTC_SECOND,
        title=title,
        axis=alt.Axis(format=fmt, labelOverlap=True, labelAngle=0),
    )


def _device_y() -> alt.Y:
    return alt.Y("device:N", title=None, axis=alt.Axis(labelLimit=320))


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
        alt.Tooltip("start:T", timeUnit=UTC_SECOND, format="%Y-%m-%d %H:%M:%S UTC"),
        alt.Tooltip("errors:N"),
        alt.Tooltip("incident:N"),
        alt.Tooltip("startup_ms:Q"),
        alt.Tooltip("rebuffer_pct:Q"),
    ]
    devices = sorted(frame["device"].unique())
    shaded = incidents_frame(incidents, devices, now or datetime.now(UTC)) if incidents else None
    # The axis spans every bar drawn: sessions and the incidents' shading alike.
    extent = pd.concat(
        [frame["start"], frame["end"]]
        + ([shaded["start"], shaded["end"]] if shaded is not None else [])
    )
    axis_x = _utc_x("start", extent)
    base = alt.Chart(frame).encode(
        x=axis_x,
        y=_device_y(),
        color=colour,
        tooltip=tooltip,
    )
    bars = base.mark_bar(height=12, opacity=0.45).encode(x2=alt.X2("end:T", timeUnit=UTC_SECOND))
    dots = base.mark_point(filled=True, size=140, opacity=1.0)
    layers: list[alt.Chart] = [bars, dots]
    if shaded is not None:
        spans = (
            alt.Chart(shaded)
            .mark_bar(color="#fb8c00", opacity=0.25, height=34)
            .encode(
                x=axis_x,
                x2=alt.X2("end:T", timeUnit=UTC_SECOND),
                y=_device_y(),
                tooltip=[alt.Tooltip("incident:N")],
            )
        )
        layers.insert(0, spans)
    # One row per device: a fixed step per row, not one height shared by every device.
    chart = alt.layer(*layers).properties(height=alt.Step(ROW_STEP), width="container")
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


def _panel(frame: pd.DataFrame, series: str, unit: str, colour: str, height: int) -> alt.Chart:
    data = frame[frame["series"] == series]
    chart = (
        alt.Chart(data)
        .mark_line(point=True, interpolate="step-after", color=colour, clip=True)
        .encode(
            x=_utc_x("at", data["at"], title="time (UTC)", fmt=SECONDS_FORMAT),
            y=alt.Y("value:Q", title=unit, scale=alt.Scale(zero=True, domainMin=0)),
            tooltip=[
                alt.Tooltip("at:T", timeUnit=UTC_SECOND, format="%H:%M:%S UTC"),
                alt.Tooltip("value:Q", title=unit, format=",.1f"),
            ],
        )
        .properties(height=height, width="container")
    )
    return cast(alt.Chart, chart)


def drilldown(points: Sequence[HeartbeatPoint]) -> list[alt.Chart | alt.LayerChart]:
    """Bitrate (kbps) and buffer (s) over the session as two charts, each with its own
    labelled value axis over the same time span, rebuffers and errors as rules on both."""
    frame = drilldown_frame(points)
    marks = markers_frame(points)
    panels: list[alt.Chart | alt.LayerChart] = []
    for series, unit, colour in (
        ("bitrate (kbps)", "kbps", "#1565c0"),
        ("buffer (s)", "seconds", "#6a1b9a"),
    ):
        panel: alt.Chart | alt.LayerChart = _panel(frame, series, unit, colour, 150)
        if not marks.empty:
            rules = (
                alt.Chart(marks)
                .mark_rule(color="#c62828", strokeDash=[4, 3])
                .encode(
                    x=_utc_x("at", frame["at"], title=None, fmt=SECONDS_FORMAT),
                    tooltip=[alt.Tooltip("at:T", timeUnit=UTC_SECOND, format="%H:%M:%S"), "what:N"],
                )
            )
            panel = cast(alt.LayerChart, alt.layer(panel, rules))
        panels.append(panel)
    return panels
