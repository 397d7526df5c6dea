"""Control plane: requests/s, error %, latency and fallbacks per service and endpoint.

From the warehouse's `service_minute` view (the streams' 1-minute rollups of the services'
spans). The range ends at the newest minute with control-plane traffic.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, ui
from dashboards.filters import Filters
from dashboards.queries import control_plane as q

st.title("Control plane")
cfg = ui.settings()
con = ui.connect(cfg)


def _filters() -> Filters:
    names = list(ui.WINDOWS)
    default = next(
        (
            n
            for n, m in ui.WINDOWS.items()
            if m is not None and m >= cfg.dashboards_default_window_min
        ),
        "everything",
    )
    window = st.sidebar.selectbox("Time range", names, index=names.index(default), key="cp_window")
    newest = q.newest_minute(con)
    minutes = ui.WINDOWS[window]
    if newest is None or minutes is None:
        return Filters()
    end = pd.Timestamp(newest).to_pydatetime() + timedelta(minutes=1)
    return Filters(end - timedelta(minutes=minutes), end)


filters = _filters()


def body() -> None:
    if not q.has_data(con):
        ui.empty_note("control-plane spans (service minutes)")
        return
    head = q.headline(con, filters)
    cols = st.columns(4)
    cols[0].metric("Requests/s (mean)", ui.fmt(head["requests_per_s"], "", 2))
    cols[1].metric("Error rate (%)", ui.fmt(head["error_pct"], "", 2))
    cols[2].metric("Fallback rate (%)", ui.fmt(head["fallback_pct"], "", 2))
    cols[3].metric("Cache hit ratio (%)", ui.fmt(head["cache_hit_pct"], "", 1))
    st.subheader("Per service and endpoint")
    table = q.by_endpoint(con, filters)
    number = st.column_config.NumberColumn
    st.dataframe(
        table,
        hide_index=True,
        key="cp_endpoints",
        width="stretch",
        column_config={
            "requests": number("requests", format="%d"),
            "requests_per_s": number("requests/s", format="%.2f"),
            "error_pct": number("error %", format="%.2f"),
            "fallback_pct": number("fallback %", format="%.2f"),
            "latency_p50_ms": number("p50 ms", format="%.1f"),
            "latency_p99_ms": number("p99 ms", format="%.1f"),
            "cache_hit_pct": number("cache hit %", format="%.1f"),
        },
    )
    st.caption(
        "Rates are over the minutes with traffic in the range. Latency p50: the "
        "request-weighted mean of the minutes' p50; p99: the worst minute's p99."
    )
    series = q.per_minute(con, filters)
    if series.empty:
        return
    left, right = st.columns(2)
    ui.chart(
        left, "Requests", "requests/s", charts.line(series, "requests_per_s", "req/s", "service")
    )
    errors = series.fillna({"error_pct": 0.0})
    ui.chart(right, "Errors", "% of requests", charts.line(errors, "error_pct", "%", "service"))
    left, right = st.columns(2)
    ui.chart(
        left,
        "Latency p99",
        "ms (worst region)",
        charts.line(series, "latency_p99_ms", "ms", "service"),
    )
    fallbacks = series.fillna({"fallback_pct": 0.0})
    ui.chart(
        right, "Fallbacks", "% of requests", charts.line(fallbacks, "fallback_pct", "%", "service")
    )


ui.auto_refresh(cfg, body)
