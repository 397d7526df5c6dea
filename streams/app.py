"""The runtime of the stream worker: the Faust app, its topics and tables, rebalance repair.

Two agents run on it, each in a module of its own and each with `concurrency=1`
(faust-streaming#606; scale with partitions and processes):

- `streams.qoe_agent` (telemetry.raw.v1, keyed by session_id): the one pass. Each message
  is parsed, deduplicated, enriched and forwarded to telemetry.events.v1 for the sinks
  (`streams.validate_agent`; rejects go to the dead-letter topic), and applied to its
  session and minute window (`streams.partition`, the same code as `streams.replay`),
  committed all or nothing per batch with the partition's reconciliation counters
  (`streams.committed_state`); publishes summaries, rollups and the detector's partials;
- `streams.detect_agent` (internal partials topic): judges each minute once every
  partition is done with it, publishes incidents.

What this module handles for both:

- an exception escaping an agent skips the event on restart (faust-streaming#315) and can
  kill the agent quietly (#175): agents catch per event and dead-letter (`dead_letter`);
- a table write (`table[k] = v`) sends its changelog through a buffer that
  `producer.flush()` may leave undrained: `put` writes the store and sends the changelog
  record itself, to the partition the state belongs to, so a flush is a real barrier;
- the raw topic reaches the one pass a fetch at a time (`streams.batch_feed`), and the
  group's raw offsets are committed from the checkpoints; after a rebalance, processing
  resumes where the state is (`_commit_state_offsets`, `streams.offset_guard`);
- bytes in, bytes out: raw key/value serializers, explicit JSON via pydantic;
- the app id (hence every changelog topic) includes `topic_prefix`, so test runs and
  tenants never share state.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, cast

import faust
from faust.types import TP

from streams.batch_feed import RawFeed
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.detect_agent import DETECTOR_STATE, DetectAgent, DetectorRuntime
from streams.enrichment import Catalog, catalog_path
from streams.offset_guard import REWIND_RETRY_S, OffsetGuard
from streams.qoe_agent import QoeAgent
from streams.table_io import TableIO
from streamwatch import topics
from streamwatch.settings import Settings

log = logging.getLogger("streamwatch.streams")

# Internal topic (prefixed like every topic) carrying closed windows to the detector.
MINUTE_PARTIALS = "streams.minute-partials.v1"

__all__ = ["DETECTOR_STATE", "MINUTE_PARTIALS", "StreamsApp", "app_id"]


def app_id(settings: Settings) -> str:
    """Faust app id: the consumer group and the prefix of every changelog topic."""
    return f"{settings.topic_prefix}streamwatch-streams"


_RAW_CODEC: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class StreamsApp(TableIO):
    """The Faust app with its topics, tables and agents, built from one Settings."""

    def __init__(self, settings: Settings, config: StreamsConfig | None = None, index: int = 0):
        self.settings = settings
        self.config = config or StreamsConfig.from_env()
        self.catalog = Catalog.load(catalog_path(settings.data_dir))
        self.app = self._faust_app(index)
        self.raw_topic = self._topic(topics.RAW)
        self.events_topic = self._topic(topics.EVENTS)
        self.deadletter_topic = self._topic(topics.DEADLETTER)
        self.sessions_topic = self._topic(topics.SESSIONS)
        self.minute_topic = self._topic(topics.MINUTE)
        self.incidents_topic = self._topic(topics.INCIDENTS)
        self.partials_topic = self.app.topic(
            settings.topic(MINUTE_PARTIALS), partitions=1, internal=True, **_RAW_CODEC
        )
        raw_parts = settings.partitions_for(topics.RAW)
        self.seen = self._table("seen", raw_parts)
        self.sessions = self._table("sessions", raw_parts)
        self.windows = self._table("windows", raw_parts)
        self.checkpoints = self._table("checkpoints", raw_parts)
        self.detector_table = self._table("detector", 1)
        self.counters: Counter[str] = Counter()
        # The state's last offsets, not faust's commits, decide what is processed next.
        consumer = self.app.consumer
        self.feed = RawFeed(consumer, self.raw_topic.get_topic_name()).install()
        self.qoe = QoeAgent(self, OffsetGuard(consumer, self.counters, "qoe"), self.feed)
        self.detect = DetectAgent(self, OffsetGuard(consumer, self.counters, "detect"))
        self.app.agent(self.raw_topic, name="qoe", concurrency=1)(self.qoe.run)
        self.app.agent(self.partials_topic, name="detect", concurrency=1)(self.detect.run)
        self.app.timer(30.0)(self._log_counters)
        self.app.timer(REWIND_RETRY_S)(self._retry_rewinds)
        self.app.timer(self.config.commit_interval_s)(self._commit_raw_offsets)
        self.app.on_rebalance_complete.connect(self._commit_state_offsets)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

    def _faust_app(self, worker_index: int) -> faust.App:
        s, cfg = self.settings, self.config
        data_dir = (s.data_dir / "faust" / f"{app_id(s)}-w{worker_index}").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        return faust.App(
            app_id(s),
            broker=[f"kafka://{hp}" for hp in s.bootstrap_servers.split(",")],
            store="memory://",  # state is rebuilt from the changelog topics on start
            datadir=str(data_dir),
            autodiscover=False,
            web_enabled=False,
            topic_partitions=s.partitions_for(topics.RAW),
            topic_replication_factor=1,
            topic_disable_leader=True,
            producer_acks=-1,
            # aiokafka's default 16 KiB batches make a round trip per few messages (session
            # states are KBs); big batches are what lets acks=all keep up.
            producer_max_batch_size=cfg.producer_max_batch_bytes,
            producer_linger=cfg.producer_linger_s,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=cfg.commit_interval_s,
            broker_session_timeout=cfg.broker_session_timeout_s,
            table_standby_replicas=0,
            key_serializer="raw",
            value_serializer="raw",
        )

    def _topic(self, logical: str) -> Any:
        return self.app.topic(self.settings.topic(logical), **_RAW_CODEC)

    def _table(self, name: str, partitions: int) -> Any:
        # key_type/value_type=bytes is what makes faust use the raw codec for the
        # changelog *and* for recovery; a Schema alone leaves recovery on json.
        return self.app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)

    # ------------------------------------------------------------------ rebalance ------

    def _raw_partitions(self, tps: set[TP]) -> set[int]:
        raw = self.settings.topic(topics.RAW)
        return {tp.partition for tp in tps if tp.topic == raw}

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        # Faust waits for this handler before the group moves on: the batch in flight is
        # committed (or abandoned) before another worker can take its partitions.
        await self.qoe.revoke(self._raw_partitions(set(revoked)))

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        # A partition may come back with state another worker changed meanwhile.
        self.qoe.assign(self._raw_partitions(set(assigned)))

    async def _commit_raw_offsets(self) -> None:
        """Commit the group's raw offsets from the committed checkpoints (faust never sees
        the raw records, streams.batch_feed): what lag and progress are read from."""
        raw = self.settings.topic(topics.RAW)
        offsets = {TP(raw, p): off for p, off in self.qoe.committed_offsets().items()}
        if not offsets or self.app.rebalancing:
            return
        try:
            await cast(Any, self.app.consumer)._commit(offsets)
        except Exception as exc:  # a rebalance under way: the next round commits
            log.info("raw offsets not committed now: %r", exc)

    def _state_last_offset(self, tp: TP) -> int | None:
        """The last input offset the state of `tp` applied (None: not an input of ours)."""
        if tp.topic == self.settings.topic(topics.RAW):
            raw = self.checkpoints.get(str(tp.partition).encode())
            return Checkpoint.model_validate_json(raw).upto if raw else -1
        if tp.topic == self.partials_topic.get_topic_name():
            raw = self.detector_table.get(DETECTOR_STATE)
            return DetectorRuntime.model_validate_json(raw).upto_offset if raw else -1
        return None

    async def _commit_state_offsets(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Commit, for every assigned input partition, the offset after the state's last.

        Runs once the tables are recovered and just before faust seeks the consumer to the
        committed offsets: whatever faust committed before (it can run ahead of what was
        processed, see streams.offset_guard), processing resumes where the state is.
        """
        consumer = self.app.consumer
        offsets: dict[TP, int] = {}
        for tp in consumer.assignment():
            last = self._state_last_offset(tp)
            if last is not None and last >= 0:
                offsets[tp] = last + 1
        for agent in (self.qoe, self.detect):
            agent.guard.forget()
        if offsets:
            # Not consumer.commit(): that commits only what faust counts as acknowledged.
            await cast(Any, consumer)._commit(offsets)
            log.info("resuming from the state's offsets: %s", offsets)

    async def _retry_rewinds(self) -> None:
        for agent in (self.qoe, self.detect):
            await agent.guard.retry_rewinds()

    async def _log_counters(self) -> None:
        if self.counters:
            log.info("streams counters: %s", dict(sorted(self.counters.items())))
