"""Capacity: concurrency, egress, edge share, control plane, ingest, storage; what-if."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import capacity, charts, tables, ui, warehouse
from dashboards.queries import capacity as q
from dashboards.queries import control_plane as cpq
from dashboards.storage import storage_by_day
from indexers.search_factory import make_backend

st.title("Capacity")
cfg = ui.settings()
con = ui.connect(cfg)
filters = ui.sidebar_filters(con, cfg)


def body() -> None:
    rolled = q.concurrency_and_egress_rollups(con, filters)
    ce = rolled if rolled is not None else q.concurrency_and_egress(con, filters)
    # Control-plane load as measured by the services' spans where they exist.
    ingest = cpq.with_measured_load(con, filters, q.ingest_per_minute(con, filters))
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
    cols[0].metric("Peak concurrency (viewers)", ui.fmt(peak_c, "", 0))
    cols[1].metric("Peak egress (Gbps)", ui.fmt(peak_e, "", 3))
    cols[2].metric("Edge share (%)", ui.fmt(None if edge is None else 100 * edge, "", 1))
    cols[3].metric(
        "Peak control plane (req/s)",
        ui.fmt(float(ingest["control_plane_rps"].max()) if len(ingest) else None, "", 2),
    )
    cols3 = st.columns(4)
    cols3[0].metric(
        "Telemetry ingest, peak (MB/s)",
        ui.fmt(float(ingest["mb_per_s"].max()) if len(ingest) else None, "", 3),
    )
    cols3[1].metric(
        "Telemetry events, peak (per s)",
        ui.fmt(float(ingest["events_per_s"].max()) if len(ingest) else None, "", 1),
    )
    per_day = storage.groupby("day")["bytes"].sum() if len(storage) else pd.Series(dtype=float)
    cols3[3].metric("Cache hit ratio (%)", ui.fmt(cpq.cache_hit_pct(con, filters), "", 1))
    cols3[2].metric(
        "Storage growth, max day",
        ui.fmt_bytes(float(per_day.max()) if len(per_day) else None),
    )
    if ce.empty:
        ui.empty_note("sessions")
    else:
        band = ui.in_progress(con)
        complete = ce if band is None else ce[ce["minute"] < pd.Timestamp(band[0])]
        left, right = st.columns(2)
        ui.chart(
            left,
            "Concurrent viewers",
            "sessions playing",
            charts.line(complete, "concurrent_viewers", "sessions", in_progress=band),
        )
        tiers = complete.melt("minute", ["edge_gbps", "origin_gbps"], "tier", "gbps")
        tiers["tier"] = tiers["tier"].map({"edge_gbps": "edge (OCA)", "origin_gbps": "origin"})
        ui.chart(
            right,
            "Egress by tier",
            "Gbps",
            charts.stacked_area(tiers, "gbps", "tier", "Gbps", in_progress=band),
        )
    if not ingest.empty:
        band = ui.in_progress(con)
        complete_in = ingest if band is None else ingest[ingest["minute"] < pd.Timestamp(band[0])]
        left, right = st.columns(2)
        ui.chart(
            left,
            "Telemetry",
            "events/s",
            charts.line(complete_in, "events_per_s", "events/s", in_progress=band),
        )
        ui.chart(
            right,
            "Control plane",
            "requests/s",
            charts.line(complete_in, "control_plane_rps", "req/s", in_progress=band),
        )
        st.caption("The shaded minutes are still in progress and left out of the lines.")
    if not storage.empty:
        by_store = storage.groupby(["day", "store"], as_index=False)["bytes"].sum()
        by_store = by_store.assign(mb=by_store["bytes"] / 1e6, day=by_store["day"].astype(str))
        ui.chart(
            st,
            "Storage by day and store",
            "MB: warehouse, search indices, Kafka topics",
            charts.stacked_bars(by_store, "day", "mb", "store", "MB"),
        )
        tables.show(tables.storage_table(storage), key="storage")
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
