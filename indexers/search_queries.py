"""Query bodies for support lookups, written once and sent through either backend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

Body = dict[str, Any]


def time_range(
    field: str, since: datetime | None, until: datetime | None, *, until_inclusive: bool = False
) -> Body:
    """A range filter on a time field: from `since` (inclusive) to `until` (exclusive unless
    `until_inclusive`); a missing bound is left open."""
    bounds: dict[str, str] = {}
    if since is not None:
        bounds["gte"] = since.isoformat()
    if until is not None:
        bounds["lte" if until_inclusive else "lt"] = until.isoformat()
    return {"range": {field: bounds}}


def filtered_in_time(
    filters: Sequence[Body],
    time_field: str,
    *,
    size: int,
    order: Literal["asc", "desc"] = "desc",
    tie_break: str | None = None,
    may_be_unmapped: bool = False,
) -> Body:
    """A search body: documents matching every filter, sorted by `time_field` (then by
    `tie_break`, ascending, for a stable order).

    `may_be_unmapped` keeps the sort from failing on an index that has no such field yet (a
    span index before its first span, for example).
    """
    by_time: dict[str, str] = {"order": order}
    if may_be_unmapped:
        by_time["unmapped_type"] = "date"
    sort: list[Body] = [{time_field: by_time}]
    if tie_break is not None:
        sort.append({tie_break: {"order": "asc"}})
    return {"size": size, "query": {"bool": {"filter": list(filters)}}, "sort": sort}


def member_errors(
    member_id: str, since: datetime, until: datetime | None = None, size: int = 100
) -> dict[str, Any]:
    """One member's error events in a time range, newest first (the support lookup)."""
    return member_events(member_id, since, until, size, ["error"])


def member_events(
    member_id: str,
    since: datetime,
    until: datetime | None = None,
    size: int = 500,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    """One member's events (optionally only some types), newest first: the timeline."""
    filters: list[Body] = [{"term": {"member_id": member_id}}]
    if event_types is not None and len(event_types) == 1:
        filters.append({"term": {"event_type": event_types[0]}})
    elif event_types:
        filters.append({"terms": {"event_type": event_types}})
    filters.append(time_range("event_time", since, until))
    return filtered_in_time(filters, "event_time", size=size, tie_break="event_id")


def member_sessions(member_id: str, since: datetime, size: int = 200) -> dict[str, Any]:
    """One member's session summaries whose first event is after `since`, newest first."""
    filters = [{"term": {"member_id": member_id}}, time_range("first_event_at", since, None)]
    return filtered_in_time(filters, "first_event_at", size=size)


def find_members(field: str, value: str, size: int = 20) -> dict[str, Any]:
    """Members seen with `field` = `value` (device_id, session_id, profile_id ...)."""
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"term": {field: value}}]}},
        "aggs": {"members": {"terms": {"field": "member_id", "size": size}}},
    }


def error_message_search(
    text: str, since: datetime | None = None, size: int = 50
) -> dict[str, Any]:
    """Error events whose message matches words of `text`, best match first."""
    filters: list[Body] = [{"term": {"event_type": "error"}}]
    if since is not None:
        filters.append(time_range("event_time", since, None))
    return {
        "size": size,
        "query": {"bool": {"must": [{"match": {"error_message": text}}], "filter": filters}},
    }


def incidents_matching(
    dimensions: dict[str, str], at_from: datetime, at_to: datetime, size: int = 50
) -> dict[str, Any]:
    """Incidents open during [at_from, at_to] whose root cause is one of `dimensions`.

    `dimensions` maps a dimension name (oca_id, isp, region, device_model ...) to the member's
    value; an incident matches when its (dimension, value) equals one of the pairs.
    """
    pairs = [
        {
            "bool": {
                "filter": [
                    {"term": {"dimension": name}},
                    {"term": {"value": value}},
                ]
            }
        }
        for name, value in dimensions.items()
    ]
    return {
        "size": size,
        "query": {
            "bool": {
                "filter": [
                    {"range": {"started_at": {"lte": at_to.isoformat()}}},
                    {
                        "bool": {
                            "should": [
                                {"bool": {"must_not": {"exists": {"field": "resolved_at"}}}},
                                {"range": {"resolved_at": {"gte": at_from.isoformat()}}},
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                ],
                "should": pairs,
                "minimum_should_match": 1 if pairs else 0,
            }
        },
        "sort": [{"started_at": {"order": "desc"}}],
    }


def audit_entries(member_id: str | None = None, size: int = 100) -> dict[str, Any]:
    """Support audit log entries, newest first (optionally about one member)."""
    query: dict[str, Any] = (
        {"term": {"member_id": member_id}} if member_id is not None else {"match_all": {}}
    )
    return {"size": size, "query": query, "sort": [{"at": {"order": "desc"}}]}
