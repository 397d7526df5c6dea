"""The dimensions QoE is rolled up, filtered, broken down and localised by.

One list for every box: the stream rollups count each session towards one value of each
dimension (the value of the session summary's field of the same name), the detector
localises incidents to one of them, the dashboards filter and break down by them, and the
alert rules may name them. Adding a dimension here is all those boxes need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Layer = Literal["delivery", "client", "content"]

ALL: Final = "all"  # the dimension (and value) of "all traffic"


@dataclass(frozen=True)
class Dimension:
    """One rollup dimension: a field of the session summary and the event envelope."""

    name: str
    label: str
    # What part of playback it describes: an incident on a delivery dimension also explains
    # network / CDN errors of the sessions it touched.
    layer: Layer


ROLLUP_DIMENSIONS: Final[tuple[Dimension, ...]] = (
    Dimension("region", "Region", "delivery"),
    Dimension("isp", "ISP", "delivery"),
    Dimension("oca_id", "OCA", "delivery"),
    Dimension("connection_type", "Connection", "delivery"),
    Dimension("device_type", "Device type", "client"),
    Dimension("os", "OS", "client"),
    Dimension("app_version", "App version", "client"),
    Dimension("title_id", "Title", "content"),
)

# Tie-break between equally narrow explanations of an incident (e.g. an ISP served by
# exactly one OCA): infrastructure before client, client before content, narrow before wide.
CAUSE_PRIORITY: Final[tuple[str, ...]] = (
    "oca_id",
    "isp",
    "region",
    "connection_type",
    "app_version",
    "os",
    "device_type",
    "title_id",
)

DIMENSIONS: Final[tuple[str, ...]] = tuple(d.name for d in ROLLUP_DIMENSIONS)
DIMENSION_LABELS: Final[dict[str, str]] = {d.name: d.label for d in ROLLUP_DIMENSIONS}
DELIVERY_DIMENSIONS: Final[frozenset[str]] = frozenset(
    d.name for d in ROLLUP_DIMENSIONS if d.layer == "delivery"
)
