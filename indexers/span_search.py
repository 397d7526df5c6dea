"""Spans in the search engine: daily `spans-YYYY.MM.DD` indices under one read alias.

The trace view of the support console reads the alias by `trace_id` (a play) or
`member_id` (a member's logins and other requests). Daily indices expire with the same
retention as the event indices: the ISM policy's template covers both patterns
(`search_mappings.ism_policy`), ILM attaches through this template's settings, and the
fallback deletes expired daily span indices like expired event indices.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from contract.columns import SEARCH_TYPES, parse_timestamp
from contract.span_tables import SPAN_COLUMNS
from indexers import naming
from indexers.deadletters import dead_letter_for
from indexers.decode import Decoded
from indexers.search_backend import BulkOp, SearchBackend
from ingest.deadletter import DeadLetter
from streamwatch.settings import Settings

_DAILY_FORMAT = "%Y.%m.%d"
_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}


def spans_alias(settings: Settings) -> str:
    """Alias over every daily span index: what the trace view queries."""
    return f"{naming.index_prefix(settings)}spans"


def spans_index_pattern(settings: Settings) -> str:
    """Wildcard matching every daily span index."""
    return f"{spans_alias(settings)}-*"


def spans_index(settings: Settings, day: date) -> str:
    """The daily index holding spans that started on `day` (UTC)."""
    return f"{spans_alias(settings)}-{day.strftime(_DAILY_FORMAT)}"


def spans_template_name(settings: Settings) -> str:
    """Name of the composable index template of the span indices."""
    return f"{naming.index_prefix(settings)}spans"


def spans_template(settings: Settings, ilm_policy: str | None = None) -> dict[str, Any]:
    """The `_index_template` body; `ilm_policy` attaches Elasticsearch ILM retention."""
    index_settings: dict[str, Any] = dict(_SETTINGS)
    if ilm_policy is not None:
        index_settings["index.lifecycle.name"] = ilm_policy
    return {
        "index_patterns": [spans_index_pattern(settings)],
        "priority": 200,
        "template": {
            "settings": index_settings,
            "mappings": {
                "dynamic": False,
                "properties": {c.name: dict(SEARCH_TYPES[c.kind]) for c in SPAN_COLUMNS},
            },
            "aliases": {spans_alias(settings): {}},
        },
        "_meta": {"owner": "streamwatch.indexers", "family": "spans"},
    }


def ensure_span_indices(
    backend: SearchBackend, settings: Settings, day: date, ilm_policy: str | None
) -> None:
    """Install the template and create `day`'s index, so the alias exists before any span."""
    backend.put_index_template(spans_template_name(settings), spans_template(settings, ilm_policy))
    backend.create_index(spans_index(settings, day))


def span_operation(settings: Settings, decoded: Decoded) -> BulkOp | DeadLetter:
    """`create` into the daily index of the span's start; `_id` = trace_id|span_id."""
    try:
        when = parse_timestamp(decoded.row.get("start_time"))
    except (TypeError, ValueError) as exc:
        when, error = None, str(exc)
    else:
        error = "start_time missing"
    if when is None:
        return dead_letter_for(decoded.record, "bad_start_time", error, "sink.search")
    return BulkOp("create", spans_index(settings, when.date()), decoded.doc_id, decoded.row)


def expired_span_indices(settings: Settings, indices: list[str], today: date) -> list[str]:
    """Daily span indices older than `search_retention_days` before `today`."""
    head = f"{spans_alias(settings)}-"
    cutoff = today - timedelta(days=settings.search_retention_days)
    expired = []
    for index in indices:
        if not index.startswith(head):
            continue
        try:
            day = date(*(int(p) for p in index[len(head) :].split(".")))
        except (TypeError, ValueError):
            continue
        if day < cutoff:
            expired.append(index)
    return expired
