"""QoE overview: plays, viewers, startup, rebuffering, failures, bitrate — minute by minute."""

from __future__ import annotations

import streamlit as st

from contract.dimensions import DIMENSION_LABELS, DIMENSIONS
from dashboards import charts, tables, ui
from dashboards.queries import overview

st.title("QoE overview")
cfg = ui.settings()
con = ui.connect(cfg)
filters = ui.sidebar_filters(con, cfg)
metric = st.selectbox(
    "Rank what hurts",
    list(overview.HARM),
    format_func=lambda k: overview.HARM[k].label,
    index=0,
    key="harm_metric",
)


def body() -> None:
    series = overview.minute_series(con, filters)
    h = overview.headline(con, filters, series.frame)
    row1 = st.columns(4)
    # Units go in the label: a long value ("141.6 plays/min") is cut off in a narrow column.
    row1[0].metric("Plays per minute", ui.fmt(h["plays_per_minute"], "", 1))
    row1[1].metric("Peak concurrent viewers", ui.fmt(h["peak_concurrent_viewers"], "", 0))
    row1[2].metric("Startup p50 (ms)", ui.fmt(h["startup_p50_ms"], "", 0))
    row1[3].metric("Startup p95 (ms)", ui.fmt(h["startup_p95_ms"], "", 0))
    row2 = st.columns(4)
    row2[0].metric("Rebuffer %", ui.fmt(h["rebuffer_pct"], "", 2))
    row2[1].metric("Playback failure %", ui.fmt(h["playback_failure_pct"], "", 2))
    row2[2].metric("EBVS %", ui.fmt(h["ebvs_pct"], "", 2))
    row2[3].metric("Avg bitrate (kbps)", ui.fmt(h["avg_bitrate_kbps"], "", 0))
    st.caption(f"{ui.fmt(h['sessions'], '', 0)} sessions in range (summarised when they end)")

    frame = series.frame
    if frame.empty:
        ui.empty_note("sessions")
    else:
        band = series.in_progress
        left, right = st.columns(2)
        ui.chart(
            left, "Plays", "per minute", charts.line(frame, "plays", "plays", in_progress=band)
        )
        ui.chart(
            right,
            "Concurrent viewers",
            "sessions playing",
            charts.line(frame, "concurrent_viewers", "sessions", in_progress=band),
        )
        ui.chart(
            left,
            "Startup time p95",
            "ms",
            charts.line(frame, "startup_p95_ms", "ms", in_progress=band),
        )
        ui.chart(
            right, "Rebuffering", "%", charts.line(frame, "rebuffer_pct", "%", in_progress=band)
        )
        ui.chart(
            left,
            "Playback failures",
            "% of active sessions",
            charts.line(frame, "playback_failure_pct", "%", in_progress=band),
        )
        ui.chart(
            right,
            "Average bitrate",
            "kbps",
            charts.line(frame, "avg_bitrate_kbps", "kbps", in_progress=band),
        )
        st.caption(series.note())

    harm = overview.HARM[metric]
    st.subheader(f"What hurts {harm.label} most")
    st.caption(
        f"Each dimension value against all other traffic; ranked by {harm.unit} "
        "(its excess over what the rest's rate would have given its sessions)."
    )
    worst = overview.worst_offenders(con, filters, metric)
    tables.show(tables.harm_table(worst, harm.label, harm.unit), key="worst_offenders")
    dim = st.selectbox(
        "Break down by", DIMENSIONS, format_func=lambda d: DIMENSION_LABELS.get(d, d), key="dim"
    )
    ranked = overview.breakdown(con, filters, dim, metric)
    tables.show(tables.harm_table(ranked, harm.label, harm.unit), key="breakdown")


ui.auto_refresh(cfg, body)
