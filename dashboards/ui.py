"""Shared Streamlit pieces of the SRE app: settings, connection, filters, formatting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import streamlit as st

from dashboards import warehouse
from dashboards.filters import Filters
from dashboards.queries.overview import custom_dimension_values, dimension_values, time_bounds
from dashboards.schema import DIMENSION_LABELS, DIMENSIONS
from streamwatch.settings import Settings

WINDOWS: dict[str, int | None] = {
    "last 15 min": 15,
    "last 1 h": 60,
    "last 3 h": 180,
    "last 24 h": 1440,
    "last 7 days": 7 * 1440,
    "everything": None,
}


def settings() -> Settings:
    """Settings read fresh on each run (the environment may change between runs in tests)."""
    return Settings()


def connect(cfg: Settings) -> duckdb.DuckDBPyConnection:
    """A new read-only connection per run: views over immutable files, no lock held."""
    return warehouse.connect(cfg)


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A headline number as shown on the page ("—" for no data, never a fake 0)."""
    if value is None or pd.isna(value):
        return "—"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def _default_window(cfg: Settings) -> str:
    for name, minutes in WINDOWS.items():
        if minutes is not None and minutes >= cfg.dashboards_default_window_min:
            return name
    return "everything"


def sidebar_filters(
    con: duckdb.DuckDBPyConnection, cfg: Settings, dimensions: bool = True
) -> Filters:
    """Time range and dimension pickers in the sidebar.

    The range ends at the newest data, not the wall clock: a replay or a stalled pipeline
    still shows its last minutes (pipeline health says whether data is fresh).
    """
    st.sidebar.header("Filters")
    names = list(WINDOWS)
    window = st.sidebar.selectbox(
        "Time range", names, index=names.index(_default_window(cfg)), key="window"
    )
    _, newest = time_bounds(con)
    minutes = WINDOWS[window]
    start: datetime | None = None
    end: datetime | None = None
    if newest is not None and minutes is not None:
        end = pd.Timestamp(newest).to_pydatetime() + timedelta(minutes=1)
        start = end - timedelta(minutes=minutes)
    picked: dict[str, list[str]] = {}
    if dimensions:
        for d in DIMENSIONS:
            chosen = st.sidebar.multiselect(
                DIMENSION_LABELS.get(d, d), dimension_values(con, d), key=f"f_{d}"
            )
            if chosen:
                picked[d] = list(chosen)
    custom: dict[str, list[str]] = {}
    if dimensions:
        for name in cfg.custom_dimensions:
            chosen = st.sidebar.multiselect(
                name.replace("_", " ").capitalize(),
                custom_dimension_values(con, name),
                key=f"fc_{name}",
            )
            if chosen:
                custom[name] = list(chosen)
    return Filters.of(start, end, **picked).with_custom(**custom)


def auto_refresh(cfg: Settings, body: Callable[[], None]) -> None:
    """Run `body` now and every `dashboards_refresh_s` seconds (0 = only now)."""
    if cfg.dashboards_refresh_s > 0:
        st.fragment(run_every=timedelta(seconds=cfg.dashboards_refresh_s))(body)()
    else:
        body()


def empty_note(what: str) -> None:
    """Say plainly that there is no data (an SRE must tell "no data" from "all fine")."""
    st.info(f"No {what} in the selected range.")
