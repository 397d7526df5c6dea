"""Pipeline health: consumer lag, throughput per stage, dead letters, freshness, sinks.

Times here are the pipeline's own clocks (collector receipt, warehouse write), so the range
ends now, not at the newest event time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, tables, ui
from dashboards.filters import Filters
from dashboards.queries import pipeline as q
from streams.config import StreamsConfig
from streamwatch.pipeline_lag import KafkaUnreachable, as_rows, read_lag_sync

st.title("Pipeline health")
cfg = ui.settings()
con = ui.connect(cfg)
picked = ui.sidebar_filters(con, cfg, dimensions=False)


def _window() -> tuple[Filters, tuple[datetime, datetime]]:
    """The picked range, ending now; and the current (incomplete) minute."""
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    span = (picked.end - picked.start) if picked.start and picked.end else None
    start = now - span if span is not None else None
    return Filters(start, minute), (minute, minute + timedelta(minutes=1))


def body() -> None:
    filters, current = _window()
    fresh = q.freshness(con, filters)
    dl_pct = q.deadletter_ratio(con, filters)
    cols = st.columns(3)
    cols[0].metric("Freshness p50 (s)", ui.fmt(fresh["freshness_p50_s"], "", 2))
    cols[1].metric("Freshness p99 (s)", ui.fmt(fresh["freshness_p99_s"], "", 2))
    cols[2].metric("Dead-letter rate (%)", ui.fmt(dl_pct, "", 2))
    st.caption(
        "Freshness: collector receipt to stored in the warehouse, over events received in "
        "the range (complete minutes; the current minute is left out)."
    )

    st.subheader("Consumer lag")
    st.caption(
        "Per consumer group and partition: end offset - committed offset (Kafka). The stream "
        "worker commits with its checkpoints, every "
        f"{StreamsConfig.from_env().checkpoint_interval_s:g} s (`checkpoint_interval_s`): "
        "its lag includes up to that much input it has already applied."
    )
    try:
        lag = read_lag_sync(cfg, timeout_s=5.0)
    except KafkaUnreachable as exc:  # Kafka down is a finding to show, not a page crash
        st.warning(str(exc))
        lag = None
    if lag is not None:
        if not lag.partitions:
            st.info("No consumer group has committed offsets on this deployment's topics.")
        else:
            by_group, by_partition = tables.lag_tables(as_rows(lag))
            tables.show(by_group, key="sink_states")
            with st.expander("Lag per partition", expanded=True):
                tables.show(by_partition, key="lag_table")

    rates = q.stage_rates(con, filters)
    if rates.empty:
        ui.empty_note("pipeline traffic")
    else:
        ui.chart(
            st,
            "Records per stage",
            "records/s, per minute of each stage's clock",
            charts.line(rates, "per_s", "records/s", "stage", in_progress=current),
        )
    per_min = q.freshness_per_minute(con, filters)
    if not per_min.empty:
        long = per_min.melt("minute", ["p50_s", "p99_s"], "quantile", "seconds")
        long["quantile"] = long["quantile"].map({"p50_s": "p50", "p99_s": "p99"})
        ui.chart(
            st,
            "End-to-end freshness",
            "s, collector receipt to warehouse",
            charts.line(long, "seconds", "s", "quantile", in_progress=current),
        )
    st.subheader("Dead letters by reason")
    dl = q.deadletters_by_reason(con, filters)
    if dl.empty:
        ui.empty_note("dead letters")
    else:
        ui.chart(
            st, "Dead letters", "records", charts.bars(dl, "reason", "dead_letters", "records")
        )
        tables.show(tables.deadletter_table(pd.DataFrame(dl)), key="deadletters")


ui.auto_refresh(cfg, body)
