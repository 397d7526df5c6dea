"""`SearchBackend` on the official elasticsearch client (for clusters users point us at)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from indexers.search_backend import (
    BulkItemResult,
    BulkOp,
    SearchUnavailable,
    bulk_body,
    parse_bulk_response,
    retry_read,
)
from indexers.search_mappings import ilm_policy
from streamwatch.settings import Settings


def _status(exc: Exception) -> int | None:
    """HTTP status of an elasticsearch-py API error (None for a connection failure)."""
    if isinstance(exc, ApiError):
        return int(exc.meta.status)
    return None


class ElasticsearchBackend:
    """Elasticsearch through elasticsearch-py; retries are ours (the client's are off)."""

    name = "elasticsearch"

    def __init__(self, client: Elasticsearch) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchBackend:
        """Client for `settings.search_endpoint` with the configured credentials."""
        kwargs: dict[str, Any] = {}
        if settings.search_username and settings.search_password is not None:
            kwargs["basic_auth"] = (
                settings.search_username,
                settings.search_password.get_secret_value(),
            )
        if settings.search_api_key is not None:
            kwargs["api_key"] = settings.search_api_key.get_secret_value()
        client = Elasticsearch(
            settings.search_endpoint,
            request_timeout=settings.search_request_timeout_s,
            max_retries=0,
            retry_on_timeout=False,
            **kwargs,
        )
        return cls(client)

    def ping(self) -> bool:
        """True when the engine answers (cluster health: some builds answer `HEAD /` 405)."""
        try:
            self.client.cluster.health()
        except Exception:
            return False
        return True

    def bulk(self, ops: Sequence[BulkOp]) -> list[BulkItemResult]:
        """One `_bulk` request; every item's result (see `SearchBackend.bulk`)."""
        if not ops:
            return []
        try:
            # Pre-encoded NDJSON: the client's serializer forwards bytes as they are.
            response = self.client.bulk(operations=bulk_body(ops))  # type: ignore[arg-type]
        except TransportError as exc:  # connection refused / reset / timeout
            raise SearchUnavailable(f"elasticsearch unreachable: {exc}") from exc
        except ApiError as exc:
            if exc.meta.status == 429 or exc.meta.status >= 500:
                raise SearchUnavailable(f"elasticsearch answered {exc.meta.status}: {exc}") from exc
            raise
        return parse_bulk_response(ops, response.body)

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        """Create or replace a composable index template."""
        self.client.indices.put_index_template(name=name, **dict(body))

    def create_index(self, name: str) -> None:
        """Create an index unless it exists (templates supply mappings and aliases)."""
        if not self.client.indices.exists(index=name):
            try:
                self.client.indices.create(index=name)
            except ApiError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise

    def list_indices(self, pattern: str) -> list[str]:
        """Names of indices matching `pattern`."""
        try:
            answer = self.client.indices.get(index=pattern, expand_wildcards="open")
        except NotFoundError:
            return []
        return sorted(answer.body)

    def index_sizes(self, pattern: str) -> dict[str, int]:
        """Primary store bytes of each index matching `pattern`."""
        try:
            answer = self.client.indices.stats(index=pattern, metric="store")
        except NotFoundError:
            return {}
        body = getattr(answer, "body", answer)
        return {
            name: int(stats["primaries"]["store"]["size_in_bytes"])
            for name, stats in body.get("indices", {}).items()
        }

    def delete_index(self, name: str) -> None:
        """Delete an index; a missing one is fine."""
        with contextlib.suppress(NotFoundError):
            self.client.indices.delete(index=name)

    def delete_index_template(self, name: str) -> None:
        """Delete an index template; a missing one is fine."""
        with contextlib.suppress(NotFoundError):
            self.client.indices.delete_index_template(name=name)

    def refresh(self, index: str) -> None:
        """Make recent writes searchable."""
        retry_read(
            lambda: self.client.indices.refresh(index=index, ignore_unavailable=True), _status
        )

    def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run a search body (the same dict the OpenSearch backend sends)."""
        result: dict[str, Any] = retry_read(
            lambda: self.client.search(index=index, body=dict(body), ignore_unavailable=True),
            _status,
        ).body
        return result

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        """Matching documents; 0 for a missing index."""
        try:
            answer = retry_read(
                lambda: self.client.count(
                    index=index,
                    query=dict(query) if query is not None else None,
                    ignore_unavailable=True,
                ),
                _status,
            )
        except NotFoundError:
            return 0
        return int(answer["count"])

    def index_document(
        self, index: str, document: Mapping[str, Any], doc_id: str | None = None
    ) -> None:
        """Write one document."""
        self.client.index(index=index, document=dict(document), id=doc_id)

    def put_retention_policy(self, policy_id: str, settings: Settings) -> bool:
        """Install the ILM policy; False when ILM is not available."""
        try:
            self.client.ilm.put_lifecycle(name=policy_id, policy=ilm_policy(settings)["policy"])
        except ApiError as exc:
            if exc.meta.status in (400, 404, 405):
                return False
            raise
        return True

    def close(self) -> None:
        """Release connections."""
        self.client.close()
