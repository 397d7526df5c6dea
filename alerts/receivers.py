"""Receivers: where notifications go, and the request body each one expects.

- `webhook`: generic JSON (`{"version": "1", "status", "notification_id", "alert", ...}`),
  with an `Idempotency-Key` header so a receiver can drop a repeat;
- `slack`: a Slack-compatible incoming webhook (`text` + an attachment with the details);
- `pagerduty`: a PagerDuty Events API v2 body (`trigger` / `resolve`, `dedup_key` = episode);
- `alertmanager`: Prometheus Alertmanager's `POST /api/v2/alerts` (a list of alerts; a
  resolved one carries `endsAt` in the past).

Receivers are configured per deployment in a TOML file (`[receivers.NAME]` tables), apart
from the rules, because they hold URLs and keys.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from alerts.records import Notification
from streamwatch.errors import ConfigurationError
from streamwatch.settings import Settings

# Alertmanager resolves an alert nobody re-sends after `endsAt`; we send each transition
# once, so a firing alert is given this long (a resolved notification ends it sooner).
FIRING_HOLD = timedelta(hours=24)


class _Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class WebhookReceiver(_Receiver):
    """Generic JSON webhook."""

    kind: Literal["webhook"]


class SlackReceiver(_Receiver):
    """Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    kind: Literal["slack"]


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2."""

    kind: Literal["pagerduty"]
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: SecretStr


class AlertmanagerReceiver(_Receiver):
    """Prometheus Alertmanager (base URL; the API path is added)."""

    kind: Literal["alertmanager"]


Receiver = Annotated[
    WebhookReceiver | SlackReceiver | PagerDutyReceiver | AlertmanagerReceiver,
    Field(discriminator="kind"),
]


class ReceiverFile(BaseModel):
    """A receivers file: `[receivers.NAME]` tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: dict[str, Receiver]


def default_receivers(settings: Settings) -> dict[str, Receiver]:
    """Without a receivers file: the local Alertmanager only."""
    return {
        "alertmanager": AlertmanagerReceiver(
            kind="alertmanager", url=f"http://127.0.0.1:{settings.alertmanager_port}"
        )
    }


def load_receivers(path: Path | None, settings: Settings) -> dict[str, Receiver]:
    """Receivers from `path` (TOML), or the defaults when no file is given."""
    if path is None:
        return default_receivers(settings)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return ReceiverFile.model_validate(data).receivers
    except OSError as exc:
        raise ConfigurationError(f"cannot read receivers file {path}: {exc}") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigurationError(f"{path}: invalid receivers: {exc}") from exc


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _pd_severity(severity: str) -> str:
    return {"critical": "critical", "warning": "warning", "info": "info"}[severity]


def request_for(
    receiver: Receiver, n: Notification, link: str, now: datetime
) -> tuple[str, Any, dict[str, str]]:
    """(url, JSON body, headers) of notification `n` for `receiver`."""
    a = n.alert
    headers = {"Content-Type": "application/json", **receiver.headers}
    where = f"{a.dimension}={a.value}"
    title = f"[{a.status.upper()}] {a.rule} on {where}"
    if isinstance(receiver, WebhookReceiver):
        body: Any = {
            "version": "1",
            "notification_id": n.notification_id,
            "status": a.status,
            "receiver": n.receiver,
            "route": n.route,
            "link": link,
            "alert": a.model_dump(mode="json"),
        }
        return receiver.url, body, {**headers, "Idempotency-Key": n.notification_id}
    if isinstance(receiver, SlackReceiver):
        color = (
            "good" if a.status == "resolved" else {"critical": "danger"}.get(a.severity, "warning")
        )
        fields = [
            {"title": "dimension", "value": where, "short": True},
            {"title": "severity", "value": a.severity, "short": True},
            {"title": "started", "value": _iso(a.started_at), "short": True},
        ]
        if a.resolved_at is not None:
            fields.append({"title": "resolved", "value": _iso(a.resolved_at), "short": True})
        body = {
            "text": f"{title}: {a.summary}",
            "attachments": [
                {
                    "color": color,
                    "title": title,
                    "title_link": link,
                    "text": f"{a.summary}\nRunbook: {a.runbook}",
                    "fields": fields,
                    "footer": f"streamwatch {n.notification_id}",
                }
            ],
        }
        return receiver.url, body, headers
    if isinstance(receiver, PagerDutyReceiver):
        body = {
            "routing_key": receiver.routing_key.get_secret_value(),
            "event_action": "trigger" if a.status == "firing" else "resolve",
            "dedup_key": a.episode,
            "payload": {
                "summary": f"{a.rule} on {where}: {a.summary}"[:1024],
                "source": "streamwatch",
                "severity": _pd_severity(a.severity),
                "timestamp": _iso(a.fired_at),
                "component": a.dimension,
                "group": a.value,
                "class": a.metric,
                "custom_details": a.model_dump(mode="json"),
            },
            "links": [{"href": link, "text": "streamwatch incidents"}],
        }
        if a.runbook:
            body["links"].append({"href": a.runbook, "text": "runbook"})
        return receiver.url, body, headers
    ends = a.resolved_at if a.resolved_at is not None else now + FIRING_HOLD
    if a.status == "resolved" and ends > now:
        ends = now  # resolved: Alertmanager needs endsAt not in the future
    alert = {
        "labels": {
            "alertname": a.rule,
            "severity": a.severity,
            "dimension": a.dimension,
            "value": a.value,
            "metric": a.metric,
            "source": "streamwatch",
        },
        "annotations": {
            "summary": a.summary,
            "runbook_url": a.runbook,
            "notification_id": n.notification_id,
        },
        "startsAt": _iso(a.started_at),
        "endsAt": _iso(ends),
        "generatorURL": link,
    }
    return receiver.url.rstrip("/") + "/api/v2/alerts", [alert], headers
