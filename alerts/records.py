"""What the alerts box publishes: alerts, notifications, delivery log entries, actions.

These records cross process boundaries through Kafka (`ops.notifications.v1`,
`ops.deliveries.v1`, `ops.alert_actions.v1`), so they are defined once, here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]
Outcome = Literal["delivered", "failed", "rejected", "silenced", "acknowledged"]
# Outcomes after which a notification is never attempted again.
FINAL_OUTCOMES: frozenset[str] = frozenset({"delivered", "rejected", "silenced", "acknowledged"})


class Alert(BaseModel):
    """One alert episode of one rule on one dimension value, as it fires or resolves."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="rule|dimension=value: the dedupe key of the alert.")
    rule: str
    kind: Literal["threshold", "change", "incident"]
    status: AlertStatus
    severity: Literal["critical", "warning", "info"]
    metric: str
    dimension: str
    value: str
    started_at: datetime = Field(description="First bad minute (event time).")
    fired_at: datetime = Field(description="End of the minute whose data fired it.")
    resolved_at: datetime | None = None
    observed: float | None = None
    threshold: float | None = None
    summary: str
    runbook: str
    incident_ids: tuple[str, ...] = ()

    @property
    def episode(self) -> str:
        """The key of this episode (the same alert may fire again later)."""
        return f"{self.key}@{self.started_at.isoformat()}"


def alert_key(rule: str, dimension: str, value: str) -> str:
    """The dedupe key of a rule's alert on one dimension value."""
    return f"{rule}|{dimension}={value}"


class Notification(BaseModel):
    """One alert transition for one receiver: the unit the notifier delivers exactly once."""

    model_config = ConfigDict(frozen=True)

    notification_id: str
    alert: Alert
    route: str
    receiver: str
    created_at: datetime

    @staticmethod
    def make_id(alert: Alert, receiver: str) -> str:
        """Deterministic id: the same transition for the same receiver is the same id."""
        raw = f"{alert.episode}|{alert.status}|{receiver}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Delivery(BaseModel):
    """One entry of the delivery log: an attempt (or a decision not to send) and its answer."""

    model_config = ConfigDict(frozen=True)

    notification_id: str
    receiver: str
    route: str
    alert_key: str
    status: AlertStatus
    outcome: Outcome
    attempt: int
    at: datetime
    http_status: int | None = None
    answer: str = Field(default="", description="Response body or error, truncated.")


class Silence(BaseModel):
    """Mute notifications of matching alerts until `ends_at` (None matchers match anything)."""

    model_config = ConfigDict(frozen=True)

    action: Literal["silence"] = "silence"
    silence_id: str
    rule: str | None = None
    dimension: str | None = None
    value: str | None = None
    starts_at: datetime
    ends_at: datetime
    by: str
    at: datetime
    comment: str = ""

    def matches(self, alert: Alert, now: datetime) -> bool:
        """Whether this silence mutes `alert` at wall time `now`."""
        return (
            self.starts_at <= now < self.ends_at
            and self.rule in (None, alert.rule)
            and self.dimension in (None, alert.dimension)
            and self.value in (None, alert.value)
        )


class Expire(BaseModel):
    """End a silence early."""

    model_config = ConfigDict(frozen=True)

    action: Literal["expire"] = "expire"
    silence_id: str
    by: str
    at: datetime
    comment: str = ""


class Ack(BaseModel):
    """Someone is on it: no more firing notifications for this alert key until it resolves."""

    model_config = ConfigDict(frozen=True)

    action: Literal["ack"] = "ack"
    alert_key: str
    by: str
    at: datetime
    comment: str = ""


AlertAction = Annotated[Silence | Expire | Ack, Field(discriminator="action")]
