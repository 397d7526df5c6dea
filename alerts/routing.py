"""From an alert transition to the notifications of each receiver its routes name."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from alerts.receivers import Receiver
from alerts.records import Alert, Notification
from alerts.rules import RuleSet


def notifications_for(
    alert: Alert, ruleset: RuleSet, receivers: Mapping[str, Receiver], now: datetime
) -> tuple[list[Notification], list[str]]:
    """(notifications, receivers named by a route but not configured) for one transition.

    A receiver reached by two routes gets the alert once (the first route's).
    """
    out: list[Notification] = []
    missing: list[str] = []
    seen: set[str] = set()
    for route in ruleset.routes_for(alert.rule, alert.severity, alert.dimension):
        for name in route.receivers:
            if name in seen:
                continue
            seen.add(name)
            if name not in receivers:
                missing.append(name)
                continue
            out.append(
                Notification(
                    notification_id=Notification.make_id(alert, name),
                    alert=alert,
                    route=route.name,
                    receiver=name,
                    created_at=now,
                )
            )
    return out, missing
