"""Shared Streamlit pieces of the SRE app: settings, connection, filters, formatting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from contract.dimensions import DIMENSION_LABELS, DIMENSIONS
from dashboards import warehouse
from dashboards.filters import Filters
from dashboards.queries.overview import (
    custom_dimension_values,
    dimension_values,
    in_progress_band,
    newest_event_time,
    time_bounds,
)
from streamwatch.pipeline_lag import KafkaUnreachable, behind_message, read_lag_sync
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


def fmt_bytes(value: float | None) -> str:
    """Bytes in the largest unit that keeps the number readable (1,000-based, as disks)."""
    if value is None or pd.isna(value):
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"  # pragma: no cover


def chart(container: Any, title: str, unit: str, figure: Any) -> None:
    """A chart under its own heading (Vega titles are clipped by Streamlit's frame)."""
    container.markdown(f"**{title}** · {unit}")
    container.altair_chart(figure, width="stretch")


def in_progress(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """The minutes after the newest complete (rolled-up) minute, up to the newest event."""
    return in_progress_band(con)


def behind_banner(cfg: Settings) -> None:
    """The "data is N minutes behind" banner when the pipeline lags (from Kafka)."""
    message = _behind_message(cfg.bootstrap_servers, cfg.topic_prefix, cfg)
    if message:
        st.warning(message, icon=":material/schedule:")


@st.cache_data(ttl=10, show_spinner=False)
def _behind_message(bootstrap: str, prefix: str, _cfg: Settings) -> str | None:
    # Keyed by the deployment (bootstrap, prefix); read at most every 10 s per deployment.
    try:
        lag = read_lag_sync(_cfg, timeout_s=3.0)
    except KafkaUnreachable as exc:
        return f"Cannot tell how far behind the data is: {exc}"
    except Exception as exc:  # a failed lag read must not hide the page
        return f"Cannot tell how far behind the data is ({type(exc).__name__}: {exc})."
    return behind_message(lag, _cfg.dashboards_behind_banner_s)


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
    newest = newest_event_time(con) or time_bounds(con)[1]
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
                DIMENSION_LABELS.get(d, d),
                _dimension_values(str(warehouse.warehouse_root(cfg)), d, con),
                key=f"f_{d}",
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


@st.cache_data(ttl=120, show_spinner=False)
def _dimension_values(root: str, dimension: str, _con: duckdb.DuckDBPyConnection) -> list[str]:
    # Filter choices change slowly; reading them on every page load cost most of a second.
    return dimension_values(_con, dimension)


def auto_refresh(cfg: Settings, body: Callable[[], None]) -> None:
    """Run `body` now and every `dashboards_refresh_s` seconds (0 = only now), under the
    "data is behind" banner (refreshed with it)."""

    def with_banner() -> None:
        # First: an SRE must read "behind" before any figure (the lag read is cached 10 s).
        behind_banner(cfg)
        body()

    if cfg.dashboards_refresh_s > 0:
        st.fragment(run_every=timedelta(seconds=cfg.dashboards_refresh_s))(with_banner)()
    else:
        with_banner()


def empty_note(what: str) -> None:
    """Say plainly that there is no data (an SRE must tell "no data" from "all fine")."""
    st.info(f"No {what} in the selected range.")
