"""Links into the support console, filtered to the members an incident hit.

ADAPTER: support_console/ owns its URL and query parameters. Until it publishes a link
builder, this uses `?incident=<id>&member=<id>&member=<id>...` on the console's URL; swap
in support_console's function when it lands.
"""

from __future__ import annotations

from urllib.parse import urlencode

from streamwatch.settings import Settings


def console_url(settings: Settings) -> str:
    """Base URL of the support console."""
    return (
        settings.support_console_public_url or f"http://127.0.0.1:{settings.support_console_port}"
    )


def affected_members_url(
    settings: Settings, incident_id: str, member_ids: list[str], max_members: int = 200
) -> str:
    """A console URL listing the incident's affected members (capped to keep URLs short)."""
    try:
        from support_console import links  # type: ignore[attr-defined]

        return str(links.affected_members_url(settings, incident_id, member_ids))
    except (ImportError, AttributeError):
        pass
    query = [("incident", incident_id)] + [("member", m) for m in member_ids[:max_members]]
    return f"{console_url(settings)}/?{urlencode(query)}"
