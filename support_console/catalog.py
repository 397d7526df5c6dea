"""Each error with what it means and what the agent should do, from the error catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ingest.error_catalog import ErrorCatalog, load_catalog
from support_console.models import ErrorView

# Shown for codes the catalog does not know (a newer player, a typo in a device build):
# the agent still gets a next step instead of a blank.
_UNKNOWN_MEANING = "This code is not in the error catalog (a newer or unusual player build)."
_UNKNOWN_ACTION = (
    "Ask the member to restart the app and update it; if it persists, escalate to tier 2 "
    "with the session id."
)


def explain(
    *,
    code: str,
    category: str,
    severity: Literal["fatal", "warning"],
    at: datetime,
    http_status: int | None = None,
    catalog: ErrorCatalog | None = None,
) -> ErrorView:
    """An error as the agent sees it: code, when, meaning and next step."""
    entry = (catalog or load_catalog()).get(code)
    if entry is None:
        return ErrorView(
            code=code,
            category=category,
            severity=severity,
            at=at,
            http_status=http_status,
            title="Unknown error code",
            meaning=_UNKNOWN_MEANING,
            agent_action=_UNKNOWN_ACTION,
            in_catalog=False,
        )
    return ErrorView(
        code=code,
        category=category or entry.category,
        severity=severity,
        at=at,
        http_status=http_status if http_status is not None else entry.http_status,
        title=entry.title,
        meaning=entry.meaning,
        agent_action=entry.agent_action,
        in_catalog=True,
    )
