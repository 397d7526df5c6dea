"""The Alertmanager receiver against the real Alertmanager that `infra/` runs."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.receivers import AlertmanagerReceiver, request_for
from alerts.records import Alert, Notification
from infra.alertmanager_server import AlertmanagerServer
from streamwatch.errors import ConfigurationError
from streamwatch.settings import Settings


def _post(url: str, body: Any) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def _active(base: str, rule: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f'alertname="{rule}"'})
    with urllib.request.urlopen(f"{base}/api/v2/alerts?{query}", timeout=10) as resp:
        found: list[dict[str, Any]] = json.load(resp)
    return found


def _notification(rule: str, status: str, now: datetime) -> Notification:
    alert = Alert(
        key=f"{rule}|oca_id=oca-7",
        rule=rule,
        kind="threshold",
        status=status,  # type: ignore[arg-type]
        severity="critical",
        metric="playback_failure_pct",
        dimension="oca_id",
        value="oca-7",
        started_at=now - timedelta(minutes=6),
        fired_at=now - timedelta(minutes=3),
        resolved_at=now - timedelta(minutes=1) if status == "resolved" else None,
        observed=9.5,
        threshold=2.0,
        summary="Playback failing on edge cache oca_id=oca-7",
        runbook="docs/runbooks.md#oca-playback-failures",
    )
    return Notification(
        notification_id=Notification.make_id(alert, "alertmanager"),
        alert=alert,
        route="page",
        receiver="alertmanager",
        created_at=now,
    )


def test_firing_then_resolved_in_the_real_alertmanager(stack_settings: Settings) -> None:
    server = AlertmanagerServer(stack_settings)
    assert server.is_healthy(), "the session's stack starts Alertmanager"
    receiver = AlertmanagerReceiver(kind="alertmanager", url=server.address)
    rule = f"test-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)

    url, body, _ = request_for(receiver, _notification(rule, "firing", now), "http://x", now)
    assert _post(url, body) == 200
    (active,) = _active(server.address, rule)
    assert active["labels"]["dimension"] == "oca_id"
    assert active["labels"]["value"] == "oca-7"
    assert active["labels"]["severity"] == "critical"
    assert active["annotations"]["runbook_url"] == "docs/runbooks.md#oca-playback-failures"
    assert active["status"]["state"] == "active"

    url, body, _ = request_for(receiver, _notification(rule, "resolved", now), "http://x", now)
    assert _post(url, body) == 200
    assert _active(server.address, rule) == []


def test_a_missing_alertmanager_binary_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, alertmanager_binary=tmp_path / "no-such-alertmanager")
    with pytest.raises(ConfigurationError, match="install Debian's prometheus-alertmanager"):
        AlertmanagerServer(settings).fetch()
