"""Prometheus Alertmanager, single instance, from Debian's `prometheus-alertmanager`.

`make setup` installs the package; this component only writes a minimal config (one
receiver that sends nowhere: streamwatch posts alerts to Alertmanager's API and lets an
operator's own routing take it from there) and runs the binary on its own port. Clustering
is turned off so that it binds no gossip port next to Kafka's.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from infra.component import Component
from infra.process import ManagedProcess
from streamwatch.errors import ConfigurationError

ALERTMANAGER_PACKAGE = "prometheus-alertmanager"
_CONFIG = """\
# Written by streamwatch (infra/alertmanager_server.py); edited copies are overwritten.
route:
  receiver: "null"
  group_by: ["alertname", "dimension", "value"]
receivers:
  - name: "null"
"""


class AlertmanagerServer(Component):
    """The local Alertmanager; its silences and notification log live under the data dir."""

    name = "alertmanager"

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "alertmanager"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=self.name,
            pid_file=self.home / "alertmanager.pid",
            log_file=self.settings.logs_dir / "alertmanager.out",
            marker=str(self.home.resolve() / "alertmanager.yml"),
        )

    @property
    def version(self) -> str:
        return "0.25"  # Debian bookworm's package; the running server reports its own

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.settings.alertmanager_port}"

    def ports(self) -> list[int]:
        return [self.settings.alertmanager_port]

    def binary(self) -> Path:
        """The Alertmanager executable, or a clear error naming the package to install."""
        configured = self.settings.alertmanager_binary
        found = configured if configured.is_file() else shutil.which(configured.name)
        if found is None:
            raise ConfigurationError(
                f"{configured} not found: install Debian's {ALERTMANAGER_PACKAGE} "
                "(`make setup` does) or set STREAMWATCH_ALERTMANAGER_BINARY"
            )
        return Path(found)

    def fetch(self) -> None:
        # Nothing to download: the binary comes from apt at `make setup`; check it is there.
        self.binary()

    def launch(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "alertmanager.yml"
        config.write_text(_CONFIG, encoding="utf-8")
        self.process.start(
            [
                str(self.binary()),
                f"--config.file={config.resolve()}",
                f"--storage.path={(self.home / 'data').resolve()}",
                f"--web.listen-address=127.0.0.1:{self.settings.alertmanager_port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )

    def _get(self, path: str) -> object | None:
        try:
            with urllib.request.urlopen(f"{self.address}{path}", timeout=2) as resp:
                return json.load(resp) if resp.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def is_healthy(self) -> bool:
        status = self._get("/api/v2/status")
        return isinstance(status, dict) and "versionInfo" in status

    def reported_version(self) -> str:
        """The version from `GET /api/v2/status`."""
        status = self._get("/api/v2/status")
        if isinstance(status, dict):
            info = status.get("versionInfo")
            if isinstance(info, dict) and info.get("version"):
                return str(info["version"])
        return self.version
