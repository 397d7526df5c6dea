"""Prometheus from Debian's `prometheus` package, scraping every streamwatch service.

The scrape configuration is generated at each start from `streamwatch.service_metrics`
(`scrape_targets`), the same place the services take their exporter ports from, so the
two cannot drift apart. Its data (TSDB) lives under the data directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from infra.component import Component
from infra.process import ManagedProcess
from streamwatch.errors import ConfigurationError
from streamwatch.service_metrics import scrape_targets
from streamwatch.settings import Settings

_BINARY = "prometheus"
# Where Debian installs it; PATH is looked at first.
_DEBIAN_BINARY = Path("/usr/bin/prometheus")


def prometheus_binary() -> Path:
    """The `prometheus` executable (from `make setup`: `apt-get install prometheus`)."""
    found = shutil.which(_BINARY)
    if found:
        return Path(found)
    if _DEBIAN_BINARY.is_file():
        return _DEBIAN_BINARY
    raise ConfigurationError(
        "prometheus not found; run `make setup` (it installs Debian's `prometheus` package)"
    )


def scrape_config(settings: Settings, workers: int = 1) -> dict[str, Any]:
    """The Prometheus configuration: one job per service, plus Prometheus itself.

    JSON is valid YAML, so the dict is written as JSON.
    """
    interval = f"{settings.prometheus_scrape_interval_s}s"
    jobs: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    for target in scrape_targets(settings, workers):
        jobs.setdefault(target.service, []).append(target.address)
        paths[target.service] = target.path
    scrape = [
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [f"127.0.0.1:{settings.prometheus_port}"]}],
        }
    ]
    scrape += [
        {
            "job_name": service,
            "metrics_path": paths[service],
            "static_configs": [{"targets": addresses, "labels": {"service": service}}],
        }
        for service, addresses in jobs.items()
    ]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": scrape,
    }


class PrometheusServer(Component):
    """The local Prometheus (its own port, config and TSDB under the data dir)."""

    name = "prometheus"

    @property
    def home(self) -> Path:
        return (self.settings.data_dir / "prometheus").resolve()

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=self.name,
            pid_file=self.home / "prometheus.pid",
            log_file=self.settings.logs_dir / "prometheus.out",
            marker=str(self.home),
        )

    @property
    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(prometheus_binary()), "--version"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (ConfigurationError, OSError, subprocess.TimeoutExpired):
            return "not installed"
        # "prometheus, version 2.42.0+ds (branch: ...)"
        words = (out.stdout or out.stderr).split()
        return words[2] if len(words) > 2 else "unknown"

    @property
    def address(self) -> str:
        return self.settings.prometheus_url

    def ports(self) -> list[int]:
        return [self.settings.prometheus_port]

    def fetch(self) -> None:
        prometheus_binary()  # installed by `make setup`; nothing to download here

    def write_config(self) -> Path:
        """(Re)generate the scrape configuration; returns its path."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(scrape_config(self.settings), indent=1))
        return self.config_file

    def launch(self) -> None:
        config = self.write_config()
        self.process.start(
            [
                str(prometheus_binary()),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.home / 'data'}",
                "--storage.tsdb.retention.time=7d",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
                "--web.enable-lifecycle",
            ]
        )

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.address}{path}", timeout=2) as resp:
            return json.load(resp) if path.startswith("/api") else resp.status

    def is_healthy(self) -> bool:
        # Ready, and running a streamwatch scrape config: a Prometheus of someone else's
        # (e.g. Debian's service on 9090) is not reused as ours; its port then shows taken.
        try:
            if self._get("/-/ready") != 200:
                return False
            config = str(self._get("/api/v1/status/config")["data"]["yaml"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return False
        return "job_name: collector" in config

    def reported_version(self) -> str:
        """The version the running server reports (`/api/v1/status/buildinfo`)."""
        try:
            return str(self._get("/api/v1/status/buildinfo")["data"]["version"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return self.version


def query(url: str, expr: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Run an instant PromQL query against the Prometheus at `url`; the result vector."""
    request = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        answer = json.load(resp)
    if answer.get("status") != "success":
        raise ConfigurationError(f"Prometheus refused {expr!r}: {answer.get('error')}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
