"""The local stack: every server streamwatch runs on this machine, brought up together."""

from __future__ import annotations

from infra.alertmanager_server import AlertmanagerServer
from infra.component import Component, ComponentStatus
from infra.elasticsearch_server import ElasticsearchServer
from infra.kafka_server import KafkaServer
from infra.opensearch_server import OpenSearchServer
from infra.process import require_free_ports
from infra.prometheus_server import PrometheusServer
from streamwatch.settings import Settings


def components(settings: Settings) -> list[Component]:
    """The servers in start order (the search engine is the one `search_backend` names)."""
    search: Component = (
        ElasticsearchServer(settings)
        if settings.search_backend == "elasticsearch"
        else OpenSearchServer(settings)
    )
    return [
        KafkaServer(settings),
        search,
        PrometheusServer(settings),
        AlertmanagerServer(settings),
    ]


def fetch_all(settings: Settings) -> None:
    """Fetch every server (idempotent; used by `make setup`).

    Both search engines are fetched whatever the backend: the tests run against both.
    """
    for component in components(settings):
        component.fetch()
    if settings.search_backend != "elasticsearch":
        ElasticsearchServer(settings).fetch()


def up(settings: Settings) -> dict[str, bool]:
    """Start what is not running; returns component -> whether this call started it.

    Every port is checked before anything starts, so a taken port fails fast and leaves
    nothing half-started behind.
    """
    comps = components(settings)
    for c in comps:
        if c.process.pid() is None and not c.is_healthy():
            require_free_ports(c.name, "127.0.0.1", c.ports())
    return {c.name: c.up() for c in comps}


def down(settings: Settings, only: set[str] | None = None) -> dict[str, bool]:
    """Stop servers (all, or those named in `only`); returns component -> stopped."""
    return {
        c.name: c.down() for c in reversed(components(settings)) if only is None or c.name in only
    }


def status(settings: Settings) -> list[ComponentStatus]:
    """Each server's state."""
    return [c.status() for c in components(settings)]
