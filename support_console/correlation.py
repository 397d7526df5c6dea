"""Was this member hit by a known incident?

A troubled session is marked "known incident" when it overlaps an incident in time and shares
the incident's root-cause dimension value (same OCA, ISP, region, device family, app
version, ...). Pure functions: the service fetches candidate incidents, this decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from support_console.models import IncidentMark, IncidentView, SessionView

# Incident dimension names (as the detector writes them) -> the session field they match.
# Aliases are accepted because the detector and the session records name some dimensions
# differently ("oca" vs "oca_id").
DIMENSION_FIELDS: dict[str, str] = {
    "oca_id": "oca_id",
    "oca": "oca_id",
    "isp": "isp",
    "region": "region",
    "country": "country",
    "device_family": "device_family",
    "device_model": "device_model",
    "device_type": "device_type",
    "os": "os",
    "app_version": "app_version",
    "cdn_tier": "cdn_tier",
    "title_id": "title_id",
}
# The detector's dimension for "everything" (`streams.rollup.ALL`): an incident on all
# traffic touches every session.
ALL_DIMENSION = "all"


@dataclass(frozen=True)
class CorrelationPolicy:
    """How generous the time overlap is.

    `grace` widens each incident on both sides: the detector works on whole minutes, so an
    incident's start is the start of the first anomalous minute and a session that began a
    little earlier, or failed just after the last anomalous minute, was still hit.
    """

    grace: timedelta = timedelta(minutes=2)


DEFAULT_POLICY = CorrelationPolicy()


def session_value(session: SessionView, dimension: str) -> str | None:
    """The session's value on an incident dimension; None when the session has no such field.

    The device family falls back to the model, so an incident on a family still matches
    sessions whose records lack the family.
    """
    if dimension == ALL_DIMENSION:
        return ALL_DIMENSION
    # Event field paths ("network.oca_id", "device.os") name the same thing as the column.
    field = DIMENSION_FIELDS.get(dimension.rpartition(".")[2])
    if field is None:
        return None
    value = getattr(session, field)
    if field == "device_family" and not value:
        value = session.device_model
    return str(value) if value else None


def overlaps(
    session: SessionView, incident: IncidentView, now: datetime, policy: CorrelationPolicy
) -> bool:
    """Whether the session's time span meets the incident's (widened by the grace)."""
    s_start = session.started_at
    s_end = session.ended_at or session.started_at
    i_start = incident.started_at - policy.grace
    i_end = (incident.ended_at or now) + policy.grace
    return s_start <= i_end and s_end >= i_start


def marks_for(
    session: SessionView,
    incidents: Iterable[IncidentView],
    now: datetime,
    policy: CorrelationPolicy = DEFAULT_POLICY,
) -> tuple[IncidentMark, ...]:
    """The incidents a troubled session overlaps on a shared dimension value."""
    if not session.troubled:
        return ()
    marks = []
    for inc in incidents:
        if session_value(session, inc.dimension) != inc.value:
            continue
        if not overlaps(session, inc, now, policy):
            continue
        marks.append(
            IncidentMark(
                incident_id=inc.incident_id,
                dimension=inc.dimension,
                value=inc.value,
                started_at=inc.started_at,
                ended_at=inc.ended_at,
                status=inc.status,
                explanation=inc.explanation,
            )
        )
    return tuple(marks)


def correlate(
    sessions: Sequence[SessionView],
    incidents: Sequence[IncidentView],
    now: datetime,
    policy: CorrelationPolicy = DEFAULT_POLICY,
) -> tuple[SessionView, ...]:
    """The sessions with their incident marks filled in."""
    return tuple(
        s.model_copy(update={"incidents": marks_for(s, incidents, now, policy)}) for s in sessions
    )


def dimension_values(sessions: Iterable[SessionView]) -> dict[str, set[str]]:
    """Every dimension value the sessions have: what incidents are worth fetching."""
    values: dict[str, set[str]] = {}
    for s in sessions:
        for dim in DIMENSION_FIELDS:
            v = session_value(s, dim)
            if v:
                values.setdefault(dim, set()).add(v)
    return values
