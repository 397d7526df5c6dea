"""The session trace as one chart: a lane per party (player, then each service), time across.

Server spans are bars from start to end, player events are dots; red means failed, and a
failing span gets a thick dark outline so it stands out even among other red marks. The time
axis is a UTC scale with a 24-hour `%H:%M:%S` format (Vega-Lite's default would be a 12-hour
clock in the browser's zone) and keeps milliseconds: a licence retry lasts a second, not a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import altair as alt
import pandas as pd

from contract.spans import SERVICES
from support_console.trace import PLAYER_LANE, TraceStep

STATUS_COLOURS: dict[str, str] = {"ok": "#2e7d32", "warning": "#f9a825", "error": "#c62828"}
LANE_ORDER: tuple[str, ...] = (PLAYER_LANE, *SERVICES)
LANE_STEP = 34  # pixels per lane


def steps_frame(steps: Sequence[TraceStep]) -> pd.DataFrame:
    """One row per step with what the chart draws and its tooltip says."""
    rows = [
        {
            "start": s.at,
            "time": f"{s.at:%H:%M:%S.%f}"[:-3],
            "end": s.end or s.at,
            "lane": s.lane,
            "what": s.label,
            "status": s.status,
            "detail": s.detail or "-",
            "failing": s.highlighted,
            "source": s.source,
            "ms": round(s.duration_ms, 1) if s.duration_ms is not None else None,
        }
        for s in steps
    ]
    # Errors last: a failed player event is drawn on top of an event at the same instant.
    rows.sort(key=lambda r: r["status"] == "error")
    columns = [
        "start",
        "time",
        "end",
        "lane",
        "what",
        "status",
        "detail",
        "failing",
        "source",
        "ms",
    ]
    return pd.DataFrame(rows, columns=columns)


def drawn_steps(
    steps: Sequence[TraceStep], margin: timedelta = timedelta(seconds=10)
) -> tuple[list[TraceStep], list[TraceStep]]:
    """(steps to draw, later player steps left out): the chart covers the server's part of
    the play (play press to the last span, plus a margin), so seconds of startup are not
    squeezed into a corner by a playback_end two hours later."""
    ends = [s.end or s.at for s in steps if s.source == "server"]
    if not ends:
        return list(steps), []
    limit = max(ends) + margin
    return [s for s in steps if s.at <= limit], [s for s in steps if s.at > limit]


def trace_chart(steps: Sequence[TraceStep]) -> alt.LayerChart:
    """Player events and server spans of one play on one UTC time axis."""
    frame = steps_frame(steps)
    lanes = [lane for lane in LANE_ORDER if lane in set(frame["lane"])]
    lanes += sorted(set(frame["lane"]) - set(lanes))
    x = alt.X(
        "start:T",
        scale=alt.Scale(type="utc"),
        title="time (UTC)",
        axis=alt.Axis(format="%H:%M:%S", labelAngle=0, labelOverlap=True),
    )
    y = alt.Y("lane:N", sort=lanes, title=None, axis=alt.Axis(labelLimit=200))
    colour = alt.Color(
        "status:N",
        scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
        legend=alt.Legend(title="answer", orient="bottom"),
    )
    tooltip = [
        alt.Tooltip("lane:N", title="who"),
        alt.Tooltip("what:N"),
        alt.Tooltip("status:N"),
        alt.Tooltip("detail:N"),
        alt.Tooltip("time:N", title="time (UTC)"),
        alt.Tooltip("ms:Q", title="duration (ms)"),
    ]
    base = alt.Chart(frame).encode(x=x, y=y, color=colour, tooltip=tooltip)
    spans = base.transform_filter("datum.source == 'server'").mark_bar(height=16, opacity=0.8)
    spans = spans.encode(
        x2="end:T",
        stroke=alt.condition("datum.failing", alt.value("#3e0000"), alt.value(None)),
        strokeWidth=alt.condition("datum.failing", alt.value(3), alt.value(0)),
    )
    events = base.transform_filter("datum.source == 'player'").mark_point(
        filled=True, size=150, shape="diamond"
    )
    chart = alt.layer(spans, events).properties(height=alt.Step(LANE_STEP), width="container")
    return cast(alt.LayerChart, chart)
