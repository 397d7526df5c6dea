"""QoE overview: plays, viewers, startup, rebuffering, failures, bitrate — minute by minute."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui
from dashboards.queries import overview
from dashboards.schema import DIMENSION_LABELS, DIMENSIONS

cfg = ui.settings()
con = ui.connect(cfg)
st.title("QoE overview")
filters = ui.sidebar_filters(con, cfg)
metric = st.selectbox(
    "Rank what hurts",
    list(overview.HARM),
    format_func=lambda k: overview.HARM[k].label,
    index=0,
    key="harm_metric",
)


def body() -> None:
    h = overview.headline(con, filters)
    row1 = st.columns(4)
    row1[0].metric("Plays per minute", ui.fmt(h["plays_per_minute"], "plays/min"))
    row1[1].metric("Peak concurrent viewers", ui.fmt(h["peak_concurrent_viewers"], "", 0))
    row1[2].metric("Startup p50", ui.fmt(h["startup_p50_ms"], "ms", 0))
    row1[3].metric("Startup p95", ui.fmt(h["startup_p95_ms"], "ms", 0))
    row2 = st.columns(4)
    row2[0].metric("Rebuffer %", ui.fmt(h["rebuffer_pct"], "%", 2))
    row2[1].metric("Playback failure %", ui.fmt(h["playback_failure_pct"], "%", 2))
    row2[2].metric("EBVS %", ui.fmt(h["ebvs_pct"], "%", 2))
    row2[3].metric("Avg bitrate", ui.fmt(h["avg_bitrate_kbps"], "kbps", 0))
    st.caption(f"{ui.fmt(h['sessions'], '', 0)} sessions in range")

    series = overview.per_minute(con, filters)
    if series.empty:
        ui.empty_note("sessions")
    else:
        left, right = st.columns(2)
        left.altair_chart(charts.line(series, "plays", "Plays", "per minute"))
        right.altair_chart(
            charts.line(series, "concurrent_viewers", "Concurrent viewers", "sessions")
        )
        left.altair_chart(charts.line(series, "startup_p95_ms", "Startup p95", "ms"))
        right.altair_chart(charts.line(series, "rebuffer_pct", "Rebuffer", "%"))
        left.altair_chart(charts.line(series, "playback_failure_pct", "Playback failures", "%"))
        right.altair_chart(charts.line(series, "avg_bitrate_kbps", "Average bitrate", "kbps"))

    harm = overview.HARM[metric]
    st.subheader(f"What hurts {harm.label} most")
    st.caption(
        f"Each dimension value against all other traffic; ranked by {harm.unit} "
        "(its excess over what the rest's rate would have given its sessions)."
    )
    worst = overview.worst_offenders(con, filters, metric)
    st.dataframe(
        worst.rename(
            columns={
                "metric_value": f"{harm.label} (value)",
                "rest_value": f"{harm.label} (rest)",
                "excess": harm.unit,
            }
        ),
        hide_index=True,
        key="worst_offenders",
    )
    dim = st.selectbox(
        "Break down by", DIMENSIONS, format_func=lambda d: DIMENSION_LABELS.get(d, d), key="dim"
    )
    st.dataframe(overview.breakdown(con, filters, dim, metric), hide_index=True, key="breakdown")


ui.auto_refresh(cfg, body)
