"""Names of everything the indexers create: indices, aliases, consumer groups, directories.

All of them derive from `Settings` so that a `topic_prefix` (a tenant, a test run) isolates
indices, consumer groups and warehouse files exactly as it isolates topics.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from streamwatch.settings import Settings

_INDEX_UNSAFE = re.compile(r"[^a-z0-9._-]")
_DAILY_FORMAT = "%Y.%m.%d"


def index_prefix(settings: Settings) -> str:
    """Prefix of every index, alias and template (lower-case; engines reject upper case)."""
    raw = settings.search_index_prefix
    if raw is None:
        raw = f"streamwatch-{settings.topic_prefix}"
    return _INDEX_UNSAFE.sub("-", raw.lower())


def events_alias(settings: Settings) -> str:
    """Alias over all daily event indices: what readers query."""
    return f"{index_prefix(settings)}events"


def events_index_pattern(settings: Settings) -> str:
    """Wildcard matching every daily event index."""
    return f"{events_alias(settings)}-*"


def events_index(settings: Settings, day: date) -> str:
    """The daily index holding events whose `event_time` falls on `day` (UTC)."""
    return f"{events_alias(settings)}-{day.strftime(_DAILY_FORMAT)}"


def daily_index_date(settings: Settings, index: str) -> date | None:
    """The day of a daily event index, or None when `index` is not one of ours."""
    head = f"{events_alias(settings)}-"
    if not index.startswith(head):
        return None
    try:
        return datetime.strptime(index[len(head) :], _DAILY_FORMAT).date()
    except ValueError:
        return None


def sessions_index(settings: Settings) -> str:
    """Index of session summaries (one document per session, latest wins)."""
    return f"{index_prefix(settings)}sessions"


def incidents_index(settings: Settings) -> str:
    """Index of incidents (one document per incident, latest wins)."""
    return f"{index_prefix(settings)}incidents"


def audit_index(settings: Settings) -> str:
    """Index of the support audit log (append-only)."""
    return f"{index_prefix(settings)}support-audit"


def consumer_group(settings: Settings, sink: str) -> str:
    """Consumer group of one sink; each sink has its own so one outage never stalls another."""
    return f"{settings.topic_prefix}streamwatch.sink.{sink}"


def warehouse_root(settings: Settings) -> Path:
    """Root directory of the Parquet warehouse."""
    return settings.warehouse_dir or settings.data_dir / "warehouse"
