"""Apache Kafka in KRaft mode, single node (combined broker + controller)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from pathlib import Path

from infra.component import Component
from infra.fetch import KAFKA, fetch
from infra.process import ManagedProcess, port_accepts
from infra.toolchain import find_java
from streamwatch.errors import StreamwatchError

_CONFIG_DIR = Path(__file__).parent / "config"
_KAFKA_MIN_JAVA = 17


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes one: a base64url UUID that never starts with "-".

    Kafka's own `Uuid.randomUuid` draws again for a leading "-", since such an id
    looks like an option on a command line.
    """
    while True:
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not raw.startswith("-"):
            return raw


class KafkaServer(Component):
    """The local Kafka broker: storage formatted once, data kept across restarts."""

    name = "kafka"

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "kafka"

    @property
    def log_dirs(self) -> Path:
        return self.home / "data"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=self.name,
            pid_file=self.home / "kafka.pid",
            log_file=self.settings.logs_dir / "kafka.out",
            marker=str(self.home.resolve() / "server.properties"),
        )

    @property
    def version(self) -> str:
        return KAFKA.version

    @property
    def address(self) -> str:
        return f"{self.settings.kafka_host}:{self.settings.kafka_port}"

    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    def fetch(self) -> None:
        fetch(KAFKA, self.settings.cache_dir, self.settings.logs_dir / "fetch-kafka.log")

    def _classpath(self) -> str:
        return f"{KAFKA.lib(self.settings.cache_dir)}/*"

    def _java(self) -> str:
        return str(find_java(self.settings.kafka_java_home, _KAFKA_MIN_JAVA).executable)

    def _write_config(self) -> Path:
        s = self.settings
        host = s.kafka_host
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:"
            f"{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dirs.resolve()),
            "num.partitions": str(s.kafka_partitions),
            # One node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _format_storage_once(self, config: Path) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        cluster_id_file = self.home / "cluster.id"
        if not cluster_id_file.is_file():
            cluster_id_file.write_text(new_cluster_id())
        proc = subprocess.run(
            [
                self._java(),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                # `--opt=value`: one in 64 ids starts with "-", which a separate
                # argument would make the tool's parser read as an option.
                f"--cluster-id={cluster_id_file.read_text().strip()}",
                f"--config={config}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StreamwatchError(f"formatting Kafka storage failed:\n{proc.stderr[-2000:]}")

    def launch(self) -> None:
        config = self._write_config()
        self._format_storage_once(config)
        logs = self.settings.logs_dir.resolve()
        logs.mkdir(parents=True, exist_ok=True)
        heap = self.settings.kafka_heap
        self.process.start(
            [
                self._java(),
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={logs}",
                f"-Dlog4j2.configurationFile={_CONFIG_DIR / 'kafka-log4j2.properties'}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(config.resolve()),
            ]
        )

    def is_healthy(self) -> bool:
        if not port_accepts(self.settings.kafka_host, self.settings.kafka_port):
            return False
        # An open port is not enough: the broker must answer metadata with itself as leader.
        return asyncio.run(_answers_metadata(self.address))


async def _answers_metadata(bootstrap: str) -> bool:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()
