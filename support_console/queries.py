"""What the agent typed, checked; and every query body the console sends.

Two rules keep agent input from ever being read as query syntax:

1. input is validated first: an id is letters, digits and `. _ : -` (any script), an email
   is hashed before it goes anywhere; anything else (`"*" OR 1=1`, `member_id:*`, 10 kB of
   text, control characters) is refused with a message and never reaches the engine;
2. the bodies below use only `term`, `terms`, `range`, `exists` and `bool` on keyword and
   date fields, where a value is compared as a whole: `*` is a literal character there, not
   a wildcard. There is no `query_string`, `simple_query_string`, `wildcard`, `prefix`,
   `regexp`, `fuzzy` or `match` anywhere in the console.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr

from indexers.search_queries import filtered_in_time, time_range
from support_console.masking import email_hash, looks_like_email

MAX_INPUT_CHARS = 256
_ID = re.compile(r"[\w.:\-]{1,128}")

# Query clause types the console may send; tests assert nothing else ever leaves.
ALLOWED_CLAUSES: frozenset[str] = frozenset({"term", "terms", "range", "exists", "bool"})

# The sessions table's columns a session's start is read from (readers.session_view: play
# requested, else first event): a range matches a session by either of them.
SESSION_TIME_FIELDS: tuple[str, ...] = ("play_requested_at", "first_event_at")

DRILLDOWN_EVENT_TYPES: tuple[str, ...] = (
    "play_requested",
    "first_frame",
    "heartbeat",
    "bitrate_change",
    "rebuffer_start",
    "rebuffer_end",
    "error",
    "playback_end",
)

Body = dict[str, Any]


class InvalidInput(ValueError):
    """Agent input that is not an id or an email; the message is shown to the agent."""


@dataclass(frozen=True)
class ParsedInput:
    """A validated search: an identifier, or an email already reduced to its hash."""

    kind: Literal["id", "email"]
    value: str = ""
    display: str = ""  # what may be echoed back to the agent (never a raw email)


def _preview(text: str, limit: int = 40) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[:limit] + "…"


def parse_input(text: str | None, salt: SecretStr) -> ParsedInput:
    """Validate what the agent typed; raises InvalidInput with a message for them."""
    if text is None or not text.strip():
        raise InvalidInput(
            "Type a member id, profile id, session id, device id or the member's email."
        )
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidInput(
            f"That is {len(text):,} characters: too long for an id or an email "
            f"(at most {MAX_INPUT_CHARS}). Paste only the id."
        )
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise InvalidInput("That contains invisible control characters; type the id again.")
    if looks_like_email(cleaned):
        from support_console.masking import mask_email

        return ParsedInput("email", email_hash(cleaned, salt), mask_email(cleaned))
    if _ID.fullmatch(cleaned):
        return ParsedInput("id", cleaned, cleaned)
    raise InvalidInput(
        f"“{_preview(cleaned)}” is not an id or an email. Ids contain only letters, digits "
        "and . _ : - (search is exact; wildcards and query syntax are not supported)."
    )


# --- bodies ------------------------------------------------------------------------------


def _term(field: str, value: str) -> Body:
    return {"term": {field: value}}


def _any_of(*clauses: Body) -> Body:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def member_by_id(value: str) -> Body:
    """Directory entry whose member id, a profile or a device is `value`."""
    return {
        "size": 2,
        "query": _any_of(
            _term("member_id", value), _term("profiles", value), _term("device_ids", value)
        ),
    }


def member_by_email_hash(hashed: str) -> Body:
    """Directory entry with this salted email hash."""
    return {"size": 2, "query": {"bool": {"filter": [_term("email_hash", hashed)]}}}


def members_by_ids(member_ids: list[str]) -> Body:
    """Directory entries of given member ids."""
    return {
        "size": len(member_ids),
        "query": {"bool": {"filter": [{"terms": {"member_id": member_ids}}]}},
    }


def member_of_activity(value: str) -> Body:
    """A session whose member, profile, session or device id is `value`: who it belongs to.

    Used when the directory has no entry (a member not loaded yet, a session id pasted from a
    ticket).
    """
    return {
        "size": 1,
        "_source": ["member_id"],
        "query": _any_of(
            _term("session_id", value),
            _term("member_id", value),
            _term("profile_id", value),
            _term("device_id", value),
        ),
    }


def events_of_member(
    member_id: str, start: datetime, end: datetime, event_types: tuple[str, ...], size: int
) -> Body:
    """A member's events of `event_types` in [start, end], oldest first (no directory needed)."""
    filters = [
        _term("member_id", member_id),
        {"terms": {"event_type": list(event_types)}},
        time_range("event_time", start, end, until_inclusive=True),
    ]
    return filtered_in_time(filters, "event_time", size=size, order="asc", may_be_unmapped=True)


def _time_range(start: datetime, end: datetime) -> Body:
    return _any_of(*(time_range(f, start, end, until_inclusive=True) for f in SESSION_TIME_FIELDS))


def sessions_of_member(member_id: str, start: datetime, end: datetime, size: int) -> Body:
    """The member's sessions that started in [start, end], newest first."""
    filters = [_term("member_id", member_id), _time_range(start, end)]
    return filtered_in_time(filters, "first_event_at", size=size, may_be_unmapped=True)


def incidents_for_values(values: list[str], size: int = 500) -> Body:
    """Incidents whose root-cause value is one of `values` (time overlap is checked after)."""
    return {
        "size": size,
        "query": {"bool": {"filter": [{"terms": {"value": values}}]}},
    }


def session_events(session_id: str, size: int = 5000) -> Body:
    """A session's playback-state events in time order (for the drill-down)."""
    filters = [
        _term("session_id", session_id),
        {"terms": {"event_type": list(DRILLDOWN_EVENT_TYPES)}},
    ]
    return filtered_in_time(filters, "event_time", size=size, order="asc", may_be_unmapped=True)


def audit_of(field: str, value: str, size: int = 100) -> Body:
    """Audit records with `field` == `value` (tests and reviews of who looked)."""
    return {"size": size, "query": {"bool": {"filter": [_term(field, value)]}}}


def clause_types(body: Any) -> set[str]:
    """Every clause name inside a query (to check that only ALLOWED_CLAUSES are used)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("bool",) or key in ALLOWED_CLAUSES or key.endswith("query_string"):
                    found.add(key)
                if key in ("wildcard", "prefix", "regexp", "fuzzy", "match", "match_phrase"):
                    found.add(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body.get("query", {}) if isinstance(body, dict) else body)
    return found
