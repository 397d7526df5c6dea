"""Index names the console reads and writes.

Events, sessions, incidents and the audit log are named by `indexers.naming` (one naming
scheme, isolated by prefix); the member directory is the console's own index under the same
prefix.
"""

from __future__ import annotations

from indexers import naming
from streamwatch.settings import Settings


def events(settings: Settings) -> str:
    """Alias over the daily event indices."""
    return naming.events_alias(settings)


def sessions(settings: Settings) -> str:
    """Session summaries."""
    return naming.sessions_index(settings)


def incidents(settings: Settings) -> str:
    """Detected incidents."""
    return naming.incidents_index(settings)


def audit(settings: Settings) -> str:
    """The support audit log (append-only)."""
    return naming.audit_index(settings)


def members(settings: Settings) -> str:
    """The member directory (the support console's own index)."""
    return f"{naming.index_prefix(settings)}support-members"
