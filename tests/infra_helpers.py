"""Running the `streamwatch` CLI against a private, throw-away stack (own dir and ports)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_stack_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for a stack that shares nothing with the session's stack but the jar cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    env.update(
        STREAMWATCH_DATA_DIR=str(data_dir),
        STREAMWATCH_KAFKA_PORT=str(free_port()),
        STREAMWATCH_KAFKA_CONTROLLER_PORT=str(free_port()),
        STREAMWATCH_OPENSEARCH_PORT=str(free_port()),
        STREAMWATCH_OPENSEARCH_TRANSPORT_PORT=str(free_port()),
        STREAMWATCH_ELASTICSEARCH_PORT=str(free_port()),
        STREAMWATCH_ELASTICSEARCH_TRANSPORT_PORT=str(free_port()),
        STREAMWATCH_PROMETHEUS_PORT=str(free_port()),
        STREAMWATCH_ALERTMANAGER_PORT=str(free_port()),
        STREAMWATCH_KAFKA_HEAP="512m",
        STREAMWATCH_OPENSEARCH_HEAP="512m",
    )
    env.update(overrides)
    return env


def streamwatch(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `streamwatch ARGS...` in a subprocess with `env`."""
    return subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def status(env: dict[str, str]) -> dict[str, Any]:
    """`streamwatch infra status --json` as a dict."""
    proc = streamwatch(env, "infra", "status", "--json", timeout=60)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
