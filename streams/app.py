"""The runtime of the stream worker: the Faust app, its topics and tables, rebalance repair.

Three agents run on it, each in a module of its own and each with `concurrency=1`
(faust-streaming#606; scale with partitions and processes):

- `streams.validate_agent` (telemetry.raw.v1): parse, dedupe, enrich, forward to
  telemetry.events.v1 keyed by session_id; rejects go to the dead-letter topic;
- `streams.qoe_agent` (telemetry.events.v1): sessions and minute windows per partition
  (`streams.partition`, the same code as `streams.replay`), committed all or nothing per
  batch (`streams.committed_state`); publishes summaries, rollups and the detector's
  partials;
- `streams.detect_agent` (internal partials topic): judges each minute once every
  partition is done with it, publishes incidents.

What this module handles for all three:

- an exception escaping an agent skips the event on restart (faust-streaming#315) and can
  kill the agent quietly (#175): agents catch per event and dead-letter (`dead_letter`);
- a table write (`table[k] = v`) sends its changelog to the *current event's* partition,
  which a `take_events` batch leaves unset, and through a buffer that `producer.flush()`
  may leave undrained: `put` writes the store and sends the changelog record itself, to
  the partition the state belongs to, so a flush is a real barrier;
- after a rebalance, processing resumes where the state is, not where faust committed
  (`_commit_state_offsets`, `streams.offset_guard`);
- bytes in, bytes out: raw key/value serializers, explicit JSON via pydantic;
- the app id (hence every changelog topic) includes `topic_prefix`, so test runs and
  tenants never share state.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, cast

import faust
from faust.types import TP, EventT

from ingest.deadletter import DeadLetter
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.detect_agent import DETECTOR_STATE, DetectAgent, DetectorRuntime
from streams.enrichment import Catalog, catalog_path
from streams.offset_guard import REWIND_RETRY_S, OffsetGuard
from streams.qoe_agent import QoeAgent
from streams.validate_agent import ValidateAgent, ValidateStats
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


class StreamsApp:
    """The Faust app with its topics, tables and agents, built from one Settings."""

    def __init__(
        self,
        settings: Settings,
        config: StreamsConfig | None = None,
        worker_index: int = 0,
    ) -> None:
        self.settings = settings
        self.config = config or StreamsConfig.from_env()
        self.catalog = Catalog.load(catalog_path(settings.data_dir))
        self.app = self._faust_app(worker_index)
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
        events_parts = settings.partitions_for(topics.EVENTS)
        self.seen = self._table("seen", raw_parts)
        self.validate_stats = self._table("validate-stats", raw_parts)
        self.sessions = self._table("sessions", events_parts)
        self.windows = self._table("windows", events_parts)
        self.checkpoints = self._table("checkpoints", events_parts)
        self.detector_table = self._table("detector", 1)
        self.counters: Counter[str] = Counter()
        # The state's last offsets, not faust's commits, decide what is processed next.
        consumer = self.app.consumer
        self.validator = ValidateAgent(self, OffsetGuard(consumer, self.counters, "validate"))
        self.qoe = QoeAgent(self, OffsetGuard(consumer, self.counters, "qoe"))
        self.detect = DetectAgent(self, OffsetGuard(consumer, self.counters, "detect"))
        self.app.agent(self.raw_topic, name="validate", concurrency=1)(self.validator.run)
        self.app.agent(self.events_topic, name="qoe", concurrency=1)(self.qoe.run)
        self.app.agent(self.partials_topic, name="detect", concurrency=1)(self.detect.run)
        self.app.timer(30.0)(self._log_counters)
        self.app.timer(REWIND_RETRY_S)(self._retry_rewinds)
        self.app.on_rebalance_complete.connect(self._commit_state_offsets)  # type: ignore[arg-type]
        # mode types handlers with a keyword-only `signal`; ours take it in **kwargs.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

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

    # ------------------------------------------------------------------ table I/O ------

    async def put(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or, with None, delete) a table entry and send its changelog record.

        Not `table[key] = value`: faust sends that changelog record through a buffer that
        `producer.flush()` may return before draining (it waits 0.1 s at most), and the
        commit protocol needs a flush to be a real barrier. Sent to the producer here, the
        record is covered by the next flush, in the partition it belongs to.
        """
        store = table.data
        if value is None:
            if key in store:
                del store[key]
        else:
            store[key] = value
        topic = table.changelog_topic.get_topic_name()
        await self.app.producer.send(topic, key, value, partition, None, None)

    async def dead_letter(
        self, value: bytes, reason: str, detail: str, ev: EventT[Any], event_id: str | None
    ) -> None:
        """Send a message that cannot be processed to the dead-letter topic, with why."""
        msg = ev.message
        letter = DeadLetter.of(
            value,
            reason,
            "streams",
            detail=detail,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            event_id=event_id,
        )
        await self.deadletter_topic.send(
            key=event_id.encode() if event_id else None, value=letter.model_dump_json().encode()
        )

    # ------------------------------------------------------------------ rebalance ------

    def _forget_partitions(self, tps: set[TP]) -> None:
        raw, events = self.settings.topic(topics.RAW), self.settings.topic(topics.EVENTS)
        for tp in tps:
            if tp.topic == events:
                self.qoe.forget(tp.partition)
            elif tp.topic == raw:
                self.validator.forget(tp.partition)

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        self._forget_partitions(set(revoked))

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        # A partition may come back with state another worker changed meanwhile.
        self._forget_partitions(set(assigned))

    def _state_last_offset(self, tp: TP) -> int | None:
        """The last input offset the state of `tp` applied (None: not an input of ours)."""
        if tp.topic == self.settings.topic(topics.RAW):
            raw = self.validate_stats.get(f"p{tp.partition}".encode())
            return ValidateStats.model_validate_json(raw).last_offset if raw else -1
        if tp.topic == self.settings.topic(topics.EVENTS):
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
        for agent in (self.validator, self.qoe, self.detect):
            agent.guard.forget()
        if offsets:
            # Not consumer.commit(): that commits only what faust counts as acknowledged.
            await cast(Any, consumer)._commit(offsets)
            log.info("resuming from the state's offsets: %s", offsets)

    async def _retry_rewinds(self) -> None:
        for agent in (self.validator, self.qoe, self.detect):
            await agent.guard.retry_rewinds()

    async def _log_counters(self) -> None:
        if self.counters:
            log.info("streams counters: %s", dict(sorted(self.counters.items())))
