"""Silences and acknowledgements: written to `ops.alert_actions.v1` with who, when and why.

The topic is the audit trail (365 days); the notifier applies every action it reads, the CLI
and the incidents page write them. Reading the log back answers "who silenced what, when".
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from alerts import kafka_io
from alerts.records import Ack, Delivery, Expire, Notification, Silence
from alerts.service import ACTION_ADAPTER
from streamwatch import topics
from streamwatch.errors import ConfigurationError
from streamwatch.settings import Settings

Action = Silence | Expire | Ack


def new_silence(
    *,
    by: str,
    duration: timedelta,
    rule: str | None = None,
    dimension: str | None = None,
    value: str | None = None,
    comment: str = "",
    now: datetime | None = None,
) -> Silence:
    """A silence starting now; at least one matcher and a name are required."""
    if not by.strip():
        raise ConfigurationError("a silence needs the name of who sets it (--by)")
    if rule is None and dimension is None and value is None:
        raise ConfigurationError("a silence needs a matcher: --rule, --dimension or --value")
    if duration <= timedelta(0):
        raise ConfigurationError("a silence needs a positive duration")
    at = now or datetime.now(UTC)
    return Silence(
        silence_id=uuid.uuid4().hex[:12],
        rule=rule,
        dimension=dimension,
        value=value,
        starts_at=at,
        ends_at=at + duration,
        by=by,
        at=at,
        comment=comment,
    )


def new_ack(alert_key: str, by: str, comment: str = "") -> Ack:
    """An acknowledgement of `alert_key` ("rule|dimension=value") now."""
    if not by.strip():
        raise ConfigurationError("an acknowledgement needs the name of who gives it (--by)")
    if "|" not in alert_key or "=" not in alert_key:
        raise ConfigurationError(f"not an alert key (rule|dimension=value): {alert_key!r}")
    return Ack(alert_key=alert_key, by=by, at=datetime.now(UTC), comment=comment)


def new_expire(silence_id: str, by: str, comment: str = "") -> Expire:
    """End silence `silence_id` now."""
    if not by.strip():
        raise ConfigurationError("expiring a silence needs the name of who does it (--by)")
    return Expire(silence_id=silence_id, by=by, at=datetime.now(UTC), comment=comment)


def _key(action: Action) -> bytes:
    return (action.alert_key if isinstance(action, Ack) else action.silence_id).encode()


def record_action(settings: Settings, action: Action) -> None:
    """Write one action to the audited actions topic (acks=all)."""
    asyncio.run(
        kafka_io.write(
            settings, topics.ALERT_ACTIONS, [(_key(action), action.model_dump_json().encode())]
        )
    )


def read_actions(settings: Settings, timeout_s: float | None = None) -> list[Action]:
    """Every action ever recorded, oldest first (TimeoutError past `timeout_s`)."""
    records = asyncio.run(
        asyncio.wait_for(kafka_io.read_topic(settings, topics.ALERT_ACTIONS), timeout_s)
    )
    out: list[Action] = [ACTION_ADAPTER.validate_json(r.value or b"") for r in records]
    return sorted(out, key=lambda a: a.at)


def active_silences(actions: list[Action], now: datetime | None = None) -> list[Silence]:
    """Silences in force at `now` (expiries applied)."""
    at = now or datetime.now(UTC)
    silences: dict[str, Silence] = {}
    for a in actions:
        if isinstance(a, Silence):
            silences[a.silence_id] = a
        elif isinstance(a, Expire) and a.silence_id in silences:
            s = silences[a.silence_id]
            silences[a.silence_id] = s.model_copy(update={"ends_at": min(s.ends_at, a.at)})
    return [s for s in silences.values() if s.starts_at <= at < s.ends_at]


def read_log(settings: Settings) -> tuple[list[Notification], list[Delivery]]:
    """The outbox and the delivery log, oldest first."""
    notes = asyncio.run(kafka_io.read_topic(settings, topics.NOTIFICATIONS))
    deliveries = asyncio.run(kafka_io.read_topic(settings, topics.DELIVERIES))
    return (
        [Notification.model_validate_json(r.value or b"") for r in notes],
        sorted(
            (Delivery.model_validate_json(r.value or b"") for r in deliveries), key=lambda d: d.at
        ),
    )
