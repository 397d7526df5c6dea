"""Capacity: concurrency, egress, edge share, control plane, ingest, storage; what-if."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import capacity, charts, ui, warehouse
from dashboards.queries import capacity as q
from dashboards.storage import storage_by_day
from indexers.search_backend import make_backend

cfg = ui.settings()
con = ui.connect(cfg)
st.title("Capacity")
filters = ui.sidebar_filters(con, cfg)


def body() -> None:
    ce = q.concurrency_and_egress(con, filters)
    ingest = q.ingest_per_minute(con, filters)
    backend = make_backend(cfg)
    try:  # warehouse, search indices and Kafka topics (dashboards.storage)
        storage, storage_notes = storage_by_day(
            cfg, q.storage_by_day(warehouse.warehouse_root(cfg)), backend
        )
    finally:
        backend.close()
    peak_c = float(ce["concurrent_viewers"].max()) if len(ce) else None
    peak_e = float(ce["egress_gbps"].max()) if len(ce) else None
    edge = capacity.edge_share(float(ce["edge_gbps"].sum()), float(ce["origin_gbps"].sum()))
    cols = st.columns(4)
    cols[0].metric("Peak concurrency", ui.fmt(peak_c, "viewers", 0))
    cols[1].metric("Peak egress", ui.fmt(peak_e, "Gbps", 3))
    cols[2].metric("Edge share", ui.fmt(None if edge is None else 100 * edge, "%", 1))
    cols[3].metric(
        "Peak control-plane",
        ui.fmt(float(ingest["control_plane_rps"].max()) if len(ingest) else None, "req/s", 2),
    )
    cols3 = st.columns(3)
    cols3[0].metric(
        "Telemetry ingest (peak)",
        ui.fmt(float(ingest["mb_per_s"].max()) if len(ingest) else None, "MB/s", 3),
    )
    cols3[1].metric(
        "Telemetry events (peak)",
        ui.fmt(float(ingest["events_per_s"].max()) if len(ingest) else None, "events/s", 1),
    )
    per_day = storage.groupby("day")["bytes"].sum() if len(storage) else pd.Series(dtype=float)
    cols3[2].metric(
        "Storage growth (max day)",
        ui.fmt(float(per_day.max()) / 1e6 if len(per_day) else None, "MB/day", 2),
    )
    if ce.empty:
        ui.empty_note("sessions")
    else:
        left, right = st.columns(2)
        left.altair_chart(charts.line(ce, "concurrent_viewers", "Concurrent viewers", "sessions"))
        tiers = ce.melt("minute", ["edge_gbps", "origin_gbps"], "tier", "gbps")
        right.altair_chart(charts.stacked_area(tiers, "gbps", "tier", "Egress", "Gbps"))
    if not ingest.empty:
        left, right = st.columns(2)
        left.altair_chart(charts.line(ingest, "events_per_s", "Telemetry", "events/s"))
        right.altair_chart(charts.line(ingest, "control_plane_rps", "Control plane", "req/s"))
    if not storage.empty:
        by_store = storage.pivot_table("bytes", "day", "store", aggfunc="sum", fill_value=0)
        st.markdown("**Storage by day and store (MB)**: warehouse, search indices, Kafka topics")
        st.bar_chart(by_store / 1e6, x_label="day (UTC)", y_label="MB", stack=True)
        st.dataframe((by_store / 1e6).round(3), key="storage")
    for note in storage_notes:
        st.caption(note)

    st.subheader("What if")
    members_today = q.members_seen(con, filters)
    today = capacity.Behaviour(
        members=members_today,
        peak_concurrency=peak_c or 0.0,
        peak_egress_gbps=peak_e or 0.0,
        peak_events_per_s=float(ingest["events_per_s"].max()) if len(ingest) else 0.0,
        telemetry_bytes_per_day=float(ingest["mb_per_s"].mean()) * 1e6 * 86400
        if len(ingest)
        else 0.0,
        storage_bytes_per_day=float(per_day.mean()) if len(per_day) else 0.0,
    )
    n = st.number_input(
        "Members", min_value=0, value=max(members_today, 1) * 1000, step=1000, key="whatif_members"
    )
    st.caption(f"Today's behaviour measured over {members_today:,} members in range.")
    st.markdown(f"**{capacity.project(today, int(n)).sentence()}**")


ui.auto_refresh(cfg, body)
