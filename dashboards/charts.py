"""Altair charts with readable axes: 24-hour UTC time, units on the value axis, no dips
below zero, and the minutes still in progress shaded instead of drawn as a drop.

Vega-Lite formats time axes with a 12-hour clock and no AM/PM by default, in the browser's
time zone: every time axis and tooltip here uses an explicit `%H:%M` format on a UTC scale.
Titles are not drawn by Vega (Streamlit clips them); pages put a heading above each chart.

Altair's `mark_*` methods are wrapped by `use_signature`, which mypy cannot see through, so
they return Any; `_marked` casts back to the `Chart` they return (a shallow copy of self) so
that `.encode(...)` and `.properties(...)` stay type-checked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, cast

import altair as alt
import pandas as pd

TIME_FORMAT = "%H:%M"
TOOLTIP_TIME_FORMAT = "%Y-%m-%d %H:%M UTC"  # with a UTC time unit, formatted as UTC
HEIGHT = 220


def _marked(chart: Any) -> alt.Chart:
    """The result of `Chart.mark_*` (typed `Self` upstream, Any through its decorator)."""
    return cast(alt.Chart, chart)


# A UTC time unit (not `formatType="utc"`, which Streamlit's Vega-Lite ignores, falling back
# to the 12-hour default) keeps labels in UTC whatever the browser's zone, and puts ticks on
# whole minutes.
UTC_MINUTE: Final = "utcyearmonthdatehoursminutes"


def time_x(field: str = "minute", title: str = "time (UTC)", fmt: str = TIME_FORMAT) -> alt.X:
    """A UTC time axis labelled with a 24-hour clock."""
    return alt.X(
        f"{field}:T",
        timeUnit=UTC_MINUTE,
        title=title,
        axis=alt.Axis(format=fmt, labelOverlap=True, labelAngle=0),
    )


def time_tooltip(field: str = "minute", title: str = "minute") -> alt.Tooltip:
    """A tooltip of a UTC time with its date."""
    return alt.Tooltip(f"{field}:T", timeUnit=UTC_MINUTE, title=title, format=TOOLTIP_TIME_FORMAT)


def axis_format(times: pd.Series) -> str:
    """`%H:%M`, with the weekday when the data spans more than most of a day."""
    if len(times) and pd.Timestamp(times.max()) - pd.Timestamp(times.min()) > pd.Timedelta(
        hours=20
    ):
        return "%a %H:%M"
    return TIME_FORMAT


def _bottom_legend(columns: int = 4, **kw: Any) -> alt.Legend:
    # In rows: one row of eight services is wider than a half-page chart and the last names
    # were cut off.
    return alt.Legend(orient="bottom", columns=columns, **kw)


def _value_y(y: str, unit: str, nonnegative: bool) -> alt.Y:
    # domainMin alone turns Vega's rounding of the domain off: the top point would sit on
    # (and be clipped at) the plot's edge.
    scale = alt.Scale(zero=True, domainMin=0, nice=True) if nonnegative else alt.Scale(zero=False)
    return alt.Y(f"{y}:Q", title=unit, scale=scale, axis=alt.Axis(format=",~f"))


def in_progress_band(
    start: datetime, end: datetime, field: str = "minute", fmt: str = TIME_FORMAT
) -> alt.Chart:
    """A grey band over [start, end): minutes whose data is not complete yet."""
    frame = pd.DataFrame({field: [pd.Timestamp(start)], "band_end": [pd.Timestamp(end)]})
    frame["label"] = "in progress (not complete yet)"
    # The band is the layer's first, so its axis is the one drawn: same field, same format.
    return _marked(alt.Chart(frame).mark_rect(color="#9e9e9e", opacity=0.18)).encode(
        x=time_x(field, fmt=fmt),
        x2=alt.X2("band_end:T", timeUnit=UTC_MINUTE),
        tooltip=[alt.Tooltip("label:N", title="")],
    )


def with_gaps(df: pd.DataFrame, y: str, color: str | None = None) -> pd.DataFrame:
    """`df` with an empty point after every stretch of missing minutes, per line.

    Vega-Lite joins the points on either side of a gap with a straight line: an hour with
    no data (a demo stopped and started again) would read as a slow decline. An empty value
    breaks the line there instead.
    """
    if "minute" not in df or len(df) < 2:
        return df
    breaks = []
    for _, part in df.groupby(color, sort=False) if color else [(None, df)]:
        minutes = pd.to_datetime(part["minute"]).sort_values()
        gap = minutes.diff() > pd.Timedelta(minutes=1)
        for before in minutes.shift(1)[gap]:
            row = {"minute": before + pd.Timedelta(minutes=1), y: None}
            if color:
                row[color] = part[color].iloc[0]
            breaks.append(row)
    if not breaks:
        return df
    return pd.concat([df, pd.DataFrame(breaks)], ignore_index=True).sort_values("minute")


def line(
    df: pd.DataFrame,
    y: str,
    unit: str,
    color: str | None = None,
    *,
    in_progress: tuple[datetime, datetime] | None = None,
    nonnegative: bool = True,
) -> alt.Chart | alt.LayerChart:
    """A time series over `minute` (UTC) of column `y`, in `unit`.

    `in_progress` = (start, end) shades the minutes not complete yet; `df` should hold only
    complete minutes, so the line stops where the data stops instead of falling to zero.
    """
    # Any: encode() takes a distinct channel type per keyword, which one dict cannot express.
    fmt = axis_format(df["minute"]) if "minute" in df else TIME_FORMAT
    df = with_gaps(df, y, color)
    enc: dict[str, Any] = {
        "x": time_x(fmt=fmt),
        "y": _value_y(y, unit, nonnegative),
        "tooltip": [time_tooltip(), alt.Tooltip(f"{y}:Q", title=unit, format=",.2f")],
    }
    if color:
        enc["color"] = alt.Color(
            f"{color}:N",
            title=color.replace("_", " "),
            legend=_bottom_legend(labelLimit=280),
        )
        enc["tooltip"].append(alt.Tooltip(f"{color}:N"))
    chart = (
        _marked(alt.Chart(df).mark_line(point=len(df) < 40, clip=True))
        .encode(**enc)
        .properties(height=HEIGHT)
    )
    if in_progress is None:
        return chart
    band = in_progress_band(*in_progress, fmt=fmt)
    return cast(alt.LayerChart, alt.layer(band, chart))


def bars(df: pd.DataFrame, x: str, y: str, unit: str, x_title: str | None = None) -> alt.Chart:
    """Horizontal bars of `y` per category `x`."""
    return (
        _marked(alt.Chart(df).mark_bar())
        .encode(
            y=alt.Y(f"{x}:N", title=x_title or x.replace("_", " "), axis=alt.Axis(labelLimit=320)),
            x=alt.X(f"{y}:Q", title=unit, scale=alt.Scale(zero=True)),
            tooltip=[alt.Tooltip(f"{x}:N"), alt.Tooltip(f"{y}:Q", title=unit, format=",.2f")],
        )
        .properties(height=max(120, 28 * df[x].nunique()))
    )


def stacked_area(
    df: pd.DataFrame,
    y: str,
    color: str,
    unit: str,
    *,
    in_progress: tuple[datetime, datetime] | None = None,
) -> alt.Chart | alt.LayerChart:
    """A stacked area over `minute` split by `color`."""
    fmt = axis_format(df["minute"]) if "minute" in df else TIME_FORMAT
    chart = (
        _marked(alt.Chart(df).mark_area(clip=True))
        .encode(
            x=time_x(fmt=fmt),
            y=alt.Y(
                f"{y}:Q", stack=True, title=unit, scale=alt.Scale(zero=True, domainMin=0, nice=True)
            ),
            color=alt.Color(f"{color}:N", title=color.replace("_", " "), legend=_bottom_legend()),
            tooltip=[
                time_tooltip(),
                alt.Tooltip(f"{color}:N"),
                alt.Tooltip(f"{y}:Q", format=",.3f"),
            ],
        )
        .properties(height=HEIGHT)
    )
    if in_progress is None:
        return chart
    band = in_progress_band(*in_progress, fmt=fmt)
    return cast(alt.LayerChart, alt.layer(band, chart))


def stacked_bars(df: pd.DataFrame, x: str, y: str, color: str, unit: str) -> alt.Chart:
    """Vertical bars of `y` per `x` (a day), stacked by `color`, with a legend that wraps."""
    return (
        _marked(alt.Chart(df).mark_bar())
        .encode(
            x=alt.X(f"{x}:N", title=f"{x} (UTC)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{y}:Q", stack=True, title=unit, scale=alt.Scale(zero=True, nice=True)),
            color=alt.Color(
                f"{color}:N",
                title=None,
                scale=alt.Scale(scheme="category20"),  # ten colours repeat over ~20 stores
                legend=_bottom_legend(columns=3, labelLimit=300),
            ),
            tooltip=[f"{x}:N", f"{color}:N", alt.Tooltip(f"{y}:Q", title=unit, format=",.1f")],
        )
        # Streamlit fits the legend into the chart's height: make room for its rows.
        .properties(height=HEIGHT + 60 + 22 * -(-df[color].nunique() // 3))
    )
