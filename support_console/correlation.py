"""Was this member hit by a known incident?

A troubled session is marked "known incident" when it shares the incident's root-cause
rollup dimension value (`contract.dimensions`: same OCA, ISP, region, OS, ...) AND its trouble
is the kind the incident measures, at the incident's time:

- a failure incident (`playback_failure_pct`) explains a session whose fatal error fell in
  the incident's span; on a delivery dimension (OCA, ISP, region) it also
  explains network / CDN errors in the span (players that failed over after timeouts);
- a rebuffering incident explains a session with stalls that overlaps the span;
- a startup incident explains a slow, failed or abandoned start inside the span.

So a Tizen TV with a home-network warning during a DRM-license incident on Tizen is *not*
marked: the agent must not tell that member "it's on our side". Pure functions: the service
fetches candidate incidents, this decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contract.dimensions import ALL, CAUSE_PRIORITY, DELIVERY_DIMENSIONS, DIMENSIONS
from support_console.models import IncidentMark, IncidentView, SessionView

# Dimensions of the delivery path: an incident there also explains network / CDN errors.
INFRA_DIMENSIONS: frozenset[str] = DELIVERY_DIMENSIONS | {ALL}
_FAILED = frozenset({"failed", "start_failure"})
_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)

# The detector's dimension for "everything": an incident on all traffic touches every session.
ALL_DIMENSION = ALL


@dataclass(frozen=True)
class CorrelationPolicy:
    """How generous the time overlap is.

    `grace` widens each incident on both sides: the detector works on whole minutes, so an
    incident's start is the start of the first anomalous minute and a session that began a
    little earlier, or failed just after the last anomalous minute, was still hit.
    """

    grace: timedelta = timedelta(minutes=2)
    slow_startup_ms: int = 5_000


DEFAULT_POLICY = CorrelationPolicy()


def session_value(session: SessionView, dimension: str) -> str | None:
    """The session's value on an incident dimension; None when the session has none."""
    if dimension == ALL_DIMENSION:
        return ALL_DIMENSION
    return session.rollup_values.get(dimension)


def _span(
    incident: IncidentView, now: datetime, policy: CorrelationPolicy
) -> tuple[datetime, datetime]:
    return incident.started_at - policy.grace, (incident.ended_at or now) + policy.grace


def overlaps(
    session: SessionView, incident: IncidentView, now: datetime, policy: CorrelationPolicy
) -> bool:
    """Whether the session's time span meets the incident's (widened by the grace)."""
    lo, hi = _span(incident, now, policy)
    return session.started_at <= hi and (session.ended_at or session.started_at) >= lo


def _failed_in_span(session: SessionView, lo: datetime, hi: datetime) -> bool:
    if session.outcome not in _FAILED:
        return False
    fatal = [e.at for e in session.errors if e.severity == "fatal" and e.at != _UNKNOWN_TIME]
    when = fatal[0] if fatal else (session.ended_at or session.started_at)
    return lo <= when <= hi


def explained_by(
    session: SessionView,
    incident: IncidentView,
    now: datetime,
    policy: CorrelationPolicy = DEFAULT_POLICY,
) -> bool:
    """Whether `incident` explains this session's trouble (see the module docstring)."""
    if not session.troubled or session_value(session, incident.dimension) != incident.value:
        return False
    lo, hi = _span(incident, now, policy)
    metric = incident.metric
    if metric in ("playback_failure_pct", "start_failure_pct"):
        if _failed_in_span(session, lo, hi):
            return True
        return incident.dimension in INFRA_DIMENSIONS and any(
            e.category in ("network", "cdn") and lo <= e.at <= hi for e in session.errors
        )
    if metric == "rebuffer_pct":
        stalled = session.rebuffer_count > 0 or session.outcome == "degraded"
        return stalled and overlaps(session, incident, now, policy)
    if metric == "startup_p95_ms":
        slow = (
            session.outcome in ("exit_before_start", "start_failure")
            or (session.startup_ms or 0) >= policy.slow_startup_ms
        )
        return slow and lo <= session.started_at <= hi
    # A metric this console does not know yet: any trouble overlapping the span.
    return overlaps(session, incident, now, policy)


# Which of several incidents explaining one session to name first: a failure incident before
# a quality one, then the narrowest dimension (an OCA says more than "all TVs"), in the
# detector's own order of causes.
_METRIC_RANK = {"playback_failure_pct": 0, "start_failure_pct": 0, "startup_p95_ms": 1}
_DIMENSION_RANK = (*CAUSE_PRIORITY, ALL)


def mark_rank(mark: IncidentMark) -> tuple[int, int, str]:
    """Sort key: the incident that best explains a session first."""
    dim = mark.dimension
    dim_rank = _DIMENSION_RANK.index(dim) if dim in _DIMENSION_RANK else len(_DIMENSION_RANK)
    return (_METRIC_RANK.get(mark.metric, 2), dim_rank, mark.incident_id)


def marks_for(
    session: SessionView,
    incidents: Iterable[IncidentView],
    now: datetime,
    policy: CorrelationPolicy = DEFAULT_POLICY,
) -> tuple[IncidentMark, ...]:
    """The incidents that explain a session's trouble."""
    marks = []
    for inc in incidents:
        if not explained_by(session, inc, now, policy):
            continue
        marks.append(
            IncidentMark(
                incident_id=inc.incident_id,
                metric=inc.metric,
                dimension=inc.dimension,
                value=inc.value,
                started_at=inc.started_at,
                ended_at=inc.ended_at,
                status=inc.status,
                explanation=inc.explanation,
            )
        )
    return tuple(sorted(marks, key=mark_rank))


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
        for dim in DIMENSIONS:
            v = session_value(s, dim)
            if v:
                values.setdefault(dim, set()).add(v)
    return values
