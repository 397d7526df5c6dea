"""Altair charts with units in their titles and readable axes.

Altair's `mark_*` methods are wrapped by `use_signature`, which mypy cannot see through, so
they return Any; `_marked` casts back to the `Chart` they return (a shallow copy of self) so
that `.encode(...)` and `.properties(...)` stay type-checked.
"""

from __future__ import annotations

from typing import Any, cast

import altair as alt
import pandas as pd


def _marked(chart: Any) -> alt.Chart:
    """The result of `Chart.mark_*` (typed `Self` upstream, Any through its decorator)."""
    return cast(alt.Chart, chart)


def line(df: pd.DataFrame, y: str, title: str, unit: str, color: str | None = None) -> alt.Chart:
    """A time series over `minute` (UTC) of column `y`, in `unit`."""
    # Any: encode() takes a distinct channel type per keyword, which one dict cannot express.
    enc: dict[str, Any] = {
        "x": alt.X("minute:T", title="time (UTC)"),
        "y": alt.Y(f"{y}:Q", title=f"{title} ({unit})"),
        "tooltip": [alt.Tooltip("minute:T", format="%H:%M"), alt.Tooltip(f"{y}:Q", format=",.2f")],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color.replace("_", " "))
    return (
        _marked(alt.Chart(df, title=f"{title} ({unit})").mark_line(point=False))
        .encode(**enc)
        .properties(height=220)
    )


def bars(df: pd.DataFrame, x: str, y: str, title: str, unit: str) -> alt.Chart:
    """Horizontal bars of `y` per category `x`."""
    return (
        _marked(alt.Chart(df, title=f"{title} ({unit})").mark_bar())
        .encode(
            y=alt.Y(f"{x}:N", title=x.replace("_", " ")),
            x=alt.X(f"{y}:Q", title=f"{title} ({unit})"),
            tooltip=[x, alt.Tooltip(f"{y}:Q", format=",.2f")],
        )
        .properties(height=max(120, 28 * df[x].nunique()))
    )


def stacked_area(df: pd.DataFrame, y: str, color: str, title: str, unit: str) -> alt.Chart:
    """A stacked area over `minute` split by `color`."""
    return (
        _marked(alt.Chart(df, title=f"{title} ({unit})").mark_area())
        .encode(
            x=alt.X("minute:T", title="time (UTC)"),
            y=alt.Y(f"{y}:Q", stack=True, title=f"{title} ({unit})"),
            color=alt.Color(f"{color}:N", title=color.replace("_", " ")),
            tooltip=["minute:T", color, alt.Tooltip(f"{y}:Q", format=",.2f")],
        )
        .properties(height=220)
    )
