"""`streamwatch infra status --json` reports every server up, with its version."""

from __future__ import annotations

import json
import subprocess
import sys

from infra.fetch import KAFKA, OPENSEARCH
from infra.prometheus_server import PrometheusServer
from streamwatch.settings import Settings


def test_status_json_reports_every_server_with_versions(stack_settings: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "infra", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert set(status) == {"kafka", "opensearch", "prometheus", "alertmanager"}
    assert status["kafka"]["running"] and status["kafka"]["healthy"]
    assert status["kafka"]["version"] == KAFKA.version
    assert status["kafka"]["address"] == stack_settings.bootstrap_servers
    assert isinstance(status["kafka"]["pid"], int)
    assert status["opensearch"]["running"] and status["opensearch"]["healthy"]
    # The node itself reports this version (GET /), not just our pom.
    assert status["opensearch"]["version"] == OPENSEARCH.version.rsplit(".", 1)[0]
    assert isinstance(status["opensearch"]["pid"], int)
    prometheus = status["prometheus"]
    assert prometheus["running"] and prometheus["healthy"], prometheus
    assert prometheus["address"] == stack_settings.prometheus_url
    # The running server's own build info (Debian's package), not a guess.
    assert prometheus["version"] == PrometheusServer(stack_settings).version
    assert isinstance(prometheus["pid"], int)
    # Alertmanager reports its own version (GET /api/v2/status): Debian bookworm's 0.25.
    assert status["alertmanager"]["running"] and status["alertmanager"]["healthy"]
    assert status["alertmanager"]["version"].startswith("0.25")
    assert status["alertmanager"]["address"] == (
        f"http://127.0.0.1:{stack_settings.alertmanager_port}"
    )
