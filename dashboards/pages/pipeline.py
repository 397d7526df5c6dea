"""Pipeline health: consumer lag, throughput per stage, dead letters, freshness, sinks."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui
from dashboards.kafka_health import consumer_lag_sync, sink_states
from dashboards.queries import pipeline as q

cfg = ui.settings()
con = ui.connect(cfg)
st.title("Pipeline health")
filters = ui.sidebar_filters(con, cfg, dimensions=False)


def body() -> None:
    fresh = q.freshness(con, filters)
    dl_pct = q.deadletter_ratio(con, filters)
    cols = st.columns(3)
    cols[0].metric("Freshness p50", ui.fmt(fresh["freshness_p50_s"], "s", 2))
    cols[1].metric("Freshness p99", ui.fmt(fresh["freshness_p99_s"], "s", 2))
    cols[2].metric("Dead-letter rate", ui.fmt(dl_pct, "%", 2))

    st.subheader("Consumer lag (Kafka: end offset - committed offset)")
    try:
        lag = consumer_lag_sync(cfg, timeout_s=5.0)
    except Exception as exc:  # Kafka down is a finding to show, not a page crash
        st.warning(f"Kafka unreachable at {cfg.bootstrap_servers}: {exc}")
        lag = None
    if lag is not None:
        if lag.empty:
            st.info("No consumer group has committed offsets on this deployment's topics.")
        else:
            st.dataframe(sink_states(lag), hide_index=True, key="sink_states")
            st.dataframe(lag, hide_index=True, key="lag_table")

    rates = q.stage_rates(con, filters)
    if rates.empty:
        ui.empty_note("pipeline traffic")
    else:
        st.altair_chart(charts.line(rates, "per_s", "Records per stage", "records/s", "stage"))
    per_min = q.freshness_per_minute(con, filters)
    if not per_min.empty:
        long = per_min.melt("minute", ["p50_s", "p99_s"], "quantile", "seconds")
        st.altair_chart(charts.line(long, "seconds", "End-to-end freshness", "s", "quantile"))
    st.subheader("Dead letters by reason")
    dl = q.deadletters_by_reason(con, filters)
    if dl.empty:
        ui.empty_note("dead letters")
    else:
        st.altair_chart(charts.bars(dl, "reason", "dead_letters", "Dead letters", "records"))
        st.dataframe(dl, hide_index=True, key="deadletters")


ui.auto_refresh(cfg, body)
