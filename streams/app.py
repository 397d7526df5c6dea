"""The Faust app of the streams box: validate -> sessionize + roll up -> detect.

Agents (each `concurrency=1`, faust-streaming#606; scale with partitions and processes):

- `validate` (telemetry.raw.v1): parse bytes with the event TypeAdapter, drop duplicates by
  `event_id` (a bounded, expiring seen-set table), enrich, forward to telemetry.events.v1
  keyed by session_id; anything that fails goes to the dead-letter topic with its original
  bytes, reason and source topic/partition/offset.
- `qoe` (telemetry.events.v1): one `SessionState` per session and one `WindowState` per
  (partition, minute) in changelogged tables; emits session summaries (qoe.sessions.v1) and
  minute rollup partials (qoe.minute.v1); closed windows also go to an internal
  one-partition topic for the detector. Each partition's batch is committed all or nothing
  (`streams.committed_state`), and closing is driven by event time only, so a worker killed
  at any point and restarted publishes exactly what an uninterrupted one does.
- `detect` (internal): merges the partials of a minute (once every partition's is in),
  runs `streams.detector`, emits incidents (ops.incidents.v1).

Faust pitfalls handled here:

- an exception escaping an agent skips the event on restart (faust-streaming#315) and can
  kill the agent quietly (#175): every event is processed in its own try/except and a
  failure is dead-lettered and counted, never raised;
- `take_events` acks a batch only after the loop body returns, and the consumer flushes the
  producer before committing, so sends and changelog writes are durable before the offsets
  move (at-least-once; what is replayed is recognised by offset and skipped);
- a table write (`table[k] = v`) sends its changelog to the *current event's* partition,
  which a `take_events` batch leaves unset, and through a buffer that `producer.flush()`
  may leave undrained: `_put` writes the store and sends the changelog record itself, to
  the partition the state belongs to, so a flush is a real barrier;
- bytes in, bytes out: raw key/value serializers, explicit JSON via pydantic;
- the app id (hence every changelog topic) includes `topic_prefix`, so test runs and
  tenants never share state.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import faust
from faust.types import TP, EventT, StreamT
from pydantic import BaseModel, ConfigDict, Field

from ingest.deadletter import DeadLetter
from ingest.events import EVENT_ADAPTER
from ingest.validation import UNPROCESSABLE
from streams import dedupe, detector, minute_gate, rollup, sessionizer
from streams.committed_state import Checkpoint, Entry, committed_value, recover, with_hints
from streams.config import StreamsConfig
from streams.enrichment import Catalog, catalog_path
from streams.offset_guard import REWIND_RETRY_S, OffsetGuard
from streams.records import MinuteCounts, SessionSummary
from streams.rollup import WindowState
from streams.sessionizer import SessionState, minute_of, to_ms
from streams.validate import Rejected, parse
from streamwatch import topics
from streamwatch.settings import Settings

log = logging.getLogger("streamwatch.streams")

Ev = EventT[Any]
State = TypeVar("State", SessionState, WindowState)


def _batches(stream: StreamT[Any]) -> faust.Stream[bytes]:
    # `take_events` exists on the concrete Stream only (faust's StreamT lacks it).
    return cast("faust.Stream[bytes]", stream)


# Internal topic (prefixed like every topic) carrying closed windows to the detector.
MINUTE_PARTIALS = "streams.minute-partials.v1"


def app_id(settings: Settings) -> str:
    """Faust app id: the consumer group and the prefix of every changelog topic."""
    return f"{settings.topic_prefix}streamwatch-streams"


class ValidateStats(BaseModel):
    """Reconciliation counters of one raw partition: raw = valid + dead + duplicates.

    `last_offset` makes them exact under redelivery: a message at or below it was
    counted (and forwarded) already and is skipped.
    """

    model_config = ConfigDict(extra="forbid")

    raw: int = 0
    valid: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # includes `late_closed`
    late_closed: int = 0  # events of sessions closed and forgotten: kept, never re-counted
    last_offset: int = -1


class DetectorRuntime(BaseModel):
    """The detector's table value under `DETECTOR_STATE`: its state and what is pending.

    The partials of minutes not judged yet are table entries of their own
    (`_pending_key`): partitions can be many minutes of event time apart, and all of
    those minutes in one value would outgrow a Kafka message.
    """

    model_config = ConfigDict(extra="forbid")

    state: detector.DetectorState = Field(default_factory=detector.DetectorState)
    # Merged minutes as stored before partials had entries of their own (read, not written).
    pending: dict[int, dict[str, MinuteCounts]] = Field(default_factory=dict)
    partials: dict[int, list[str]] = Field(default_factory=dict)  # arrived, per minute
    drop: list[str] = Field(default_factory=list)  # entries of judged minutes, to delete
    # Per partition: the newest minute it has closed, and the record time it last spoke.
    closed_upto: dict[str, int] = Field(default_factory=dict)
    heard_ms: dict[str, int] = Field(default_factory=dict)
    since_ms: int | None = None  # record time of the first record heard
    clock_ms: int = 0  # newest record time heard
    evaluated_upto_ms: int | None = None
    late_partials: int = 0
    upto_offset: int = -1  # highest input offset whose effects are in this state


DETECTOR_STATE = b"state"


def _pending_key(start_ms: int, partial: str) -> bytes:
    """The detector-table entry holding one partition's partial of a pending minute."""
    return f"pending|{start_ms}|{partial}".encode()


@dataclass
class _Partition:
    """What this worker holds for one events partition it owns."""

    p: int
    cp: Checkpoint
    # key -> (last event time of a session / start of a window, closed): what scans read.
    session_index: dict[bytes, tuple[int, bool]] = field(default_factory=dict)
    window_index: dict[bytes, tuple[int, bool]] = field(default_factory=dict)
    # Parsed states; the table (and its changelog) stays the source of truth, this only
    # saves re-parsing JSON on every event.
    sessions: dict[bytes, SessionState] = field(default_factory=dict)
    windows: dict[bytes, WindowState] = field(default_factory=dict)
    # Written by the current batch: key -> committed image (the undo image).
    dirty_sessions: dict[bytes, bytes] = field(default_factory=dict)
    dirty_windows: dict[bytes, bytes] = field(default_factory=dict)
    # Forgotten by the last batch: deleted for good once its checkpoint is durable.
    forgotten_sessions: set[bytes] = field(default_factory=set)
    forgotten_windows: set[bytes] = field(default_factory=set)


def _hints_of(state: SessionState | WindowState) -> tuple[int, bool]:
    if isinstance(state, SessionState):
        return state.last_event_ms, state.closed
    return state.window_start_ms, state.closed


def _session_hints(cur: bytes) -> tuple[int, bool]:
    st = SessionState.model_validate_json(cur)
    return st.last_event_ms, st.closed


def _window_hints(cur: bytes) -> tuple[int, bool]:
    w = WindowState.model_validate_json(cur)
    return w.window_start_ms, w.closed


def _partition_of_key(key: bytes) -> int:
    return int(key.split(b"|", 1)[0])


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
        raw_parts = settings.partitions_for(topics.RAW)
        events_parts = settings.partitions_for(topics.EVENTS)
        data_dir = (settings.data_dir / "faust" / f"{app_id(settings)}-w{worker_index}").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            app_id(settings),
            broker=[f"kafka://{hp}" for hp in settings.bootstrap_servers.split(",")],
            store="memory://",  # state is rebuilt from the changelog topics on start
            datadir=str(data_dir),
            autodiscover=False,
            web_enabled=False,
            topic_partitions=raw_parts,
            topic_replication_factor=1,
            topic_disable_leader=True,
            producer_acks=-1,
            # aiokafka's default 16 KiB batches make a round trip per few messages (session
            # states are KBs); big batches are what lets acks=all keep up.
            producer_max_batch_size=self.config.producer_max_batch_bytes,
            producer_linger=self.config.producer_linger_s,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=self.config.commit_interval_s,
            broker_session_timeout=self.config.broker_session_timeout_s,
            table_standby_replicas=0,
            key_serializer="raw",
            value_serializer="raw",
        )
        raw_opts: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.raw_topic = self.app.topic(settings.topic(topics.RAW), **raw_opts)
        self.events_topic = self.app.topic(settings.topic(topics.EVENTS), **raw_opts)
        self.deadletter_topic = self.app.topic(settings.topic(topics.DEADLETTER), **raw_opts)
        self.sessions_topic = self.app.topic(settings.topic(topics.SESSIONS), **raw_opts)
        self.minute_topic = self.app.topic(settings.topic(topics.MINUTE), **raw_opts)
        self.incidents_topic = self.app.topic(settings.topic(topics.INCIDENTS), **raw_opts)
        self.partials_topic = self.app.topic(
            settings.topic(MINUTE_PARTIALS), partitions=1, internal=True, **raw_opts
        )

        def table(name: str, partitions: int) -> Any:
            # key_type/value_type=bytes is what makes faust use the raw codec for the
            # changelog *and* for recovery; a Schema alone leaves recovery on json.
            return self.app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)

        self.seen = table("seen", raw_parts)
        self.validate_stats = table("validate-stats", raw_parts)
        self.sessions = table("sessions", events_parts)
        self.windows = table("windows", events_parts)
        self.checkpoints = table("checkpoints", events_parts)
        self.detector_table = table("detector", 1)

        self._raw_watermark: dict[int, int] = {}
        self._parts: dict[int, _Partition] = {}
        self._expected_partials = {f"p{p}" for p in range(events_parts)}
        self._last_seen_purge = 0.0
        self._seen_index = dedupe.SeenIndex()
        self.counters: Counter[str] = Counter()
        # The state's last offsets, not faust's commits, decide what is processed next.
        self._validate_guard = OffsetGuard(self.app.consumer, self.counters, "validate")
        self._qoe_guard = OffsetGuard(self.app.consumer, self.counters, "qoe")
        self._detect_guard = OffsetGuard(self.app.consumer, self.counters, "detect")

        self.app.agent(self.raw_topic, name="validate", concurrency=1)(self._validate_agent)
        self.app.agent(self.events_topic, name="qoe", concurrency=1)(self._qoe_agent)
        self.app.agent(self.partials_topic, name="detect", concurrency=1)(self._detect_agent)
        self.app.timer(30.0)(self._log_counters)
        self.app.timer(REWIND_RETRY_S)(self._retry_rewinds)
        self.app.on_rebalance_complete.connect(self._commit_state_offsets)  # type: ignore[arg-type]
        # mode types handlers with a keyword-only `signal`; ours take it in **kwargs.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ rebalance ------

    def _forget_partitions(self, tps: set[TP]) -> None:
        raw, events = self.settings.topic(topics.RAW), self.settings.topic(topics.EVENTS)
        for tp in tps:
            if tp.topic == events:
                self._parts.pop(tp.partition, None)
            elif tp.topic == raw:
                self._seen_index.forget([tp.partition])

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        self._forget_partitions(set(revoked))

    async def _commit_state_offsets(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Commit, for every assigned input partition, the offset after the state's last.

        Runs once the tables are recovered and just before faust seeks the consumer to the
        committed offsets: whatever faust committed before (it can run ahead of what was
        processed, see streams.offset_guard), processing resumes where the state is.
        """
        consumer = self.app.consumer
        raw, events = self.settings.topic(topics.RAW), self.settings.topic(topics.EVENTS)
        offsets: dict[TP, int] = {}
        for tp in consumer.assignment():
            state: bytes | None = None
            if tp.topic == raw:
                state = self.validate_stats.get(f"p{tp.partition}".encode())
                last = ValidateStats.model_validate_json(state).last_offset if state else -1
            elif tp.topic == events:
                state = self.checkpoints.get(str(tp.partition).encode())
                last = Checkpoint.model_validate_json(state).upto if state else -1
            elif tp.topic == self.partials_topic.get_topic_name():
                state = self.detector_table.get(DETECTOR_STATE)
                last = DetectorRuntime.model_validate_json(state).upto_offset if state else -1
            else:
                continue
            if last >= 0:
                offsets[tp] = last + 1
        for guard in (self._validate_guard, self._qoe_guard, self._detect_guard):
            guard.forget()
        if offsets:
            # Not consumer.commit(): that commits only what faust counts as acknowledged.
            await cast(Any, consumer)._commit(offsets)
            log.info("resuming from the state's offsets: %s", offsets)

    async def _retry_rewinds(self) -> None:
        for guard in (self._validate_guard, self._qoe_guard, self._detect_guard):
            await guard.retry_rewinds()

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        # A partition may come back with state another worker changed meanwhile.
        self._forget_partitions(set(assigned))

    # ------------------------------------------------------------------ validate -------

    async def _validate_agent(self, stream: StreamT[Any]) -> None:
        cfg = self.config
        async for batch in _batches(stream).take_events(cfg.batch_size, within=cfg.batch_within_s):
            try:
                await self._validate_batch(batch)
            except Exception:
                # The stats were not written, so the offset guard re-reads the batch.
                log.exception("validate: batch failed; it will be read again")
                self.counters["validate.batch_failures"] += 1

    async def _validate_batch(self, batch: Sequence[Ev]) -> None:
        stats: dict[int, ValidateStats] = {}
        last: dict[int, Ev] = {}
        for ev in batch:
            msg = ev.message
            p = msg.partition
            st = stats.get(p)
            if st is None:
                cur = self.validate_stats.get(f"p{p}".encode())
                st = stats[p] = ValidateStats.model_validate_json(cur) if cur else ValidateStats()
            # The stats are written only after what they count is durable, so their last
            # offset says where to continue (streams.offset_guard).
            if not await self._validate_guard.admit(msg.topic, p, msg.offset, st.last_offset):
                continue
            st.raw += 1
            st.last_offset = msg.offset
            last[p] = ev
            value: bytes = msg.value or b""
            try:
                parsed = parse(value)
                if isinstance(parsed, Rejected):
                    await self._dead_letter(
                        value, parsed.reason, parsed.detail, ev, parsed.event_id
                    )
                    st.dead_lettered += 1
                    continue
                t = to_ms(parsed.event_time)
                self._raw_watermark[p] = max(self._raw_watermark.get(p, 0), t)
                key = str(parsed.event_id).encode()
                seen = self.seen.get(key)
                if seen is not None and json.loads(seen)[:2] != [p, msg.offset]:
                    st.duplicates += 1
                    continue
                headers: list[tuple[str, bytes]] | None = None
                if seen is None and self.seen.get(dedupe.closed_key(parsed.session_id)):
                    # Its session was closed and forgotten (streams.dedupe): a replay, or an
                    # event too late to count. Kept (the stores dedupe by id) but tagged so
                    # that no summary, rollup or incident counts it again.
                    st.duplicates += 1
                    st.late_closed += 1
                    headers = [(dedupe.LATE_HEADER, b"1")]
                else:
                    # (Seen at this very offset: our own forward before a crash, whose
                    # stats never landed. Forward again; sessions drop the second copy.)
                    await self._put(
                        self.seen, p, key, dedupe.id_value(p, msg.offset, t, parsed.session_id)
                    )
                    if seen is None:
                        self._seen_index.add_id(p, key, t, parsed.session_id)
                    st.valid += 1
                enriched = self.catalog.enrich(parsed)
                await self.app.producer.send(
                    self.events_topic.get_topic_name(),
                    parsed.session_id.encode(),
                    enriched.model_dump_json().encode(),
                    None,
                    None,
                    headers,
                )
            except Exception as exc:  # one bad event never stops the stream
                log.exception("validate: event at %s[%d]@%d failed", msg.topic, p, msg.offset)
                await self._dead_letter(
                    value, UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                )
                st.dead_lettered += 1
        # The stats say "offsets up to here are done": they must not land before the
        # forwards, seen-set entries and dead letters they count.
        await self.app.producer.flush()
        for p in last:
            await self._put(
                self.validate_stats, p, f"p{p}".encode(), stats[p].model_dump_json().encode()
            )
        self.counters["validate.raw"] += sum(1 for _ in batch)
        if time.monotonic() - self._last_seen_purge >= self.config.seen_purge_every_s:
            self._last_seen_purge = time.monotonic()
            await self._purge_seen(set(last))

    async def _purge_seen(self, owned: set[int]) -> None:
        """Forget the ids of sessions over, keeping a small marker of each (streams.dedupe)."""
        policy = dedupe.DedupePolicy.of(self.config)
        entries: list[tuple[bytes, bytes]] | None = None
        for p in sorted(owned):
            if not self._seen_index.loaded(p):
                entries = entries if entries is not None else list(self.seen.items())
                self._seen_index.load(p, entries)
            plan = self._seen_index.plan(p, self._raw_watermark.get(p, 0), policy)
            # Markers first: a crash between the two leaves ids that the next purge
            # removes, never a forgotten session without its marker.
            for part, key, value in plan.markers:
                await self._put(self.seen, part, key, value)
            for part, key in plan.forget:
                await self._put(self.seen, part, key, None)
            self.counters["validate.seen_purged"] += len(plan.forget)
            self.counters["validate.sessions_closed"] += len(plan.markers)

    async def _dead_letter(
        self, value: bytes, reason: str, detail: str, ev: Ev, event_id: str | None
    ) -> None:
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

    # ------------------------------------------------------------------ qoe ------------

    async def _qoe_agent(self, stream: StreamT[Any]) -> None:
        cfg = self.config
        async for batch in _batches(stream).take_events(cfg.batch_size, within=cfg.batch_within_s):
            try:
                await self._qoe_batch(batch)
            except Exception:
                # Not one event's fault (those are dead-lettered): e.g. the producer failed.
                # Forget what this worker holds in memory; the next batch recovers the
                # partitions from their checkpoints and the offset guard rewinds to them.
                log.exception("qoe: batch failed; recovering from the last checkpoints")
                self.counters["qoe.batch_failures"] += 1
                self._parts.clear()

    async def _qoe_batch(self, batch: Sequence[Ev]) -> None:
        """One batch, committed per partition (see `streams.committed_state`)."""
        # The previous batch's checkpoints must be durable before anything of this batch
        # is: a checkpoint is what says the entries written before it are committed.
        await self.app.producer.flush()
        touched: dict[int, _Partition] = {}
        for ev in batch:
            msg = ev.message
            part = touched.get(msg.partition)
            if part is None:
                part = touched[msg.partition] = await self._partition(msg.partition)
                await self._drop_tombstones(part)
            if not await self._qoe_guard.admit(msg.topic, msg.partition, msg.offset, part.cp.upto):
                continue
            try:
                if dedupe.is_late(msg.headers):
                    # Counted by the validator already (streams.dedupe): kept in the stores,
                    # never counted again by a summary, rollup or incident.
                    self.counters["qoe.late_closed"] += 1
                else:
                    await self._qoe_event(part, ev)
            except Exception as exc:
                log.exception("qoe: %s[%d]@%d failed", msg.topic, msg.partition, msg.offset)
                await self._dead_letter(
                    msg.value or b"", UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                )
                self.counters["qoe.dead_lettered"] += 1
            part.cp.upto = msg.offset
            if part.cp.watermark_ms >= part.cp.next_scan_ms:
                # Closing is driven by event time, never the wall clock: a replay after a
                # crash then closes (and publishes) exactly what the lost batch did.
                await self._scan(part)
                part.cp.next_scan_ms = part.cp.watermark_ms + self.config.scan_step_ms
        for part in touched.values():
            await self._write_entries(part)
        await self.app.producer.flush()
        for part in touched.values():
            part.cp.seq += 1
            cp = part.cp.model_dump_json().encode()
            await self._put(self.checkpoints, part.p, str(part.p).encode(), cp)

    async def _qoe_event(self, part: _Partition, ev: Ev) -> None:
        msg = ev.message
        event = EVENT_ADAPTER.validate_json(msg.value or b"")
        t = to_ms(event.event_time)
        part.cp.watermark_ms = max(part.cp.watermark_ms, t)
        skey = f"{part.p}|{event.session_id}".encode()
        state = self._session(part, skey) or sessionizer.new_state(event.session_id)
        self._touch(part.dirty_sessions, self.sessions, skey)
        part.sessions[skey] = state
        applied = sessionizer.apply(state, event, self.config.session, offset=msg.offset)
        part.session_index[skey] = (state.last_event_ms, state.closed)
        if applied.duplicate:
            self.counters["qoe.duplicates"] += 1
            return
        rollup.add_event(self._window(part, t, str(event.event_id)), state.dims, applied)
        if applied.summary is not None:
            await self._send_summary(applied.summary)
            if applied.closed_now:
                end_ms = rollup.session_end_ms(applied.summary)
                we = self._window(part, end_ms, f"{event.event_id}-end")
                rollup.add_session_end(we, applied.summary)

    async def _partition(self, p: int) -> _Partition:
        """This worker's state of events partition `p`, recovered to its checkpoint."""
        part = self._parts.get(p)
        if part is not None:
            return part
        raw = self.checkpoints.get(str(p).encode())
        part = _Partition(p, Checkpoint.model_validate_json(raw) if raw else Checkpoint())
        for table, index, hints in (
            (self.sessions, part.session_index, _session_hints),
            (self.windows, part.window_index, _window_hints),
        ):
            mine = [(k, v) for k, v in list(table.items()) if _partition_of_key(k) == p]
            for repair in recover(mine, part.cp):
                if repair.entry is None:
                    await self._put(table, p, repair.key, None)
                    continue
                entry = repair.entry
                if repair.action == "rewrite":
                    entry = with_hints(entry, hints)
                    await self._put(table, p, repair.key, entry.encode())
                    self.counters["qoe.rolled_back"] += 1
                index[repair.key] = (entry.ms, entry.closed)
        self._parts[p] = part
        return part

    async def _drop_tombstones(self, part: _Partition) -> None:
        """Delete for good what the last (now durable) checkpoint committed as forgotten."""
        for table, keys in (
            (self.sessions, part.forgotten_sessions),
            (self.windows, part.forgotten_windows),
        ):
            for key in keys:
                raw = table.get(key)
                if raw is not None and not Entry.decode(raw).cur:
                    await self._put(table, part.p, key, None)
            keys.clear()

    async def _put(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
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

    @staticmethod
    def _touch(dirty: dict[bytes, bytes], table: Any, key: bytes) -> None:
        # The table holds the committed entry until this batch writes: its image is the
        # undo image of the write.
        if key not in dirty:
            dirty[key] = committed_value(table.get(key))

    @staticmethod
    def _load(mem: dict[bytes, State], table: Any, model: type[State], key: bytes) -> State | None:
        """The parsed state of `key`: from memory, else the table's committed image."""
        state = mem.get(key)
        if state is None:
            cur = committed_value(table.get(key))
            if cur:
                state = mem[key] = model.model_validate_json(cur)
        return state

    def _session(self, part: _Partition, key: bytes) -> SessionState | None:
        return self._load(part.sessions, self.sessions, SessionState, key)

    def _window_state(self, part: _Partition, key: bytes) -> WindowState | None:
        return self._load(part.windows, self.windows, WindowState, key)

    def _window(self, part: _Partition, t_ms: int, late_tag: str) -> WindowState:
        """The window of `t_ms` in this partition, marked as written by this batch."""
        start = minute_of(t_ms)
        key = f"{part.p}|{start}|p{part.p}".encode()
        w = self._window_state(part, key)
        if w is None:
            partial = f"p{part.p}"
            retention = self.config.rollup.closed_retention_ms
            if start + rollup.WINDOW_MS + retention <= part.cp.watermark_ms:
                # Its minute was published and forgotten: a partial of its own, so that
                # summing partials stays exact.
                partial = rollup.very_late_partial(partial, late_tag)
                key = f"{part.p}|{start}|{partial}".encode()
                self.counters["qoe.very_late"] += 1
            w = part.windows[key] = WindowState(window_start_ms=start, partial=partial)
        self._touch(part.dirty_windows, self.windows, key)
        part.window_index[key] = (start, w.closed)
        if w.closed and key.decode() not in part.cp.revise:
            part.cp.revise.append(key.decode())  # a late event: publish a revision at the scan
        return w

    async def _send_summary(self, summary: SessionSummary) -> None:
        await self.sessions_topic.send(
            key=summary.session_id.encode(), value=summary.model_dump_json().encode()
        )
        self.counters["qoe.summaries"] += 1

    async def _scan(self, part: _Partition) -> None:
        """Close idle sessions and due windows, revise late ones, forget old ones."""
        spol, rpol = self.config.session, self.config.rollup
        wm = part.cp.watermark_ms
        # Sorted: the order of what is published must not depend on how the index was built.
        for key in sorted(
            k
            for k, (last_ms, closed) in part.session_index.items()
            if (not closed and last_ms + spol.inactivity_timeout_ms <= wm)
            or (closed and last_ms + spol.closed_retention_ms <= wm)
        ):
            state = self._session(part, key)
            if state is None:
                del part.session_index[key]
                continue
            self._touch(part.dirty_sessions, self.sessions, key)
            summary = sessionizer.expire(state, wm, spol)
            if summary is not None:
                await self._send_summary(summary)
                end_window = self._window(part, rollup.session_end_ms(summary), f"{key!r}-end")
                rollup.add_session_end(end_window, summary)
                part.session_index[key] = (state.last_event_ms, True)
            elif sessionizer.forgettable(state, wm, spol):
                del part.sessions[key]
                del part.session_index[key]
                part.forgotten_sessions.add(key)
        due = sorted(
            k
            for k, (start, closed) in part.window_index.items()
            if not closed and start + rollup.WINDOW_MS + rpol.allowed_lateness_ms <= wm
        )
        for key in due:
            w = self._window_state(part, key)
            if w is None:
                del part.window_index[key]
                continue
            self._touch(part.dirty_windows, self.windows, key)
            await self._publish(rollup.close(w), w)
            part.window_index[key] = (w.window_start_ms, True)
        for key_s in sorted(part.cp.revise):
            key = key_s.encode()
            w = self._window_state(part, key)
            if w is not None:
                self._touch(part.dirty_windows, self.windows, key)
                await self._publish(rollup.revise(w), None)
        part.cp.revise.clear()
        for key in sorted(
            k
            for k, (start, closed) in part.window_index.items()
            if closed and start + rollup.WINDOW_MS + rpol.closed_retention_ms <= wm
        ):
            self._touch(part.dirty_windows, self.windows, key)
            part.windows.pop(key, None)
            del part.window_index[key]
            part.forgotten_windows.add(key)
        # After this scan's partials: the detector then knows this partition is done with
        # every minute up to here, however fast or slow the other partitions go.
        done = minute_gate.closed_upto(wm, rollup.WINDOW_MS, rpol.allowed_lateness_ms)
        if done > part.cp.closed_upto_ms:
            progress = minute_gate.PartitionProgress(partial=f"p{part.p}", closed_upto_ms=done)
            await self.partials_topic.send(
                key=minute_gate.progress_key(progress.partial),
                value=progress.model_dump_json().encode(),
            )
            part.cp.closed_upto_ms = done

    async def _publish(self, rollups: list[Any], window: WindowState | None) -> None:
        for r in rollups:
            await self.minute_topic.send(key=r.key.encode(), value=r.model_dump_json().encode())
        self.counters["qoe.rollups"] += len(rollups)
        if window is not None and window.revision == 0:
            await self.partials_topic.send(
                key=str(window.window_start_ms).encode(), value=window.model_dump_json().encode()
            )

    async def _write_entries(self, part: _Partition) -> None:
        """Write every state the batch touched, with its undo image, under the next seq."""
        seq = part.cp.seq + 1
        for table, dirty, mem in (
            (self.sessions, part.dirty_sessions, part.sessions),
            (self.windows, part.dirty_windows, part.windows),
        ):
            for key, prev in dirty.items():
                state = mem.get(key)
                if state is None:  # forgotten in this batch: an uncommitted deletion
                    entry = Entry(seq, 0, True, b"", prev)
                else:
                    cur = state.model_dump_json().encode()
                    entry = Entry(seq, *_hints_of(state), cur, prev)
                await self._put(table, part.p, key, entry.encode())
            dirty.clear()

    # ------------------------------------------------------------------ detect ---------

    async def _detect_agent(self, stream: StreamT[Any]) -> None:
        async for batch in _batches(stream).take_events(100, within=1.0):
            await self._detect_batch(batch)

    async def _detect_batch(self, batch: Sequence[Ev]) -> None:
        raw = self.detector_table.get(DETECTOR_STATE)
        rt = DetectorRuntime.model_validate_json(raw) if raw else DetectorRuntime()
        # Entries of minutes judged by the last batch; deleted only now that the state
        # saying so is written (a crash in between leaves them listed, deleted next time).
        for stale in rt.drop:
            await self._put(self.detector_table, 0, stale.encode(), None)
        rt.drop.clear()
        for ev in batch:
            msg = ev.message
            if not await self._detect_guard.admit(
                msg.topic, msg.partition, msg.offset, rt.upto_offset
            ):
                continue
            rt.upto_offset = msg.offset
            heard = int(msg.timestamp * 1000)
            rt.clock_ms = max(rt.clock_ms, heard)
            if rt.since_ms is None:
                rt.since_ms = heard
            try:
                if minute_gate.is_progress(msg.key):
                    progress = minute_gate.PartitionProgress.model_validate_json(msg.value or b"")
                    p = progress.partial
                    rt.heard_ms[p] = heard
                    rt.closed_upto[p] = max(rt.closed_upto.get(p, 0), progress.closed_upto_ms)
                    await self._judge_ready_minutes(rt)
                    continue
                w = WindowState.model_validate_json(msg.value or b"")
                start = w.window_start_ms
                owner = rollup.partition_of(w.partial)
                rt.heard_ms[owner] = heard
                if (rt.evaluated_upto_ms is not None and start <= rt.evaluated_upto_ms) or (
                    start <= rt.closed_upto.get(owner, start - 1)
                ):
                    # Judged already, or a late window its partition closed after saying it
                    # was done with the minute: the rollups have it, the judgement does not.
                    rt.late_partials += 1
                    continue
                arrived = rt.partials.setdefault(start, [])
                if w.partial in arrived:
                    continue  # re-published by a worker that replayed after a crash
                arrived.append(w.partial)
                await self._put(
                    self.detector_table, 0, _pending_key(start, w.partial), msg.value or b""
                )
            except Exception as exc:
                log.exception("detect: partial failed")
                await self._dead_letter(
                    msg.value or b"", UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                )
                continue
            await self._judge_ready_minutes(rt)
        await self._put(self.detector_table, 0, DETECTOR_STATE, rt.model_dump_json().encode())

    async def _judge_ready_minutes(self, rt: DetectorRuntime) -> None:
        """Judge the oldest pending minutes every partition is done with (`minute_gate`).

        Judging per arriving record, in topic order, makes the outcome independent of how
        the records were batched.
        """
        if not rt.partials and not rt.pending:
            return
        ready = minute_gate.judgeable(
            rt.partials.keys() | rt.pending.keys(),
            rt.partials,
            rt.closed_upto,
            rt.heard_ms,
            rt.since_ms if rt.since_ms is not None else rt.clock_ms,
            rt.clock_ms,
            self._expected_partials,
            int(self.config.detector_silence_s * 1000),
        )
        for start in ready:
            parts = [rt.pending.pop(start, {})]  # legacy: merged before entries existed
            for partial in rt.partials.pop(start, []):  # in arrival order: same float sums
                key = _pending_key(start, partial)
                rt.drop.append(key.decode())
                raw = self.detector_table.get(key)
                if raw is not None:
                    parts.append(WindowState.model_validate_json(raw).values)
            values = detector.merge_partials(
                [(rollup.split_key(k), c) for part in parts for k, c in part.items()]
            )
            for inc in detector.evaluate(
                rt.state,
                sessionizer.from_ms(start),
                values,
                self.config.detector,
            ):
                await self.incidents_topic.send(
                    key=inc.incident_id.encode(), value=inc.model_dump_json().encode()
                )
                self.counters["detect.incidents"] += 1
            rt.evaluated_upto_ms = start

    # ------------------------------------------------------------------ ops ------------

    async def _log_counters(self) -> None:
        if self.counters:
            log.info("streams counters: %s", dict(sorted(self.counters.items())))
