"""Make the search engine ready: templates, indices, alias, retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from indexers import naming
from indexers.search_backend import SearchBackend
from indexers.search_mappings import index_templates, retention_policy_id
from indexers.span_search import (
    ensure_span_indices,
    expired_span_indices,
    spans_index_pattern,
    spans_template_name,
)
from streamwatch.settings import Settings


@dataclass(frozen=True)
class SetupReport:
    """What `ensure_search_ready` did."""

    templates: tuple[str, ...]
    retention: str  # "ism" | "ilm" | "fallback: sink deletes daily indices"


def ensure_search_ready(
    backend: SearchBackend, settings: Settings, today: date | None = None
) -> SetupReport:
    """Install templates and the retention policy; create today's index and the fixed ones.

    Idempotent; every sink start calls it. Today's daily index is created so the read alias
    exists before the first event arrives (readers never see index_not_found).
    """
    has_policy = backend.put_retention_policy(retention_policy_id(settings), settings)
    templates = index_templates(settings)
    for name, body in templates.items():
        if has_policy and backend.name == "elasticsearch" and name.endswith("events"):
            # ILM attaches through the index setting (ISM attaches through ism_template).
            body = {**body, "template": {**body["template"]}}
            body["template"]["settings"] = {
                **body["template"]["settings"],
                "index.lifecycle.name": retention_policy_id(settings),
            }
        backend.put_index_template(name, body)
    day = today or datetime.now(UTC).date()
    for index in (
        naming.events_index(settings, day),
        naming.sessions_index(settings),
        naming.incidents_index(settings),
        naming.audit_index(settings),
    ):
        backend.create_index(index)
    ilm = retention_policy_id(settings) if has_policy and backend.name == "elasticsearch" else None
    ensure_span_indices(backend, settings, day, ilm)
    retention = (
        ("ilm" if backend.name == "elasticsearch" else "ism")
        if has_policy
        else "fallback: sink deletes daily indices"
    )
    return SetupReport(tuple(templates), retention)


def expired_indices(settings: Settings, indices: list[str], today: date) -> list[str]:
    """Daily event indices whose day is older than `search_retention_days` before `today`."""
    cutoff = today - timedelta(days=settings.search_retention_days)
    expired = []
    for index in indices:
        day = naming.daily_index_date(settings, index)
        if day is not None and day < cutoff:
            expired.append(index)
    return expired


def apply_retention(
    backend: SearchBackend, settings: Settings, today: date | None = None
) -> list[str]:
    """Delete expired daily event indices (the fallback when ISM/ILM is not installed)."""
    day = today or datetime.now(UTC).date()
    expired = expired_indices(
        settings, backend.list_indices(naming.events_index_pattern(settings)), day
    )
    expired += expired_span_indices(
        settings, backend.list_indices(spans_index_pattern(settings)), day
    )
    for index in expired:
        backend.delete_index(index)
    return expired


def drop_all(backend: SearchBackend, settings: Settings) -> None:
    """Delete every index and template of this prefix (tests and `--reset`)."""
    for name in [*index_templates(settings), spans_template_name(settings)]:
        backend.delete_index_template(name)
    for index in backend.list_indices(f"{naming.index_prefix(settings)}*"):
        backend.delete_index(index)
