"""The Faust app of the streams box: validate -> sessionize + roll up -> detect.

Agents (each `concurrency=1`, faust-streaming#606; scale with partitions and processes):

- `validate` (telemetry.raw.v1): parse bytes with the event TypeAdapter, drop duplicates by
  `event_id` (a bounded, expiring seen-set table), enrich, forward to telemetry.events.v1
  keyed by session_id; anything that fails goes to the dead-letter topic with its original
  bytes, reason and source topic/partition/offset.
- `qoe` (telemetry.events.v1): one `SessionState` per session and one `WindowState` per
  (partition, minute) in changelogged tables; emits session summaries (qoe.sessions.v1) and
  minute rollup partials (qoe.minute.v1); closed windows also go to an internal
  one-partition topic for the detector.
- `detect` (internal): merges the partials of a minute, runs `streams.detector`, emits
  incidents (ops.incidents.v1).

Faust pitfalls handled here:

- an exception escaping an agent skips the event on restart (faust-streaming#315) and can
  kill the agent quietly (#175): every event is processed in its own try/except and a
  failure is dead-lettered and counted, never raised;
- `take_events` acks a batch only after the loop body returns, and the consumer flushes the
  producer before committing, so sends and changelog writes are durable before the offsets
  move (at-least-once);
- inside a `take_events` batch there is no "current event", but a table write sends its
  changelog to the current event's partition: `_event_context` sets it per event, so state
  lands in the partition it belongs to and is restored by whoever owns that partition;
- bytes in, bytes out: raw key/value serializers, explicit JSON via pydantic;
- the app id (hence every changelog topic) includes `topic_prefix`, so test runs and
  tenants never share state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import EventT, StreamT
from pydantic import BaseModel, ConfigDict, Field

from ingest.deadletter import DeadLetter
from ingest.events import EVENT_ADAPTER
from ingest.validation import UNPROCESSABLE
from streams import detector, rollup, sessionizer
from streams.config import StreamsConfig
from streams.enrichment import Catalog, catalog_path
from streams.records import MinuteCounts, SessionSummary
from streams.rollup import WindowState
from streams.sessionizer import SessionState, minute_of, to_ms
from streams.validate import Rejected, parse
from streamwatch import topics
from streamwatch.settings import Settings

log = logging.getLogger("streamwatch.streams")

Ev = EventT[Any]


def _batches(stream: StreamT[Any]) -> faust.Stream[bytes]:
    # `take_events` exists on the concrete Stream only (faust's StreamT lacks it).
    return cast("faust.Stream[bytes]", stream)


# Internal topic (prefixed like every topic) carrying closed windows to the detector.
MINUTE_PARTIALS = "streams.minute-partials.v1"


def app_id(settings: Settings) -> str:
    """Faust app id: the consumer group and the prefix of every changelog topic."""
    return f"{settings.topic_prefix}streamwatch-streams"


@contextlib.contextmanager
def _event_context(event: Ev) -> Iterator[None]:
    # faust sets its "current event" context variable per event only when a stream is
    # iterated one event at a time; batches (take_events) leave it unset in the agent's
    # task, and a table write then fails or goes to the wrong changelog partition.
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class ValidateStats(BaseModel):
    """Reconciliation counters of one raw partition: raw = valid + dead + duplicates.

    `last_offset` makes them exact under redelivery: a message at or below it was
    counted (and forwarded) already and is skipped.
    """

    model_config = ConfigDict(extra="forbid")

    raw: int = 0
    valid: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    last_offset: int = -1


class DetectorRuntime(BaseModel):
    """The detector's table value: its state plus minutes waiting for more partials."""

    model_config = ConfigDict(extra="forbid")

    state: detector.DetectorState = Field(default_factory=detector.DetectorState)
    pending: dict[int, dict[str, MinuteCounts]] = Field(default_factory=dict)
    evaluated_upto_ms: int | None = None
    late_partials: int = 0


@dataclass
class _Index:
    """In-memory index of table keys, so periodic scans do not parse every state."""

    # key -> (partition, event-time ms that matters, closed)
    entries: dict[bytes, tuple[int, int, bool]] = field(default_factory=dict)
    built_for: set[int] = field(default_factory=set)


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
        self.detector_table = table("detector", 1)

        self._raw_watermark: dict[int, int] = {}
        self._watermark: dict[int, int] = {}
        self._session_index = _Index()
        self._window_index = _Index()
        # Parsed states of the partitions this worker owns: the table (and its changelog)
        # stays the source of truth, this only saves re-parsing JSON on every event.
        self._session_mem: dict[bytes, SessionState] = {}
        self._window_mem: dict[bytes, WindowState] = {}
        self._last_scan = 0.0
        self._last_seen_purge = 0.0
        self.counters: Counter[str] = Counter()

        self.app.agent(self.raw_topic, name="validate", concurrency=1)(self._validate_agent)
        self.app.agent(self.events_topic, name="qoe", concurrency=1)(self._qoe_agent)
        self.app.agent(self.partials_topic, name="detect", concurrency=1)(self._detect_agent)
        self.app.timer(30.0)(self._log_counters)
        # mode types handlers with a keyword-only `signal`; ours take it in **kwargs.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ rebalance ------

    def _forget_partitions(self, partitions: set[int]) -> None:
        for mem in (self._session_mem, self._window_mem):
            for key in [k for k in mem if _partition_of_key(k) in partitions]:
                del mem[key]
        for index in (self._session_index, self._window_index):
            for key in [k for k, v in index.entries.items() if v[0] in partitions]:
                del index.entries[key]
            index.built_for -= partitions

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        events = self.settings.topic(topics.EVENTS)
        self._forget_partitions({tp.partition for tp in revoked if tp.topic == events})

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        # A partition may come back with state another worker changed meanwhile.
        events = self.settings.topic(topics.EVENTS)
        self._forget_partitions({tp.partition for tp in assigned if tp.topic == events})

    # ------------------------------------------------------------------ validate -------

    async def _validate_agent(self, stream: StreamT[Any]) -> None:
        cfg = self.config
        async for batch in _batches(stream).take_events(cfg.batch_size, within=cfg.batch_within_s):
            await self._validate_batch(batch)

    async def _validate_batch(self, batch: Sequence[Ev]) -> None:
        stats: dict[int, ValidateStats] = {}
        last: dict[int, Ev] = {}
        ttl = self.config.dedupe_ttl_ms
        for ev in batch:
            msg = ev.message
            p = msg.partition
            st = stats.get(p)
            if st is None:
                cur = self.validate_stats.get(f"p{p}".encode())
                st = stats[p] = ValidateStats.model_validate_json(cur) if cur else ValidateStats()
            if msg.offset <= st.last_offset:
                # Read again after a restart: its outcome is already recorded (counters,
                # seen-set and forward were written before the offsets could commit).
                self.counters["validate.replayed"] += 1
                continue
            st.raw += 1
            st.last_offset = msg.offset
            last[p] = ev
            value: bytes = msg.value or b""
            with _event_context(ev):
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
                    if self.seen.get(key) is not None:
                        st.duplicates += 1
                        continue
                    self.seen[key] = json.dumps([p, msg.offset, t + ttl]).encode()
                    enriched = self.catalog.enrich(parsed)
                    await self._produce(
                        self.events_topic.get_topic_name(),
                        parsed.session_id.encode(),
                        enriched.model_dump_json().encode(),
                    )
                    st.valid += 1
                except Exception as exc:  # one bad event never stops the stream
                    log.exception("validate: event at %s[%d]@%d failed", msg.topic, p, msg.offset)
                    await self._dead_letter(
                        value, UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                    )
                    st.dead_lettered += 1
        for p, ev in last.items():
            with _event_context(ev):
                self.validate_stats[f"p{p}".encode()] = stats[p].model_dump_json().encode()
        self.counters["validate.raw"] += sum(1 for _ in batch)
        if time.monotonic() - self._last_seen_purge >= 10 * self.config.scan_every_s:
            self._last_seen_purge = time.monotonic()
            self._purge_seen(last)

    def _purge_seen(self, ctx: dict[int, Ev]) -> None:
        """Forget event ids past their TTL (event time), and the oldest beyond the cap."""
        by_partition: dict[int, list[tuple[int, bytes]]] = {}
        for key, value in list(self.seen.items()):
            p, _, expire_at = json.loads(value)
            by_partition.setdefault(p, []).append((expire_at, key))
        for p, entries in by_partition.items():
            if p not in ctx:
                continue  # no event of that partition to write its changelog with
            wm = self._raw_watermark.get(p, 0)
            entries.sort()
            excess = len(entries) - self.config.dedupe_max_keys_per_partition
            with _event_context(ctx[p]):
                for i, (expire_at, key) in enumerate(entries):
                    if expire_at > wm and i >= excess:
                        break
                    del self.seen[key]
                    self.counters["validate.seen_purged"] += 1

    async def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        # Straight to the producer: faust's Topic.send adds per-message bookkeeping we do
        # not need, since the consumer flushes the producer before every commit anyway.
        await self.app.producer.send(topic, key, value, None, None, None)

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
            await self._qoe_batch(batch)

    async def _qoe_batch(self, batch: Sequence[Ev]) -> None:
        sessions: dict[bytes, tuple[SessionState, Ev]] = {}
        windows: dict[bytes, tuple[WindowState, Ev]] = {}
        ctx: dict[int, Ev] = {}
        policy = self.config.session
        for ev in batch:
            msg = ev.message
            p = msg.partition
            ctx[p] = ev
            with _event_context(ev):
                try:
                    event = EVENT_ADAPTER.validate_json(msg.value or b"")
                    t = to_ms(event.event_time)
                    self._watermark[p] = max(self._watermark.get(p, 0), t)
                    skey = f"{p}|{event.session_id}".encode()
                    state = self._load_session(sessions, skey, ev, event.session_id)
                    applied = sessionizer.apply(state, event, policy, offset=msg.offset)
                    sessions[skey] = (state, ev)
                    self._session_index.entries[skey] = (p, state.last_event_ms, state.closed)
                    if applied.duplicate:
                        self.counters["qoe.duplicates"] += 1
                        continue
                    w = self._load_window(windows, p, t, ev, str(event.event_id))
                    rollup.add_event(w, state.dims, applied)
                    if applied.summary is not None:
                        await self._send_summary(applied.summary)
                    if applied.closed_now and applied.summary is not None:
                        end_ms = rollup.session_end_ms(applied.summary)
                        we = self._load_window(windows, p, end_ms, ev, f"{event.event_id}-end")
                        rollup.add_session_end(we, applied.summary)
                except Exception as exc:
                    log.exception("qoe: event at %s[%d]@%d failed", msg.topic, p, msg.offset)
                    await self._dead_letter(
                        msg.value or b"", UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                    )
                    self.counters["qoe.dead_lettered"] += 1
        if time.monotonic() - self._last_scan >= self.config.scan_every_s:
            self._last_scan = time.monotonic()
            await self._scan(sessions, windows, ctx)
        await self._flush(sessions, windows)

    def _load_session(
        self, cache: dict[bytes, tuple[SessionState, Ev]], key: bytes, ev: Ev, sid: str
    ) -> SessionState:
        hit = cache.get(key)
        if hit is not None:
            return hit[0]
        mem = self._session_mem.get(key)
        if mem is not None:
            return mem
        raw = self.sessions.get(key)
        return SessionState.model_validate_json(raw) if raw else sessionizer.new_state(sid)

    def _load_window(
        self,
        cache: dict[bytes, tuple[WindowState, Ev]],
        p: int,
        t_ms: int,
        ev: Ev,
        late_tag: str,
    ) -> WindowState:
        start = minute_of(t_ms)
        key = f"{p}|{start}|p{p}".encode()
        hit = cache.get(key)
        if hit is not None:
            cache[key] = (hit[0], ev)
            return hit[0]
        mem = self._window_mem.get(key)
        raw = None if mem is not None else self.windows.get(key)
        if mem is not None:
            w = mem
        elif raw:
            w = WindowState.model_validate_json(raw)
        else:
            partial = f"p{p}"
            retention = self.config.rollup.closed_retention_ms
            if start + rollup.WINDOW_MS + retention <= self._watermark.get(p, 0):
                # Its minute was published and forgotten: a partial of its own, so that
                # summing partials stays exact.
                partial = rollup.very_late_partial(partial, late_tag)
                key = f"{p}|{start}|{partial}".encode()
                self.counters["qoe.very_late"] += 1
            w = WindowState(window_start_ms=start, partial=partial)
        cache[key] = (w, ev)
        self._window_index.entries[key] = (p, start, w.closed)
        return w

    async def _send_summary(self, summary: SessionSummary) -> None:
        await self.sessions_topic.send(
            key=summary.session_id.encode(), value=summary.model_dump_json().encode()
        )
        self.counters["qoe.summaries"] += 1

    def _index(self, index: _Index, table: Any, parse_ms: Any, ctx: dict[int, Ev]) -> None:
        """Index the keys of partitions not indexed yet (after start or a rebalance)."""
        missing = set(ctx) - index.built_for
        if not missing:
            return
        for key, raw in list(table.items()):
            p = _partition_of_key(key)
            if p in missing and key not in index.entries:
                index.entries[key] = (p, *parse_ms(raw))
        index.built_for |= missing

    async def _scan(
        self,
        sessions: dict[bytes, tuple[SessionState, Ev]],
        windows: dict[bytes, tuple[WindowState, Ev]],
        ctx: dict[int, Ev],
    ) -> None:
        """Close idle sessions and due windows, forget old ones (event time per partition)."""
        spol, rpol = self.config.session, self.config.rollup

        def session_ms(raw: bytes) -> tuple[int, bool]:
            st = SessionState.model_validate_json(raw)
            return st.last_event_ms, st.closed

        def window_ms(raw: bytes) -> tuple[int, bool]:
            w = WindowState.model_validate_json(raw)
            return w.window_start_ms, w.closed

        self._index(self._session_index, self.sessions, session_ms, ctx)
        self._index(self._window_index, self.windows, window_ms, ctx)

        for key, (p, last_ms, closed) in list(self._session_index.entries.items()):
            if p not in ctx:
                continue
            wm = self._watermark.get(p, 0)
            due = not closed and last_ms + spol.inactivity_timeout_ms <= wm
            old = closed and last_ms + spol.closed_retention_ms <= wm
            if not (due or old):
                continue
            ev = ctx[p]
            if key in sessions:
                state = sessions[key][0]
            elif key in self._session_mem:
                state = self._session_mem[key]
            else:
                raw = self.sessions.get(key)
                if raw is None:  # revoked from this worker, or already deleted
                    del self._session_index.entries[key]
                    continue
                state = SessionState.model_validate_json(raw)
            summary = sessionizer.expire(state, wm, spol)
            if summary is not None:
                await self._send_summary(summary)
                w = self._load_window(
                    windows, p, rollup.session_end_ms(summary), ev, f"{key!r}-end"
                )
                rollup.add_session_end(w, summary)
                sessions[key] = (state, ev)
                self._session_index.entries[key] = (p, state.last_event_ms, True)
            elif sessionizer.forgettable(state, wm, spol):
                sessions.pop(key, None)
                self._session_mem.pop(key, None)
                with _event_context(ev):
                    self.sessions.pop(key, None)
                del self._session_index.entries[key]

        for key, (p, start, closed) in list(self._window_index.entries.items()):
            if p not in ctx:
                continue
            wm = self._watermark.get(p, 0)
            probe = WindowState(window_start_ms=start, partial="", closed=closed)
            if not closed and rollup.is_due(probe, wm, rpol):
                found = windows[key][0] if key in windows else self._window_from_table(key)
                if found is None:
                    del self._window_index.entries[key]
                    continue
                await self._publish(rollup.close(found), found)
                windows[key] = (found, ctx[p])
                self._window_index.entries[key] = (p, start, True)
            elif closed and rollup.forgettable(probe, wm, rpol):
                windows.pop(key, None)
                self._window_mem.pop(key, None)
                with _event_context(ctx[p]):
                    self.windows.pop(key, None)
                del self._window_index.entries[key]

    def _window_from_table(self, key: bytes) -> WindowState | None:
        if key in self._window_mem:
            return self._window_mem[key]
        raw = self.windows.get(key)
        return WindowState.model_validate_json(raw) if raw else None

    async def _publish(self, rollups: list[Any], window: WindowState | None) -> None:
        for r in rollups:
            await self.minute_topic.send(key=r.key.encode(), value=r.model_dump_json().encode())
        self.counters["qoe.rollups"] += len(rollups)
        if window is not None and window.revision == 0:
            await self.partials_topic.send(
                key=str(window.window_start_ms).encode(), value=window.model_dump_json().encode()
            )

    async def _flush(
        self,
        sessions: dict[bytes, tuple[SessionState, Ev]],
        windows: dict[bytes, tuple[WindowState, Ev]],
    ) -> None:
        """Write each touched state once per batch; publish late revisions of windows."""
        for key, (state, ev) in sessions.items():
            with _event_context(ev):
                self.sessions[key] = state.model_dump_json().encode()
            self._session_mem[key] = state
        for key, (w, ev) in windows.items():
            if w.closed:
                await self._publish(rollup.revise(w), None)
            with _event_context(ev):
                self.windows[key] = w.model_dump_json().encode()
            self._window_mem[key] = w

    # ------------------------------------------------------------------ detect ---------

    async def _detect_agent(self, stream: StreamT[Any]) -> None:
        async for batch in _batches(stream).take_events(100, within=1.0):
            await self._detect_batch(batch)

    async def _detect_batch(self, batch: Sequence[Ev]) -> None:
        key = b"state"
        raw = self.detector_table.get(key)
        rt = DetectorRuntime.model_validate_json(raw) if raw else DetectorRuntime()
        for ev in batch:
            try:
                w = WindowState.model_validate_json(ev.message.value or b"")
                if rt.evaluated_upto_ms is not None and w.window_start_ms <= rt.evaluated_upto_ms:
                    rt.late_partials += 1  # the minute was judged already; rollups have it
                    continue
                acc = rt.pending.setdefault(w.window_start_ms, {})
                for k, c in w.values.items():
                    if k in acc:
                        acc[k].merge_in(c)
                    else:
                        acc[k] = c
            except Exception as exc:
                log.exception("detect: partial failed")
                await self._dead_letter(
                    ev.message.value or b"", UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None
                )
        if rt.pending:
            newest = max(rt.pending)
            grace = self.config.detector_grace_minutes * rollup.WINDOW_MS
            for start in sorted(rt.pending):
                if start + grace > newest:
                    break
                values = {tuple(k.split("=", 1)): c for k, c in rt.pending.pop(start).items()}
                window_start = sessionizer.from_ms(start)
                for inc in detector.evaluate(rt.state, window_start, values, self.config.detector):  # type: ignore[arg-type]
                    await self.incidents_topic.send(
                        key=inc.incident_id.encode(), value=inc.model_dump_json().encode()
                    )
                    self.counters["detect.incidents"] += 1
                rt.evaluated_upto_ms = start
        with _event_context(batch[-1]):
            self.detector_table[key] = rt.model_dump_json().encode()

    # ------------------------------------------------------------------ ops ------------

    async def _log_counters(self) -> None:
        if self.counters:
            log.info("streams counters: %s", dict(sorted(self.counters.items())))
