"""Small builders for Grafana dashboard JSON (schemaVersion 39 layout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
PANEL_W, PANEL_H, GRID_W = 12, 8, 24


@dataclass(frozen=True)
class Datasource:
    """A datasource the dashboards reference by uid (provisioned alongside them)."""

    name: str
    uid: str
    type: str
    url: str
    access: str = "proxy"
    json_data: dict[str, Any] = field(default_factory=dict)
    database: str = ""

    def ref(self) -> dict[str, str]:
        """The `{"type", "uid"}` reference panels and targets use."""
        return {"type": self.type, "uid": self.uid}

    def payload(self) -> dict[str, Any]:
        """Body of POST/PUT /api/datasources."""
        body: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "type": self.type,
            "url": self.url,
            "access": self.access,
            "isDefault": False,
            "jsonData": self.json_data,
        }
        if self.database:
            body["database"] = self.database
        return body


EXPRESSION = {"type": "__expr__", "uid": "__expr__"}


def panel(
    title: str,
    ds: Datasource,
    targets: list[dict[str, Any]],
    unit: str,
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    """A panel without id/gridPos (the dashboard lays panels out)."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": ds.ref(),
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], tags: list[str]
) -> dict[str, Any]:
    """A dashboard with unique panel ids and a two-column, non-overlapping grid."""
    laid: list[dict[str, Any]] = []
    for i, p in enumerate(panels):
        laid.append(
            {
                **p,
                "id": i + 1,
                "gridPos": {
                    "x": (i % 2) * PANEL_W,
                    "y": (i // 2) * PANEL_H,
                    "w": PANEL_W,
                    "h": PANEL_H,
                },
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": tags,
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "editable": True,
        "panels": laid,
        "templating": {"list": []},
        "annotations": {"list": []},
    }
