"""Session-wide access to the real local servers.

The first test that needs a server reuses a running stack (e.g. one from `make demo`) or
starts one; at the end of the session only what this session started is stopped. A server
that cannot start fails the tests loudly: nothing here ever skips.

Each test session gets its own topic prefix so that runs never see each other's messages.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra import stack
from infra.elasticsearch_server import ElasticsearchServer
from streamwatch.settings import Settings, get_settings
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
    # Services the tests spawn export no metrics unless a test gives them ports: the
    # documented exporter ports belong to the demo (and stay free for it).
    os.environ.setdefault("STREAMWATCH_METRICS_PORT", "0")
    yield settings
    if started and not os.environ.get("STREAMWATCH_KEEP_STACK"):
        stack.down(settings, only=started)


# The search engines the backend-parametrized tests run against.
SEARCH_BACKENDS = ("opensearch", "elasticsearch")


@pytest.fixture(scope="session")
def elasticsearch_url(stack_settings: Settings, settings: Settings) -> Iterator[str]:
    """Base URL of the real local Elasticsearch (reused if running, else started).

    At the end, this session's indices and templates (all named after its topic prefix)
    are deleted, as the topics are: the node's data outlives the session.
    """
    server = ElasticsearchServer(stack_settings)
    try:
        started = server.up()
    except Exception as exc:  # fatal for the tests that need it, never a skip
        pytest.fail(f"Elasticsearch could not start: {exc}", pytrace=False)
    yield server.address
    if not os.environ.get("STREAMWATCH_KEEP_TOPICS"):
        delete_indices(server.address, settings.topic_prefix)
    if started and not os.environ.get("STREAMWATCH_KEEP_STACK"):
        server.down()


@pytest.fixture(params=SEARCH_BACKENDS)
def search_backend(request: pytest.FixtureRequest) -> str:
    """Each real search engine in turn (Elasticsearch is started on first use)."""
    backend: str = request.param
    return backend


def on_backend(settings: Settings, backend: str, request: pytest.FixtureRequest) -> Settings:
    """`settings` pointed at `backend`'s real local server."""
    if backend == "elasticsearch":
        url = request.getfixturevalue("elasticsearch_url")
        return settings.model_copy(update={"search_backend": backend, "search_url": url})
    return settings.model_copy(update={"search_backend": backend})


@pytest.fixture(scope="session")
def settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings for this test session: the running stack, a unique topic prefix, topics made.

    The session's topics (every name under its prefix, changelogs included) are deleted at
    the end: on a stack that outlives the tests (`make demo`), runs would otherwise pile
    up gigabytes of test topics.
    """
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    # No exporters on the documented ports (they are the demo's): metrics_port 0.
    scoped = stack_settings.model_copy(update={"topic_prefix": prefix, "metrics_port": 0})
    asyncio.run(create_topics(scoped))
    yield scoped
    if not os.environ.get("STREAMWATCH_KEEP_TOPICS"):
        try:
            asyncio.run(_delete_topics(scoped.bootstrap_servers, prefix))
        except Exception as exc:  # housekeeping only: the tests' verdict stands
            print(f"\nnote: test topics under {prefix!r} were not deleted: {exc!r}")
        delete_indices(scoped.search_endpoint, prefix)


def delete_indices(base_url: str, prefix: str) -> None:
    """Delete the search indices and templates named after a test prefix.

    The engine's data outlives the session (a shared or demo stack), so without this every
    run would leave its indices behind."""
    own = f"streamwatch-{prefix}*"
    for path in (f"/{own}?expand_wildcards=all", f"/_index_template/{own}"):
        request = urllib.request.Request(base_url + path, method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except OSError as exc:  # housekeeping only: the tests' verdict stands
            print(f"\nnote: {base_url}{path} not deleted: {exc!r}")


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


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory of the test's own, for commands that read `get_settings()`."""
    monkeypatch.setenv("STREAMWATCH_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
