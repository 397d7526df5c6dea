"""Grafana as code: dashboard JSON structure, and provisioning against a local HTTP server
that answers as Grafana's HTTP API documents and records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from dashboards.grafana.dashboards import all_dashboards, datasources
from dashboards.grafana.model import SCHEMA_VERSION
from dashboards.grafana.provision import provision
from streamwatch.settings import Settings


class FakeGrafana:
    """State of the fake: datasources by id, dashboards by uid, the request log."""

    def __init__(self) -> None:
        self.datasources: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.auth: list[str | None] = []


class _GrafanaHandler(BaseHTTPRequestHandler):
    state: FakeGrafana

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(n) or b"{}")

    def _record(self) -> tuple[str, dict[str, list[str]]]:
        url = urlparse(self.path)
        self.state.requests.append((self.command, url.path))
        self.state.auth.append(self.headers.get("Authorization"))
        return url.path, parse_qs(url.query)

    def do_GET(self) -> None:
        path, query = self._record()
        if path.startswith("/api/datasources/name/"):
            name = unquote(path.rsplit("/", 1)[1])
            for ds in self.state.datasources.values():
                if ds["name"] == name:
                    return self._send(200, ds)
            return self._send(404, {"message": "Data source not found"})
        if path == "/api/search":
            uids = query.get("dashboardUIDs", [])
            hits = [
                {"uid": u, "title": d["title"], "type": "dash-db"}
                for u, d in self.state.dashboards.items()
                if not uids or u in uids
            ]
            return self._send(200, hits)
        return self._send(404, {"message": "not found"})

    def do_POST(self) -> None:
        path, _ = self._record()
        body = self._body()
        if path == "/api/datasources":
            if any(d["name"] == body["name"] for d in self.state.datasources.values()):
                return self._send(409, {"message": "data source with the same name exists"})
            new_id = len(self.state.datasources) + 1
            self.state.datasources[new_id] = {**body, "id": new_id}
            return self._send(200, {"id": new_id, "message": "Datasource added"})
        if path == "/api/dashboards/db":
            dash = body["dashboard"]
            uid = dash["uid"]
            old = self.state.dashboards.get(uid)
            if old is not None and not body.get("overwrite"):
                return self._send(412, {"status": "name-exists"})
            version = 1 if old is None else old["version"] + 1
            self.state.dashboards[uid] = {**dash, "version": version}
            return self._send(
                200, {"uid": uid, "status": "success", "version": version, "url": f"/d/{uid}"}
            )
        return self._send(404, {"message": "not found"})

    def do_PUT(self) -> None:
        path, _ = self._record()
        body = self._body()
        if path.startswith("/api/datasources/"):
            ds_id = int(path.rsplit("/", 1)[1])
            if ds_id not in self.state.datasources:
                return self._send(404, {"message": "not found"})
            self.state.datasources[ds_id] = {**body, "id": ds_id}
            return self._send(200, {"id": ds_id, "message": "Datasource updated"})
        return self._send(404, {"message": "not found"})


def _handler(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_GrafanaHandler,), {"state": state})


@pytest.fixture()
def grafana() -> Iterator[tuple[str, FakeGrafana]]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return not (
        a["x"] + a["w"] <= b["x"]
        or b["x"] + b["w"] <= a["x"]
        or a["y"] + a["h"] <= b["y"]
        or b["y"] + b["h"] <= a["y"]
    )


def test_dashboard_json_is_well_formed() -> None:
    settings = Settings()
    known = {ds.uid for ds in datasources(settings)} | {"__expr__"}
    dashes = all_dashboards(settings)
    assert len({d["uid"] for d in dashes}) == len(dashes)
    for d in dashes:
        assert d["schemaVersion"] == SCHEMA_VERSION
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        grids = [p["gridPos"] for p in d["panels"]]
        for i, a in enumerate(grids):
            assert a["x"] >= 0 and a["x"] + a["w"] <= 24
            for b in grids[i + 1 :]:
                assert not _overlaps(a, b), (a, b)
        for p in d["panels"]:
            assert p["datasource"]["uid"] in known
            assert p["fieldConfig"]["defaults"]["unit"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] in known
        json.dumps(d)  # serializable


def test_provisioning_twice_updates_in_place(grafana: tuple[str, FakeGrafana]) -> None:
    url, state = grafana
    settings = Settings()
    first = provision(settings, url=url, token="sekret")
    assert set(first.datasources.values()) == {"created"}
    assert all(s.startswith("created v1") for s in first.dashboards.values())
    n_ds, n_dash = len(state.datasources), len(state.dashboards)
    assert n_ds == 2 and n_dash == 2

    second = provision(settings, url=url, token="sekret")
    assert set(second.datasources.values()) == {"updated"}
    assert all(s.startswith("updated v2") for s in second.dashboards.values())
    assert (len(state.datasources), len(state.dashboards)) == (n_ds, n_dash)  # no duplicates
    posts = [p for m, p in state.requests if m == "POST" and p == "/api/datasources"]
    puts = [p for m, p in state.requests if m == "PUT" and p.startswith("/api/datasources/")]
    assert (len(posts), len(puts)) == (2, 2)
    assert all(a == "Bearer sekret" for a in state.auth)
    uids = {ds["uid"] for ds in state.datasources.values()}
    for dash in state.dashboards.values():
        for p in dash["panels"]:
            assert p["datasource"]["uid"] in uids
