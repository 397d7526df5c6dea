"""Server life cycle on a private stack: crash recovery, clean shutdown, clear start errors.

These tests kill and stop servers, so they run their own stack (own data dir and ports)
instead of the session's shared one, which other tests are using at the same time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opensearchpy import OpenSearch, helpers

from infra.process import port_is_free
from tests.infra_helpers import private_stack_env, status, streamwatch

N_MESSAGES = 1_000
N_DOCS = 500


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(N_MESSAGES):
            await producer.send(topic, value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str) -> list[int]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[int] = []
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=2000)
            for records in batch.values():
                values.extend(int(r.value or b"-1") for r in records)
            if len(values) >= N_MESSAGES:
                break
    finally:
        await consumer.stop()
    return values


@pytest.fixture
def private_stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = private_stack_env(tmp_path / "stack")
    yield env
    streamwatch(env, "infra", "down", timeout=120)


def test_kill_9_then_up_keeps_topics_messages_and_indices(private_stack: dict[str, str]) -> None:
    env = private_stack
    up = streamwatch(env, "infra", "up")
    assert up.returncode == 0, up.stderr + up.stdout
    st = status(env)
    bootstrap = st["kafka"]["address"]
    os_url = st["opensearch"]["address"]

    topic = f"crash-{uuid.uuid4().hex[:6]}"
    asyncio.run(_produce(bootstrap, topic))
    client = OpenSearch(hosts=[os_url], timeout=30)
    helpers.bulk(
        client,
        ({"_index": "crash-docs", "_id": str(i), "_source": {"n": i}} for i in range(N_DOCS)),
    )
    client.indices.refresh(index="crash-docs")

    for name in ("kafka", "opensearch"):
        os.kill(st[name]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    killed = ("kafka", "opensearch")
    while time.monotonic() < deadline and any(status(env)[n]["running"] for n in killed):
        time.sleep(0.2)
    assert not any(status(env)[n]["running"] for n in killed), "kill -9 did not stop the servers"

    again = streamwatch(env, "infra", "up")
    assert again.returncode == 0, again.stderr + again.stdout
    assert "kafka       started" in again.stdout and "opensearch  started" in again.stdout

    assert sorted(asyncio.run(_consume_all(bootstrap, topic))) == list(range(N_MESSAGES))
    client = OpenSearch(hosts=[os_url], timeout=30)
    assert client.count(index="crash-docs")["count"] == N_DOCS

    # Starting what already runs is a no-op.
    noop = streamwatch(env, "infra", "up")
    assert noop.returncode == 0
    assert noop.stdout.count("already running") == len(st)

    # A second checkout (its own data directory, the same ports) leaves them alone and says so.
    other = {**env, "STREAMWATCH_DATA_DIR": str(Path(env["STREAMWATCH_DATA_DIR"]) / "other")}
    foreign = streamwatch(other, "infra", "down", timeout=120)
    assert foreign.returncode == 0
    assert foreign.stdout.count("left running: not started by this checkout") == len(st)
    assert all(s["healthy"] for s in status(env).values())

    # `infra down` stops everything it started and leaves no pid file or port behind.
    down = streamwatch(env, "infra", "down", timeout=120)
    assert down.returncode == 0
    assert down.stdout.count("stopped") == len(st)
    st_after = status(env)
    assert not any(
        st_after[n]["running"] for n in ("kafka", "opensearch", "prometheus", "alertmanager")
    )
    data_dir = Path(env["STREAMWATCH_DATA_DIR"])
    assert not list(data_dir.rglob("*.pid"))
    for key in (
        "STREAMWATCH_KAFKA_PORT",
        "STREAMWATCH_KAFKA_CONTROLLER_PORT",
        "STREAMWATCH_OPENSEARCH_PORT",
        "STREAMWATCH_OPENSEARCH_TRANSPORT_PORT",
        "STREAMWATCH_PROMETHEUS_PORT",
        "STREAMWATCH_ALERTMANAGER_PORT",
    ):
        assert port_is_free("127.0.0.1", int(env[key])), f"{key} still bound after down"


@pytest.mark.parametrize("port_setting", ["STREAMWATCH_KAFKA_PORT", "STREAMWATCH_OPENSEARCH_PORT"])
def test_taken_port_fails_fast_naming_the_port(tmp_path: Path, port_setting: str) -> None:
    env = private_stack_env(tmp_path / "stack")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env[port_setting])))
        blocker.listen()
        proc = streamwatch(env, "infra", "up", timeout=30)
    assert proc.returncode != 0
    assert f"port {env[port_setting]}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not status(env)["kafka"]["running"], "nothing may start when a port is taken"


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    env = private_stack_env(tmp_path / "stack", PATH="/nonexistent")
    env.pop("JAVA_HOME", None)
    proc = streamwatch(env, "infra", "up", timeout=30)
    assert proc.returncode == 2
    assert "Java 17+ not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_maven_is_a_clear_error(tmp_path: Path) -> None:
    # An empty jar cache forces a fetch, which needs Maven.
    env = private_stack_env(
        tmp_path / "stack", PATH="/nonexistent", STREAMWATCH_CACHE_DIR=str(tmp_path / "cache")
    )
    proc = streamwatch(env, "infra", "up", timeout=30)
    assert proc.returncode == 2
    assert "Maven (`mvn`) not found" in proc.stderr
    assert "Traceback" not in proc.stderr
