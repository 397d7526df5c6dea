"""`SearchBackend` on opensearch-py (the default engine)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from indexers.search_backend import (
    BulkItemResult,
    BulkOp,
    SearchUnavailable,
    bulk_body,
    parse_bulk_response,
    retry_read,
)
from indexers.search_mappings import ism_policy
from streamwatch.settings import Settings


def _status(exc: Exception) -> int | None:
    """HTTP status of an opensearch-py error (None for a connection failure)."""
    if isinstance(exc, TransportError) and isinstance(exc.status_code, int):
        return exc.status_code
    return None


class OpenSearchBackend:
    """OpenSearch through opensearch-py; retries are ours (the client's are switched off)."""

    name = "opensearch"

    def __init__(self, client: OpenSearch) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenSearchBackend:
        """Client for `settings.search_endpoint` with the configured credentials."""
        kwargs: dict[str, Any] = {}
        if settings.search_username and settings.search_password is not None:
            kwargs["http_auth"] = (
                settings.search_username,
                settings.search_password.get_secret_value(),
            )
        if settings.search_api_key is not None:
            kwargs["headers"] = {
                "Authorization": f"ApiKey {settings.search_api_key.get_secret_value()}"
            }
        client = OpenSearch(
            hosts=[settings.search_endpoint],
            timeout=settings.search_request_timeout_s,
            max_retries=0,
            retry_on_timeout=False,
            http_compress=False,
            **kwargs,
        )
        return cls(client)

    def ping(self) -> bool:
        """True when the engine answers."""
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def bulk(self, ops: Sequence[BulkOp]) -> list[BulkItemResult]:
        """One `_bulk` request; every item's result (see `SearchBackend.bulk`)."""
        if not ops:
            return []
        try:
            response = self.client.bulk(body=bulk_body(ops))
        except OSConnectionError as exc:  # refused, reset, timeout
            raise SearchUnavailable(f"opensearch unreachable: {exc}") from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 503
            if status == 429 or status >= 500:
                raise SearchUnavailable(f"opensearch answered {status}: {exc.error}") from exc
            raise
        return parse_bulk_response(ops, response)

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        """Create or replace a composable index template."""
        self.client.indices.put_index_template(name=name, body=dict(body))

    def create_index(self, name: str) -> None:
        """Create an index unless it exists (templates supply mappings and aliases)."""
        if not self.client.indices.exists(index=name):
            try:
                self.client.indices.create(index=name)
            except TransportError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise

    def list_indices(self, pattern: str) -> list[str]:
        """Names of indices matching `pattern`."""
        try:
            answer = self.client.indices.get(index=pattern, params={"expand_wildcards": "open"})
        except NotFoundError:
            return []
        return sorted(answer)

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
            lambda: self.client.indices.refresh(index=index, params={"ignore_unavailable": "true"}),
            _status,
        )

    def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run a search body."""
        result: dict[str, Any] = retry_read(
            lambda: self.client.search(
                index=index, body=dict(body), params={"ignore_unavailable": "true"}
            ),
            _status,
        )
        return result

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        """Matching documents; 0 for a missing index."""
        body = {"query": dict(query)} if query is not None else None
        try:
            answer = retry_read(
                lambda: self.client.count(
                    index=index, body=body, params={"ignore_unavailable": "true"}
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
        self.client.index(index=index, body=dict(document), id=doc_id)

    def put_retention_policy(self, policy_id: str, settings: Settings) -> bool:
        """Install the ISM policy; False when the ISM plugin is not installed."""
        try:
            self.client.transport.perform_request(
                "PUT", f"/_plugins/_ism/policies/{policy_id}", body=ism_policy(settings)
            )
        except TransportError as exc:
            if exc.status_code in (400, 404, 405) and "no handler" in str(exc.error) + str(
                exc.info
            ):
                return False
            if exc.status_code == 409:  # exists: replacing needs seq_no; the body is stable
                return True
            raise
        return True

    def close(self) -> None:
        """Release connections."""
        self.client.close()
