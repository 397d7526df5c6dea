"""Index templates, mappings and retention policies, written once for both engines.

OpenSearch and Elasticsearch accept the same composable `_index_template` bodies and the same
mappings; they differ only in the retention policy API (ISM vs ILM), so both bodies live here.
"""

from __future__ import annotations

from typing import Any

from contract.columns import SEARCH_TYPES, Column
from contract.tables import EVENT_COLUMNS, INCIDENT_COLUMNS, SESSION_COLUMNS
from indexers import naming
from streamwatch.settings import Settings

# Follows support_console.audit.AuditRecord (the writer of this index).
AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("audit_id", "keyword", "Id of the audit entry."),
    Column("at", "timestamp", "When the lookup happened."),
    Column("action", "keyword", "What was done, e.g. member_lookup, session_view."),
    Column("surface", "keyword", "Where: console UI, CLI, ..."),
    Column("agent_id", "keyword", "Support agent who looked (null when unidentified)."),
    Column("agent_source", "keyword", "Where the agent identity came from."),
    Column("outcome", "keyword", "allowed | refused | failed ..."),
    Column("query_kind", "keyword", "member_id | email | device_id | session_id ..."),
    Column("query", "text", "What the agent searched for (masked where needed)."),
    Column("member_id", "keyword", "Member looked at, if any."),
    Column("reason", "text", "Reason given by the agent."),
    Column("case_id", "keyword", "Support case / ticket id."),
    Column("period_start", "timestamp", "Start of the period shown."),
    Column("period_end", "timestamp", "End of the period shown."),
    Column("shown_session_ids", "keyword", "Sessions shown (array)."),
    Column("shown_incident_ids", "keyword", "Incidents shown (array)."),
    Column("shown_error_count", "int", "Errors shown."),
    Column("result_count", "int", "Number of results shown."),
    Column("detail", "text", "Free-text detail."),
)

_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}


def mapping(columns: tuple[Column, ...]) -> dict[str, Any]:
    """A mapping from column specs; unknown top-level fields are stored but not indexed."""
    return {
        "dynamic": False,
        "properties": {c.name: dict(SEARCH_TYPES[c.kind]) for c in columns},
    }


def index_templates(settings: Settings) -> dict[str, dict[str, Any]]:
    """Template name → composable `_index_template` body, for every index family we write."""
    prefix = naming.index_prefix(settings)
    events = {
        "index_patterns": [naming.events_index_pattern(settings)],
        "priority": 200,
        "template": {
            "settings": _SETTINGS,
            "mappings": {**mapping(EVENT_COLUMNS), "_source": {"enabled": True}},
            # Every daily index joins the read alias the moment it is auto-created.
            "aliases": {naming.events_alias(settings): {}},
        },
        "_meta": {"owner": "streamwatch.indexers", "family": "events"},
    }

    def single(index: str, columns: tuple[Column, ...], family: str) -> dict[str, Any]:
        return {
            "index_patterns": [index],
            "priority": 200,
            "template": {"settings": _SETTINGS, "mappings": mapping(columns)},
            "_meta": {"owner": "streamwatch.indexers", "family": family},
        }

    return {
        f"{prefix}events": events,
        f"{prefix}sessions": single(naming.sessions_index(settings), SESSION_COLUMNS, "sessions"),
        f"{prefix}incidents": single(
            naming.incidents_index(settings), INCIDENT_COLUMNS, "incidents"
        ),
        f"{prefix}support-audit": single(naming.audit_index(settings), AUDIT_COLUMNS, "audit"),
    }


def ism_policy(settings: Settings) -> dict[str, Any]:
    """OpenSearch ISM policy: delete daily event indices after `search_retention_days`."""
    prefix = naming.index_prefix(settings)
    return {
        "policy": {
            "description": "streamwatch: delete daily event indices after the retention period",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [
                        {
                            "state_name": "delete",
                            "conditions": {"min_index_age": f"{settings.search_retention_days}d"},
                        }
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            # Span indices (indexers.span_search) expire with the events.
            "ism_template": [
                {"index_patterns": [naming.events_index_pattern(settings), f"{prefix}spans-*"]}
            ],
        }
    }


def ilm_policy(settings: Settings) -> dict[str, Any]:
    """Elasticsearch ILM policy: the same retention as `ism_policy`."""
    return {
        "policy": {
            "phases": {
                "hot": {"actions": {}},
                "delete": {
                    "min_age": f"{settings.search_retention_days}d",
                    "actions": {"delete": {}},
                },
            }
        }
    }


def retention_policy_id(settings: Settings) -> str:
    """Id of the ISM / ILM policy."""
    return f"{naming.index_prefix(settings)}events-retention"
