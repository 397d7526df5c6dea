"""The console's access to the search engine, through `indexers.search_backend`.

Every request goes through the project's one `SearchBackend` interface (OpenSearch or
Elasticsearch). The console only sends bodies built in `support_console.queries`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexers.search_backend import SearchBackend, SearchUnavailable
from indexers.search_factory import make_backend
from streamwatch.settings import Settings

__all__ = ["SearchBackend", "SearchUnavailable", "hits", "open_backend", "total"]


def open_backend(settings: Settings) -> SearchBackend:
    """The configured search backend."""
    return make_backend(settings)


def hits(backend: SearchBackend, index: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `_source` of every hit (an absent index answers no hits, not an error)."""
    try:
        answer = backend.search(index, body)
    except SearchUnavailable:
        raise
    except Exception as exc:  # transport errors of either client: one failure for callers
        raise SearchUnavailable(f"search on {index} failed: {type(exc).__name__}: {exc}") from exc
    return [dict(h.get("_source") or {}) for h in answer.get("hits", {}).get("hits", [])]


def total(backend: SearchBackend, index: str) -> int:
    """Documents in `index` (0 when it does not exist)."""
    try:
        return backend.count(index)
    except Exception as exc:
        raise SearchUnavailable(f"count on {index} failed: {type(exc).__name__}: {exc}") from exc
