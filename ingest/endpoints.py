"""The collector's routes, as clients address them (the stub, SDK tests, benchmarks)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

EVENTS_PATH = "/v1/events"
CMCD_PATH = "/v1/cmcd"


def events_url(url: str) -> str:
    """The events endpoint for `url`, which may be the collector's base URL or the endpoint.

    `http://127.0.0.1:8088` and `http://127.0.0.1:8088/` become
    `http://127.0.0.1:8088/v1/events`; a URL with any other path is taken as given (a
    collector behind a proxy may live under a prefix).
    """
    parts = urlsplit(url.strip())
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, EVENTS_PATH, parts.query, parts.fragment))
    return url.strip()
