"""What an agent may use of the worker's runtime (`streams.app.StreamsApp`).

The agents are built by the runtime and hold it; typing them against this protocol rather
than the class keeps the runtime module the only one that knows all three agents (no
import circle), and says in one place what an agent may touch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from faust.types import EventT

from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streamwatch.settings import Settings


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
    validate_stats: Any
    sessions: Any
    windows: Any
    checkpoints: Any
    detector_table: Any
    counters: Counter[str]

    async def put(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or delete) a table entry and send its changelog record."""

    async def dead_letter(
        self, value: bytes, reason: str, detail: str, ev: EventT[Any], event_id: str | None
    ) -> None:
        """Send a message that cannot be processed to the dead-letter topic, with why."""
