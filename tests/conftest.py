"""Session-wide access to the real local servers.

The first test that needs a server reuses a running stack (e.g. one from `make demo`) or
starts one; at the end of the session only what this session started is stopped. A server
that cannot start fails the tests loudly: nothing here ever skips.

Each test session gets its own topic prefix so that runs never see each other's messages.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra import stack
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings of the running local stack; starts the servers that are not running."""
    settings = Settings()
    started: set[str] = set()
    try:
        for component in stack.components(settings):
            if component.up():
                started.add(component.name)
    except Exception as exc:  # any failure to start is fatal for server tests
        stack.down(settings, only=started)
        pytest.fail(f"local stack could not start: {exc}", pytrace=False)
    yield settings
    if started and not os.environ.get("STREAMWATCH_KEEP_STACK"):
        stack.down(settings, only=started)


@pytest.fixture(scope="session")
def settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings for this test session: the running stack, a unique topic prefix, topics made.

    The session's topics (every name under its prefix, changelogs included) are deleted at
    the end: on a stack that outlives the tests (`make demo`), runs would otherwise pile
    up gigabytes of test topics.
    """
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    scoped = stack_settings.model_copy(update={"topic_prefix": prefix})
    asyncio.run(create_topics(scoped))
    yield scoped
    if not os.environ.get("STREAMWATCH_KEEP_TOPICS"):
        try:
            asyncio.run(_delete_topics(scoped.bootstrap_servers, prefix))
        except Exception as exc:  # housekeeping only: the tests' verdict stands
            print(f"\nnote: test topics under {prefix!r} were not deleted: {exc!r}")


async def _delete_topics(bootstrap_servers: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        for i in range(0, len(names), 100):
            await admin.delete_topics(names[i : i + 100])
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: Settings) -> str:
    """Bootstrap servers of the real local Kafka."""
    return stack_settings.bootstrap_servers


@pytest.fixture(scope="session")
def opensearch_url(stack_settings: Settings) -> str:
    """Base URL of the real local OpenSearch."""
    return stack_settings.search_endpoint


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process right after pytest's summary.

    DuckDB's bindings (nanobind) print pages of "leaked instance" notes at interpreter
    shutdown; they are harmless but would bury pytest's closing summary line, which is what
    CI reads. Skipping interpreter finalisation keeps the summary the last thing printed.
    """
    if _exit_status:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])
