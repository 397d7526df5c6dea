"""Incidents: open and resolved, root cause, affected sessions, the metric around it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alerts.ui import alert_controls
from dashboards import charts, tables, ui
from dashboards.queries import incidents as q
from dashboards.support_link import affected_members_url

st.title("Incidents")
cfg = ui.settings()
con = ui.connect(cfg)
filters = ui.sidebar_filters(con, cfg, dimensions=False)


def body() -> None:
    listed = q.list_incidents(con, filters)
    open_n = int((listed["status"] == "open").sum()) if len(listed) else 0
    cols = st.columns(3)
    cols[0].metric("Open incidents", str(open_n))
    cols[1].metric("Resolved incidents", str(len(listed) - open_n))
    cols[2].metric(
        "Affected sessions (all listed)",
        ui.fmt(float(listed["affected_sessions"].fillna(0).sum()) if len(listed) else None, "", 0),
    )
    if listed.empty:
        ui.empty_note("incidents")
        return
    listed = listed.assign(root_cause=listed["dimension"] + " = " + listed["value"].astype(str))
    tables.show(tables.incidents_table(listed), key="incident_table")
    labels = {
        r.incident_id: f"[{r.status}] {r.metric} · {r.root_cause} · {r.started_at:%Y-%m-%d %H:%M}"
        for r in listed.itertuples()
    }
    chosen = st.selectbox(
        "Incident", list(labels), format_func=lambda i: labels[i], key="incident_pick"
    )
    row: pd.Series = listed.set_index("incident_id").loc[chosen].copy()
    row["incident_id"] = chosen
    st.subheader(f"{row['metric']} on {row['root_cause']}")
    if isinstance(row.get("explanation"), str):
        st.write(row["explanation"])
    around = q.metric_around(con, row)
    unit = q.METRIC_UNITS.get(str(row["metric"]), "")
    progress = ui.in_progress(con)
    if progress is not None and len(around):
        # Shaded minutes are not complete: shown, they would read as a spike or a drop.
        around = around[pd.to_datetime(around["minute"], utc=True) < pd.Timestamp(progress[0])]
    if around.empty:
        ui.empty_note("sessions around this incident")
    else:
        ui.chart(
            st,
            str(row["metric"]).replace("_", " "),
            f"{unit} per minute, root cause against the rest",
            charts.line(around, "metric_value", unit, "cohort", in_progress=progress),
        )
    members = q.affected_members(con, row)
    sessions = q.affected_sessions(con, row)
    c = st.columns(2)
    c[0].metric("Sessions in the root cause during the incident", f"{sessions:,}")
    c[1].metric("Members affected", f"{len(members):,}")
    st.link_button(
        "Open affected members in the support console",
        affected_members_url(cfg, str(chosen), members),
    )
    alert_controls(cfg, str(row["dimension"]), str(row["value"]))


ui.auto_refresh(cfg, body)
