"""What an agent may use of the worker's runtime (`streams.app.StreamsApp`).

The agents are built by the runtime and hold it; typing them against this protocol rather
than the class keeps the runtime module the only one that knows all three agents (no
import circle), and says in one place what an agent may touch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streams.send_buffer import Headers
from streamwatch.settings import Settings


class SourceMessage(Protocol):
    """Where a message was read: a faust Message, an aiokafka ConsumerRecord or a
    `Source`."""

    @property
    def topic(self) -> str:
        """The topic it was read from."""

    @property
    def partition(self) -> int:
        """Its partition."""

    @property
    def offset(self) -> int:
        """Its offset."""


class Source(NamedTuple):
    """Where a raw record was read, for what is said about it (a dead letter)."""

    topic: str
    partition: int
    offset: int


class AgentRuntime(Protocol):
    """The Faust app, topics and tables the agents share, and the table write path."""

    settings: Settings
    config: StreamsConfig
    catalog: Catalog
    app: Any  # faust.App: its producer is the one every agent's writes go through
    events_topic: Any
    sessions_topic: Any
    minute_topic: Any
    incidents_topic: Any
    partials_topic: Any
    seen: Any
    sessions: Any
    windows: Any
    checkpoints: Any
    detector_table: Any
    counters: Counter[str]

    async def put(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or delete) a table entry and send its changelog record."""

    def stage(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """`put`, with the changelog record buffered until the next push or flush."""

    def stager(self, table: Any) -> Callable[[int, bytes, bytes], None]:
        """`stage` of one table, bound once (for a write per event)."""

    def sender(self) -> Callable[[str, int, bytes | None, bytes, Headers | None], None]:
        """`send`, bound once (for a record per event: the forward)."""

    def send(
        self, topic: str, partition: int, key: bytes | None, value: bytes, headers: Headers | None
    ) -> None:
        """Buffer a record for `topic` (sent at the next push or flush)."""

    async def partitions_of(self, topic: str) -> int:
        """How many partitions `topic` has (the producer's metadata, asked once)."""

    async def push(self) -> list[asyncio.Future[Any]]:
        """Hand what is buffered to the producer (delivery is not awaited): the futures of
        the batches handed over."""

    async def flush(self) -> None:
        """Push, then wait until everything sent so far is acknowledged."""

    async def dead_letter(
        self, value: bytes, reason: str, detail: str, msg: SourceMessage, event_id: str | None
    ) -> None:
        """Send a message that cannot be processed to the dead-letter topic, with why."""
