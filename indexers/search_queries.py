"""Query bodies for support lookups, written once and sent through either backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _range(field: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    bounds: dict[str, str] = {}
    if since is not None:
        bounds["gte"] = since.isoformat()
    if until is not None:
        bounds["lt"] = until.isoformat()
    return {"range": {field: bounds}}


def member_errors(
    member_id: str, since: datetime, until: datetime | None = None, size: int = 100
) -> dict[str, Any]:
    """One member's error events in a time range, newest first (the support lookup)."""
    return {
        "size": size,
        "query": {
            "bool": {
                "filter": [
                    {"term": {"member_id": member_id}},
                    {"term": {"event_type": "error"}},
                    _range("event_time", since, until),
                ]
            }
        },
        "sort": [{"event_time": {"order": "desc"}}, {"event_id": {"order": "asc"}}],
    }


def member_events(
    member_id: str,
    since: datetime,
    until: datetime | None = None,
    size: int = 500,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    """One member's events (optionally only some types), newest first: the timeline."""
    filters: list[dict[str, Any]] = [
        {"term": {"member_id": member_id}},
        _range("event_time", since, until),
    ]
    if event_types:
        filters.append({"terms": {"event_type": event_types}})
    return {
        "size": size,
        "query": {"bool": {"filter": filters}},
        "sort": [{"event_time": {"order": "desc"}}, {"event_id": {"order": "asc"}}],
    }


def member_sessions(member_id: str, since: datetime, size: int = 200) -> dict[str, Any]:
    """One member's session summaries whose first event is after `since`, newest first."""
    return {
        "size": size,
        "query": {
            "bool": {
                "filter": [
                    {"term": {"member_id": member_id}},
                    _range("first_event_at", since, None),
                ]
            }
        },
        "sort": [{"first_event_at": {"order": "desc"}}],
    }


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
    filters: list[dict[str, Any]] = [{"term": {"event_type": "error"}}]
    if since is not None:
        filters.append(_range("event_time", since, None))
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
