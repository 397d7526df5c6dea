"""The one pass over telemetry.raw.v1: validate, dedupe, sessionize, roll up.

The raw topic is keyed by session_id, so one agent does it all per raw partition: each
message is parsed, deduplicated and forwarded to telemetry.events.v1 for the sinks
(`streams.validate_agent`), and applied in the same pass to its session and minute window.
Each raw partition this worker owns is a `streams.partition.PartitionState` (the same code
`streams.replay` runs) whose states live in two changelogged tables, sessions and windows.
A batch is committed per partition all or nothing (`streams.committed_state`): every state
it writes is stored as an entry with its undo image, and the partition's checkpoint, which
also carries the partition's reconciliation counters, is written last: the one commit
point (`QoeAgent.commit`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types import StreamT
from pydantic import BaseModel

from ingest.validation import UNPROCESSABLE
from streams.batch_feed import Fetch, RawFeed
from streams.committed_state import Checkpoint, Entry, committed_value, recover, with_hints
from streams.offset_guard import OffsetGuard
from streams.partition import PartitionState, Published, partition_of_key
from streams.rollup import WindowState
from streams.runtime import AgentRuntime, Source
from streams.sessionizer import SessionState
from streams.table_io import reads
from streams.validate import Rejected
from streams.validate_agent import ValidateStep
from streamwatch.errors import ConfigurationError
from streamwatch.key_partition import key_partition

log = logging.getLogger("streamwatch.streams")


def _session_hints(cur: bytes) -> tuple[int, bool]:
    st = SessionState.model_validate_json(cur)
    return st.last_event_ms, st.closed


def _window_hints(cur: bytes) -> tuple[int, bool]:
    w = WindowState.model_validate_json(cur)
    return w.window_start_ms, w.closed


@dataclass
class TableStore:
    """A partition's states in the sessions and windows tables, with the undo images of
    what the current batch writes (key -> committed image)."""

    sessions: Mapping[bytes, bytes]  # the tables' entries (streams.table_io.reads)
    windows: Mapping[bytes, bytes]
    dirty_sessions: dict[bytes, bytes] = field(default_factory=dict)
    dirty_windows: dict[bytes, bytes] = field(default_factory=dict)

    def load_session(self, key: bytes) -> SessionState | None:
        """The committed session state of `key`, parsed."""
        cur = committed_value(self.sessions.get(key))
        return SessionState.model_validate_json(cur) if cur else None

    def load_window(self, key: bytes) -> WindowState | None:
        """The committed window state of `key`, parsed."""
        cur = committed_value(self.windows.get(key))
        return WindowState.model_validate_json(cur) if cur else None

    def touch_session(self, key: bytes) -> None:
        """Keep the committed image of a session the batch writes (its undo image)."""
        if key not in self.dirty_sessions:
            self.dirty_sessions[key] = committed_value(self.sessions.get(key))

    def touch_window(self, key: bytes) -> None:
        """Keep the committed image of a window the batch writes (its undo image)."""
        if key not in self.dirty_windows:
            self.dirty_windows[key] = committed_value(self.windows.get(key))


class _Partition(PartitionState):
    store: TableStore

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Forgotten by a batch whose checkpoint is written: deleted for good once it is
        # durable (after the next flush).
        self.committed_forgotten_sessions: set[bytes] = set()
        self.committed_forgotten_windows: set[bytes] = set()


class QoeAgent:
    """Runs on the raw topic; its tables are the seen-set, sessions, windows, checkpoints."""

    def __init__(self, rt: AgentRuntime, guard: OffsetGuard, feed: RawFeed) -> None:
        self.rt = rt
        self.guard = guard
        self.feed = feed
        self.validate = ValidateStep(rt)
        self.lock = asyncio.Lock()  # held while a batch is applied and committed
        self.owned: set[int] = set()  # raw partitions assigned to this worker
        self._parts: dict[int, _Partition] = {}
        self._committed: dict[int, int] = {}  # partition -> last offset of its checkpoint
        self._checkpoints_in_flight: list[asyncio.Future[Any]] = []  # see `commit`
        # Partitions applied since their last checkpoint, committed together every
        # `checkpoint_interval_s` (see `run`).
        self._pending: dict[int, _Partition] = {}
        self._last_checkpoint = time.monotonic()
        self._last_purge = 0.0

    def forget(self, partition: int) -> None:
        """Drop what this worker holds of a raw partition (revoked or reassigned)."""
        self._parts.pop(partition, None)
        self._pending.pop(partition, None)
        self._committed.pop(partition, None)
        self.validate.forget(partition)

    async def run(self, stream: StreamT[Any]) -> None:
        """The agent: batches of raw records from the feed, applied as they come, their
        outputs handed to the producer at once; the partitions they changed are committed
        together every `checkpoint_interval_s`, and whenever the input pauses.

        A session with events in several batches of one interval is written once: its
        whole state per event was the worker's largest write.

        The faust stream of the raw topic stays empty: its records come through `feed`
        (`streams.batch_feed`), a fetch at a time.
        """
        cfg = self.rt.config
        while True:
            fetches = await self.feed.take(cfg.batch_size, cfg.batch_within_s)
            async with self.lock:
                # A partition revoked while its records waited is not ours to apply.
                mine = [f for f in fetches if f.partition in self.owned]
                if not mine and not self._pending:
                    continue
                try:
                    if mine:
                        # Records per batch, as the feed delivers them (logged every 30 s).
                        self.rt.counters["qoe.batches"] += 1
                        self.rt.counters["qoe.batch_records"] += sum(len(f.records) for f in mine)
                        await self.batch(mine)
                    due = time.monotonic() - self._last_checkpoint >= cfg.checkpoint_interval_s
                    if not mine or due:
                        await self.checkpoint()
                except ConfigurationError as exc:
                    # State this worker must not guess about (an older worker's layout):
                    # retrying every batch would only flood the log. Stop, saying why.
                    log.critical("qoe: stopping the worker: %s", exc)
                    await self.rt.app.crash(exc)
                    return
                except Exception:
                    # Not one event's fault (those are dead-lettered): e.g. the producer
                    # failed. Forget what this worker holds in memory; the next batch
                    # recovers the partitions from their checkpoints and the offset guard
                    # rewinds to them.
                    log.exception("qoe: batch failed; recovering from the last checkpoints")
                    self.rt.counters["qoe.batch_failures"] += 1
                    self._parts.clear()
                    self._pending.clear()

    async def revoke(self, partitions: set[int]) -> None:
        """Stop applying `partitions`: drop their queued records and wait for the batch in
        flight, so that nothing of theirs is written once the rebalance goes on."""
        self.owned -= partitions
        self.feed.drop(partitions)
        async with self.lock:
            # What was applied since the last checkpoint is committed, so the next owner
            # starts where this worker stopped instead of applying it again.
            if self._pending:
                await self.checkpoint()
            for p in partitions:
                self.forget(p)
            # The last commit's checkpoints were handed to the producer, not awaited (step
            # 0 of the next commit does that): the next owner recovers these partitions
            # from the changelog, so they must be there first. Faust's own flush on a
            # revoke ran before the batch in flight finished.
            await self.rt.flush()

    def assign(self, partitions: set[int]) -> None:
        """Apply `partitions` from now on, from their committed state."""
        for p in partitions:
            self.forget(p)  # another worker may have changed it meanwhile
        self.owned |= partitions

    def committed_offsets(self) -> dict[int, int]:
        """Per partition held, the offset after the last one its committed state applied."""
        return {p: upto + 1 for p, upto in self._committed.items() if p in self.owned}

    async def batch(self, batch: Sequence[Fetch]) -> None:
        """Validate and apply one batch of raw records (fetches, a partition each) and hand
        what it publishes to the producer; its partitions are committed at the next
        `checkpoint`."""
        touched = self._pending
        out = Published()
        validate = self.validate.one
        guard = self.guard
        topic = self.feed.topic
        for p, records in batch:
            part = touched.get(p)
            if part is None:
                part = touched[p] = await self._partition(p)
            cp = part.cp
            st = cp.stats
            for msg in records:
                offset: int = msg.offset
                upto = cp.upto
                if not guard.next_in_sequence(offset, upto) and not await guard.admit(
                    topic, p, offset, upto
                ):
                    continue
                st.raw += 1
                value: bytes = msg.value or b""
                try:
                    valid = validate(p, offset, value, st)
                    if isinstance(valid, Rejected):
                        await self.validate.reject(Source(topic, p, offset), value, valid, st)
                    elif valid is not None:
                        part.apply(valid[0], offset, out, valid[1])
                except Exception as exc:  # one bad event never stops the stream
                    log.exception("qoe: %s[%d]@%d failed", topic, p, offset)
                    await self.rt.dead_letter(
                        value,
                        UNPROCESSABLE,
                        f"{type(exc).__name__}: {exc}",
                        Source(topic, p, offset),
                        None,
                    )
                    self.rt.counters["qoe.dead_lettered"] += 1
                part.done_with(offset, out)
        # Buffered once per batch, in order per topic, and handed over now: the sinks
        # see them without waiting for the checkpoint, whose flush makes them durable
        # before it (a batch replayed after a crash publishes the same records again).
        await self._send(out)
        await self.rt.push()

    async def checkpoint(self) -> None:
        """Commit every partition applied since the last checkpoint (`commit`), then purge
        the seen-set if its time has come."""
        parts = list(self._pending.values())
        self._pending.clear()
        await self.commit(parts)
        self._last_checkpoint = time.monotonic()
        await self._purge_seen()

    async def _purge_seen(self) -> None:
        """Purge the seen-set of the partitions held, at their committed event time.

        Run right after a checkpoint, after a flush: every partition's state is committed
        and its checkpoint, whose watermark decides what is forgotten, durable, so a crash
        can never leave a purge ahead of its checkpoint.
        """
        if time.monotonic() - self._last_purge < self.rt.config.seen_purge_every_s:
            return
        self._last_purge = time.monotonic()
        await self.rt.flush()
        await self.validate.purge({p: part.cp.watermark_ms for p, part in self._parts.items()})

    async def commit(self, parts: list[_Partition]) -> None:
        """Commit the batch of each partition.

        0. Wait until the previous checkpoints are durable (handed to the producer at the
           last commit, they were delivered while the batches since were applied, so this
           rarely waits): only then may entries be written, and what those checkpoints
           committed as forgotten deleted for good.
        1. Write every state the batches since the last commit touched as an entry (new
           image + undo image) under the partition's next batch number.
        2. Flush the producer: forwards, seen-set entries, outputs, dead letters and
           entries are durable (one round trip: they travel together).
        3. Write each partition's checkpoint (batch number, last input offset, event-time
           clock): the commit point. A crash before it rolls the entries back on restart.

        Outputs published before 3 are safe: a batch replayed after a crash publishes the
        same records again.
        """
        await self._checkpoints_durable()  # 0.
        for part in parts:
            await self._drop_tombstones(part)
        for part in parts:  # 1.
            await self._write_entries(part)
        await self.rt.flush()  # 2.
        for part in parts:  # 3.
            part.cp.seq += 1
            cp = part.cp.model_dump_json().encode()
            self.rt.stage(self.rt.checkpoints, part.p, str(part.p).encode(), cp)
            self._committed[part.p] = part.cp.upto
            part.committed_forgotten_sessions |= part.forgotten_sessions
            part.committed_forgotten_windows |= part.forgotten_windows
            part.forgotten_sessions.clear()
            part.forgotten_windows.clear()
        # Delivered while the next batch is applied; its step 0 awaits these alone.
        self._checkpoints_in_flight = await self.rt.push()

    async def _checkpoints_durable(self) -> None:
        """Wait for the delivery of the checkpoints the last commit handed over; raise if
        one failed (the batch then fails, and the partitions recover from what is durable).
        """
        in_flight, self._checkpoints_in_flight = self._checkpoints_in_flight, []
        for delivered in in_flight:
            await delivered  # acks=all; raises the producer's error if delivery failed

    async def _send(self, out: Published) -> None:
        # Buffered with the forwards (`streams.send_buffer`), not `producer.send` per
        # record: aiokafka's partitioner, accumulator and future per record cost more than
        # the serialization. The records are the same (raw bytes, to the partition the
        # default partitioner gives the key); the commit's flushes make them durable
        # before the checkpoint, as before.
        rt = self.rt
        for topic, records in (
            (rt.sessions_topic, [(s.session_id.encode(), _json(s)) for s in out.summaries]),
            (rt.minute_topic, [(r.key.encode(), _json(r)) for r in out.rollups]),
            (rt.partials_topic, out.partials),
        ):
            if not records:
                continue
            name = topic.get_topic_name()
            n = await rt.partitions_of(name)
            for key, value in records:
                rt.send(name, key_partition(key, n), key, value, None)
        out.clear()

    async def _partition(self, p: int) -> _Partition:
        """This worker's state of events partition `p`, recovered to its checkpoint."""
        part = self._parts.get(p)
        if part is not None:
            return part
        rt = self.rt
        # Recovery reads the last checkpoint and may write repairs: what this worker wrote
        # before must be durable first.
        await rt.flush()
        raw = rt.checkpoints.get(str(p).encode())
        cp = Checkpoint.model_validate_json(raw) if raw else Checkpoint()
        if raw and cp.upto >= 0 and b'"stats"' not in raw:
            # Written by the two-hop worker: its `upto` is an offset of telemetry.events.v1,
            # not of the raw topic this pass reads. Never guess where to resume.
            raise ConfigurationError(
                f"partition {p}: state of the worker before the one pass (events-topic "
                "checkpoints); let that worker finish its input, then start this one under a "
                "new topic prefix or after deleting the streams changelog topics (a local "
                "demo: `make clean && make demo` starts it afresh)"
            )
        store = TableStore(reads(rt.sessions), reads(rt.windows))
        part = _Partition(p, cp, rt.config.behind_id_dedupe(), store, rt.counters)
        for table, index, hints in (
            (rt.sessions, part.session_index, _session_hints),
            (rt.windows, part.window_index, _window_hints),
        ):
            mine = [(k, v) for k, v in list(table.items()) if partition_of_key(k) == p]
            for repair in recover(mine, part.cp):
                if repair.entry is None:
                    await rt.put(table, p, repair.key, None)
                    continue
                entry = repair.entry
                if repair.action == "rewrite":
                    entry = with_hints(entry, hints)
                    await rt.put(table, p, repair.key, entry.encode())
                    rt.counters["qoe.rolled_back"] += 1
                index[repair.key] = (entry.ms, entry.closed)
        self._parts[p] = part
        return part

    async def _drop_tombstones(self, part: _Partition) -> None:
        """Delete for good what the last (now durable) checkpoint committed as forgotten.

        Only what earlier batches forgot: what this batch's scans forgot is an uncommitted
        deletion until this batch's checkpoint.
        """
        rt = self.rt
        for table, keys in (
            (rt.sessions, part.committed_forgotten_sessions),
            (rt.windows, part.committed_forgotten_windows),
        ):
            for key in keys:
                raw = table.get(key)
                if raw is not None and not Entry.decode(raw).cur:
                    rt.stage(table, part.p, key, None)
            keys.clear()

    async def _write_entries(self, part: _Partition) -> None:
        """Write every state the batch touched, with its undo image, under the next seq."""
        seq = part.cp.seq + 1
        store = part.store
        written: list[tuple[Any, dict[bytes, bytes], dict[bytes, Any]]] = [
            (self.rt.sessions, store.dirty_sessions, part.sessions),
            (self.rt.windows, store.dirty_windows, part.windows),
        ]
        p = part.p
        for table, dirty, mem in written:
            write = self.rt.stager(table)
            for key, prev in dirty.items():
                state = mem.get(key)
                if state is None:  # forgotten in this batch: an uncommitted deletion
                    entry = Entry(seq, 0, True, b"", prev)
                else:
                    entry = Entry(seq, *_hints_of(state), state.json_bytes(), prev)
                write(p, key, entry.encode())
            dirty.clear()


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def _hints_of(state: SessionState | WindowState) -> tuple[int, bool]:
    if isinstance(state, SessionState):
        return state.last_event_ms, state.closed
    return state.window_start_ms, state.closed
