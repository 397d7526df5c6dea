"""Elasticsearch 8.x, single node, from Elastic's integ-test zip on Maven Central.

The zip is the genuine server with few modules: no ILM, no painless, no `analysis-common`
(so no `asciifolding`), and `GET /` answers 405. Health therefore uses `_cluster/health`, and
the search setup asks the server what it has (`indexers.search_setup`).

Elasticsearch refuses to run as root: when streamwatch runs as root, the node runs as the
system user `Settings.elasticsearch_user` (created if missing), and its home (an unpacked
copy of the distribution, its config, data and logs, under the data directory) belongs to
that user.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from infra.component import Component
from infra.fetch import ELASTICSEARCH, fetch
from infra.process import ManagedProcess
from infra.toolchain import find_java
from streamwatch.errors import ConfigurationError

_MIN_JAVA = 17  # Elasticsearch 8.19 runs on 17 and 21
# Where nodes live when root runs streamwatch from a directory the node's user cannot enter.
_SYSTEM_HOMES = Path("/var/lib/streamwatch-elasticsearch")

# Development settings: one node, no security (local only, bound to loopback), and no disk
# watermarks (a nearly full dev disk must not turn the indices read-only mid-test).
_CONFIG = """\
cluster.name: streamwatch
node.name: streamwatch-es
network.host: 127.0.0.1
http.port: {http_port}
transport.port: {transport_port}
discovery.type: single-node
path.data: {data}
path.logs: {logs}
xpack.security.enabled: false
xpack.ml.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
"""


class ElasticsearchServer(Component):
    """The local Elasticsearch node (used when `search_backend` is `elasticsearch`)."""

    name = "elasticsearch"

    @property
    def home(self) -> Path:
        """The node's directory: under the data dir, unless the node's user cannot reach it.

        Run as root from a checkout under a private directory (e.g. /root), the unprivileged
        user cannot enter the data dir; the node then lives under /var/lib, one directory
        per data dir, still kept across restarts.
        """
        local = (self.settings.data_dir / "elasticsearch").resolve()
        if os.geteuid() != 0 or _blocking_parent(local) is None:
            return local
        digest = hashlib.sha256(str(local).encode()).hexdigest()[:12]
        return _SYSTEM_HOMES / digest

    @property
    def dist(self) -> Path:
        return self.home / f"elasticsearch-{self.version}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=self.name,
            pid_file=self.settings.data_dir / "run" / "elasticsearch.pid",
            log_file=self.settings.logs_dir / "elasticsearch.out",
            marker="",
            # The launcher script execs a CLI JVM that forks the server JVM: the environment
            # tag is what both carry, whatever their command lines say.
            env_marker=f"STREAMWATCH_ES_HOME={self.home}",
        )

    @property
    def version(self) -> str:
        return ELASTICSEARCH.version

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.settings.elasticsearch_port}"

    def ports(self) -> list[int]:
        return [self.settings.elasticsearch_port, self.settings.elasticsearch_transport_port]

    def fetch(self) -> None:
        fetch(ELASTICSEARCH, self.settings.cache_dir, self.settings.logs_dir / "fetch-es.log")

    def _zip(self) -> Path:
        zips = sorted(ELASTICSEARCH.lib(self.settings.cache_dir).glob("elasticsearch-*.zip"))
        if not zips:
            raise ConfigurationError(
                f"no Elasticsearch zip in {ELASTICSEARCH.lib(self.settings.cache_dir)}; "
                "run `streamwatch infra fetch`"
            )
        return zips[-1]

    def _unpack(self) -> None:
        marker = self.dist / ".unpacked"
        if marker.is_file():
            return
        if self.dist.exists():
            shutil.rmtree(self.dist)
        self.home.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(self._zip()) as archive:
            archive.extractall(self.home)
        # zipfile drops the Unix modes: the launchers and the bundled tools must be runnable.
        for script in (self.dist / "bin").iterdir():
            script.chmod(0o755)
        marker.write_text(self.version)

    def _write_config(self) -> Path:
        conf = self.home / "config"
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(self.dist / "config", conf)
        (self.home / "data").mkdir(exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        (self.home / "tmp").mkdir(exist_ok=True)
        (conf / "elasticsearch.yml").write_text(
            _CONFIG.format(
                http_port=self.settings.elasticsearch_port,
                transport_port=self.settings.elasticsearch_transport_port,
                data=self.home / "data",
                logs=self.home / "logs",
            )
        )
        return conf

    def launch(self) -> None:
        java = find_java(self.settings.elasticsearch_java_home, _MIN_JAVA)
        self._unpack()
        conf = self._write_config()
        heap = self.settings.elasticsearch_heap
        env = {
            **os.environ,
            "ES_JAVA_HOME": str(java.executable.parent.parent),
            "ES_PATH_CONF": str(conf),
            "ES_TMPDIR": str(self.home / "tmp"),
            "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        }
        env.pop("JAVA_HOME", None)
        argv = [str(self.dist / "bin" / "elasticsearch")]
        if os.geteuid() == 0:
            user = self.settings.elasticsearch_user
            _ensure_system_user(user)
            _require_traversable(self.home, user)
            subprocess.run(["chown", "-R", f"{user}:{user}", str(self.home)], check=True)
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
        self.process.start(argv, env=env)

    def cluster_health(self) -> dict[str, object] | None:
        """`_cluster/health` of the local node, or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.address}/_cluster/health", timeout=2) as resp:
                body: dict[str, object] = json.load(resp)
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def is_healthy(self) -> bool:
        # `GET /` answers 405 on this distribution: cluster health is the check.
        health = self.cluster_health()
        return health is not None and health.get("status") in ("green", "yellow")

    def reported_version(self) -> str:
        """The version the running node reports in `_nodes/_local`."""
        url = f"{self.address}/_nodes/_local?filter_path=nodes.*.version"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                nodes = json.load(resp)["nodes"]
                return str(next(iter(nodes.values()))["version"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, StopIteration):
            return self.version


_USERADD = ("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/false")


def _ensure_system_user(user: str) -> None:
    """Create the unprivileged system user (and its group) unless it exists."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    proc = subprocess.run(
        [*_USERADD, user],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigurationError(
            f"cannot create system user {user!r} for Elasticsearch: {proc.stderr.strip()}"
        )


def _blocking_parent(path: Path) -> Path | None:
    """The first existing parent of `path` that others may not enter, if any."""
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return parent
    return None


def _require_traversable(path: Path, user: str) -> None:
    """Fail clearly when a parent directory keeps `user` out of the node's home."""
    parent = _blocking_parent(path)
    if parent is not None:
        raise ConfigurationError(
            f"Elasticsearch runs as {user!r}, who cannot enter {parent} (mode "
            f"{oct(parent.stat().st_mode & 0o777)}); put STREAMWATCH_DATA_DIR elsewhere"
        )
