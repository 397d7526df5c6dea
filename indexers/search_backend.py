"""The small interface both search engines sit behind, and the bulk item outcome model.

Callers build request bodies once (`search_mappings`, `search_queries`) and send them through
a `SearchBackend`; only client construction and the retention-policy API differ per engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import orjson

from indexers.retry import RetryPolicy
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings

BulkAction = Literal["create", "index"]
T = TypeVar("T")

# Reads retry briefly on 429/5xx: an index created a moment ago (a new day's events index)
# answers 503 search_phase_execution_exception until its primary shard has started.
READ_RETRY = RetryPolicy(initial_s=0.1, max_s=1.0, max_attempts=8)


def retry_read(
    call: Callable[[], T],
    status_of: Callable[[Exception], int | None],
    policy: RetryPolicy = READ_RETRY,
) -> T:
    """Run a read, retrying per `policy` while the engine answers 429 or 5xx.

    `status_of` maps an engine client's exception to its HTTP status (None: not an HTTP
    answer, re-raised at once). The last failure is re-raised when the policy gives up.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            status = status_of(exc)
            transient = status is not None and (status == 429 or status >= 500)
            if not transient or policy.gives_up(attempt):
                raise
            time.sleep(policy.delay(attempt))
            attempt += 1


class SearchUnavailable(StreamwatchError):
    """The engine could not be reached or answered the whole request with 429/5xx."""


@dataclass(frozen=True)
class BulkOp:
    """One bulk operation: `create` (fails with 409 if the id exists) or `index` (upsert)."""

    action: BulkAction
    index: str
    doc_id: str | None
    document: Mapping[str, Any]


@dataclass(frozen=True)
class BulkItemResult:
    """The engine's answer for one bulk item."""

    status: int
    error_type: str | None = None
    error_reason: str | None = None

    @property
    def ok(self) -> bool:
        """Written now."""
        return 200 <= self.status < 300

    @property
    def already_done(self) -> bool:
        """409 on a create with our own id: an earlier delivery already wrote it."""
        return self.status == 409

    @property
    def retryable(self) -> bool:
        """Engine overloaded (429) or failing (5xx): retry later with backoff."""
        return self.status == 429 or self.status >= 500

    @property
    def rejected(self) -> bool:
        """Any other 4xx (mapping conflict, bad document): retrying cannot help."""
        return 400 <= self.status < 500 and not self.already_done and self.status != 429


class SearchBackend(Protocol):
    """What streamwatch needs from a search engine."""

    name: str

    def ping(self) -> bool:
        """True when the engine answers."""
        ...

    def bulk(self, ops: Sequence[BulkOp]) -> list[BulkItemResult]:
        """Send `ops` in one `_bulk`; one result per op, in order.

        Raises `SearchUnavailable` when the request as a whole failed (connection, 429, 5xx).
        """
        ...

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        """Create or replace a composable index template."""
        ...

    def create_index(self, name: str) -> None:
        """Create an index (from matching templates) unless it exists."""
        ...

    def list_indices(self, pattern: str) -> list[str]:
        """Names of indices matching `pattern`."""
        ...

    def delete_index(self, name: str) -> None:
        """Delete an index (missing is fine)."""
        ...

    def index_sizes(self, pattern: str) -> dict[str, int]:
        """Primary store bytes of each index matching `pattern` (capacity's storage growth)."""
        ...

    def delete_index_template(self, name: str) -> None:
        """Delete an index template (missing is fine)."""
        ...

    def refresh(self, index: str) -> None:
        """Make recent writes searchable now (tests, benchmarks, CLI)."""
        ...

    def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run a search body; the raw response."""
        ...

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        """Number of documents matching `query` (all when None); 0 when the index is missing."""
        ...

    def index_document(
        self, index: str, document: Mapping[str, Any], doc_id: str | None = None
    ) -> None:
        """Write one document (the audit log)."""
        ...

    def put_retention_policy(self, policy_id: str, settings: Settings) -> bool:
        """Install ISM (OpenSearch) / ILM (Elasticsearch) retention; False if unsupported."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def bulk_lines(ops: Sequence[BulkOp]) -> list[dict[str, Any]]:
    """The `_bulk` body (action line, source line, ...) shared by both clients."""
    lines: list[dict[str, Any]] = []
    for op in ops:
        meta: dict[str, Any] = {"_index": op.index}
        if op.doc_id is not None:
            meta["_id"] = op.doc_id
        lines.append({op.action: meta})
        lines.append(dict(op.document))
    return lines


def bulk_body(ops: Sequence[BulkOp]) -> bytes:
    """The `_bulk` body as NDJSON bytes, encoded with orjson (the client sends it as is).

    Encoding is a fifth of the search sink's client-side time with the clients' own `json`
    serializers. A value orjson refuses (an integer beyond 64 bits) falls back to `json`.
    """
    parts: list[bytes] = []
    for line in bulk_lines(ops):
        try:
            parts.append(orjson.dumps(line))
        except TypeError:
            parts.append(json.dumps(line, default=str).encode())
    parts.append(b"")
    return b"\n".join(parts)


def parse_bulk_response(ops: Sequence[BulkOp], response: Mapping[str, Any]) -> list[BulkItemResult]:
    """Per-item results of a `_bulk` response, checked one by one (a 200 can hide failures)."""
    items = response.get("items") or []
    if len(items) != len(ops):
        raise SearchUnavailable(f"bulk answered {len(items)} items for {len(ops)} operations")
    results: list[BulkItemResult] = []
    for item in items:
        (body,) = item.values()
        error = body.get("error")
        if isinstance(error, Mapping):
            caused = error.get("caused_by") or {}
            reason = str(error.get("reason", ""))
            if caused.get("reason"):
                reason = f"{reason}: {caused.get('reason')}"
            results.append(BulkItemResult(int(body["status"]), str(error.get("type")), reason))
        else:
            results.append(BulkItemResult(int(body["status"]), None, str(error) if error else None))
    return results
