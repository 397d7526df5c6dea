"""Pick and connect the search backend the settings name.

Kept apart from `indexers.search_backend` (the interface) so the interface imports none of
its implementations: both backends import the interface, the factory imports both.
"""

from __future__ import annotations

from indexers.elasticsearch_backend import ElasticsearchBackend
from indexers.opensearch_backend import OpenSearchBackend
from indexers.search_backend import SearchBackend
from streamwatch.settings import Settings


def make_backend(settings: Settings) -> SearchBackend:
    """The backend chosen by `settings.search_backend`, connected to `search_endpoint`."""
    if settings.search_backend == "elasticsearch":
        return ElasticsearchBackend.from_settings(settings)
    return OpenSearchBackend.from_settings(settings)
