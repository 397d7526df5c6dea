"""Tables as an SRE reads them: human column names, rounded numbers, UTC times, sizes in
kB/MB/GB. Each builder returns the renamed frame and Streamlit's column formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from contract.dimensions import DIMENSION_LABELS

TIME = "YYYY-MM-DD HH:mm"  # Streamlit (moment.js) datetime format; data is UTC


@dataclass(frozen=True)
class Table:
    """A frame ready to show and the formats of its columns."""

    frame: pd.DataFrame
    formats: dict[str, Any] = field(default_factory=dict)


def number(fmt: str = "%.2f", help: str | None = None) -> Any:
    """A right-aligned number column in printf format (Streamlit's NumberColumn)."""
    return st.column_config.NumberColumn(format=fmt, help=help)


def when(help: str | None = None) -> Any:
    """A UTC timestamp column."""
    return st.column_config.DatetimeColumn(format=TIME, timezone="UTC", help=help)


def show(table: Table, key: str) -> None:
    """Render a `Table` full width without its index."""
    st.dataframe(
        table.frame, hide_index=True, key=key, column_config=table.formats, width="stretch"
    )


def harm_table(frame: pd.DataFrame, label: str, unit: str) -> Table:
    """Dimension values ranked by harm (overview)."""
    out = frame.copy()
    if "dimension" in out:
        out["dimension"] = [DIMENSION_LABELS.get(str(d), str(d)) for d in out["dimension"]]
    renamed = out.rename(
        columns={
            "dimension": "Dimension",
            "value": "Value",
            "sessions": "Sessions",
            "metric_value": label,
            "rest_value": f"{label}, all other traffic",
            "excess": unit[:1].upper() + unit[1:],
        }
    )
    return Table(
        renamed,
        {
            "Sessions": number("%d"),
            label: number("%.2f"),
            f"{label}, all other traffic": number("%.2f"),
            unit[:1].upper() + unit[1:]: number("%.2f"),
        },
    )


def incidents_table(frame: pd.DataFrame) -> Table:
    """The incidents list."""
    cols = {
        "status": "Status",
        "severity": "Severity",
        "metric": "Metric",
        "root_cause": "Root cause",
        "started_at": "Started (UTC)",
        "resolved_at": "Resolved (UTC)",
        "observed": "Observed",
        "expected": "Expected",
        "affected_sessions": "Affected sessions",
        "incident_id": "Incident id",
    }
    out = frame[[c for c in cols if c in frame]].rename(columns=cols)
    return Table(
        out,
        {
            "Started (UTC)": when(),
            "Resolved (UTC)": when("None while the incident is open"),
            "Observed": number("%.2f", "the metric in the root-cause cohort"),
            "Expected": number("%.2f", "the metric's baseline"),
            "Affected sessions": number("%d"),
        },
    )


def storage_table(frame: pd.DataFrame) -> Table:
    """Bytes per store (warehouse tables, search indices, Kafka topics) and day, formatted."""
    from dashboards.ui import fmt_bytes

    out = frame.copy()
    out["size"] = [fmt_bytes(b) for b in out["bytes"]]
    out = out.drop(columns=["bytes"]).rename(
        columns={"store": "Store", "day": "Day (UTC)", "size": "Size"}
    )
    return Table(out)


def deadletter_table(frame: pd.DataFrame) -> Table:
    """Dead letters by reason."""
    out = frame.rename(
        columns={
            "reason": "Reason",
            "source": "Rejected by",
            "dead_letters": "Dead letters",
            "per_minute": "Per minute",
        }
    )
    return Table(out, {"Dead letters": number("%d"), "Per minute": number("%.2f")})


def lag_tables(rows: list[dict[str, Any]]) -> tuple[Table, Table]:
    """Per consumer group (summary) and per partition lag, from `pipeline_lag.as_rows`."""
    parts = pd.DataFrame(rows)
    groups = (
        parts.groupby(["Consumer group", "State"], as_index=False, dropna=False)
        .agg(
            Members=("Members", "max"),
            Partitions=("Partition", "count"),
            **{"Lag (records)": ("Lag (records)", "sum")},
            **{"Oldest waiting (s)": ("Oldest waiting (s)", "max")},
        )
        .sort_values("Consumer group")
    )
    formats = {
        "Lag (records)": number("%d"),
        "Oldest waiting (s)": number(
            "%.1f",
            "age of the oldest record not yet processed; read on the most lagging partition "
            "of each group and topic (None on the others), 0 when nothing waits",
        ),
        "Committed offset": number("%d"),
        "End offset": number("%d"),
        "Members": number("%d"),
        "Partitions": number("%d"),
        "Partition": number("%d"),
    }
    # State and members are per group (the summary); the partition table stays narrow
    # enough that the lag column is visible without scrolling.
    return Table(groups, formats), Table(parts.drop(columns=["State", "Members"]), formats)
