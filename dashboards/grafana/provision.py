"""Create or update the datasources and dashboards in Grafana (idempotent, by uid/name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.grafana.dashboards import all_dashboards, datasources
from streamwatch.settings import Settings


class _DatasourceApi(Protocol):
    def get_datasource_by_name(self, datasource_name: str) -> dict[str, Any]: ...
    def create_datasource(self, datasource: dict[str, Any]) -> dict[str, Any]: ...
    def update_datasource(
        self, datasource_id: int, datasource: dict[str, Any]
    ) -> dict[str, Any]: ...


class _SearchApi(Protocol):
    def search_dashboards(
        self, *, dashboard_uids: list[str], type_: str
    ) -> list[dict[str, Any]]: ...


class _DashboardApi(Protocol):
    def update_dashboard(self, dashboard: dict[str, Any]) -> dict[str, Any]: ...


class _Grafana(Protocol):
    """The part of `GrafanaApi` used here, with the JSON shapes Grafana's HTTP API returns."""

    @property
    def datasource(self) -> _DatasourceApi: ...
    @property
    def search(self) -> _SearchApi: ...
    @property
    def dashboard(self) -> _DashboardApi: ...


@dataclass
class ProvisionResult:
    """What provisioning did, for the CLI to print and tests to check."""

    datasources: dict[str, str] = field(default_factory=dict)  # name -> created|updated
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> url/status

    def lines(self) -> list[str]:
        """Human-readable summary."""
        return [f"datasource {n}: {s}" for n, s in self.datasources.items()] + [
            f"dashboard {u}: {s}" for u, s in self.dashboards.items()
        ]


def _api(url: str, token: str | None) -> _Grafana:
    # cast: grafana-client's element methods (and from_url's return) are unannotated, so
    # mypy sees Any; _Grafana states the signatures of the calls made below.
    return cast(_Grafana, GrafanaApi.from_url(url=url, credential=token))


def _upsert_datasource(api: _Grafana, payload: dict[str, Any]) -> str:
    try:
        existing = api.datasource.get_datasource_by_name(payload["name"])
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(payload)
        return "created"
    api.datasource.update_datasource(existing["id"], {**payload, "id": existing["id"]})
    return "updated"


def provision(settings: Settings, url: str, token: str | None) -> ProvisionResult:
    """Upsert datasources by name and dashboards by uid (overwrite=True: no duplicates)."""
    api = _api(url, token)
    result = ProvisionResult()
    for ds in datasources(settings):
        result.datasources[ds.name] = _upsert_datasource(api, ds.payload())
    for dash in all_dashboards(settings):
        existing = api.search.search_dashboards(dashboard_uids=[dash["uid"]], type_="dash-db")
        body = {
            "dashboard": {**dash, "id": None},
            "overwrite": True,  # same uid: update in place
            "message": "provisioned by streamwatch",
        }
        resp = api.dashboard.update_dashboard(body)
        verb = "updated" if existing else "created"
        result.dashboards[dash["uid"]] = f"{verb} v{resp.get('version', '?')} {resp.get('url', '')}"
    return result
