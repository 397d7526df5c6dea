"""The validate agent (telemetry.raw.v1 -> telemetry.events.v1): parse, dedupe, enrich.

Every raw message is counted in its partition's `ValidateStats` (raw = valid +
dead-lettered + duplicates). A message that is not an event goes to the dead-letter topic
with its original bytes and the reason. Duplicates are dropped by event id through the
seen-set table, and events of sessions closed and forgotten are kept but tagged late
(`streams.dedupe`). Valid events are enriched and forwarded keyed by session_id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import faust
from faust.types import EventT, StreamT
from pydantic import BaseModel, ConfigDict

from ingest.events import Event
from ingest.validation import UNPROCESSABLE
from streams import dedupe
from streams.offset_guard import OffsetGuard
from streams.runtime import AgentRuntime
from streams.sessionizer import to_ms
from streams.validate import Rejected, parse

log = logging.getLogger("streamwatch.streams")

Ev = EventT[Any]


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


class ValidateAgent:
    """Runs on the raw topic; its tables are the seen-set and the validate stats."""

    def __init__(self, rt: AgentRuntime, guard: OffsetGuard) -> None:
        self.rt = rt
        self.guard = guard
        self._raw_watermark: dict[int, int] = {}
        self._last_purge = 0.0
        self._seen_index = dedupe.SeenIndex()

    def forget(self, partition: int) -> None:
        """Drop what this worker indexed of a raw partition (revoked or reassigned)."""
        self._seen_index.forget([partition])

    async def run(self, stream: StreamT[Any]) -> None:
        """The agent: batches of raw messages, each batch recorded after its effects."""
        cfg = self.rt.config
        stream_ = cast("faust.Stream[bytes]", stream)
        async for batch in stream_.take_events(cfg.batch_size, within=cfg.batch_within_s):
            try:
                await self.batch(batch)
            except Exception:
                # The stats were not written, so the offset guard re-reads the batch.
                log.exception("validate: batch failed; it will be read again")
                self.rt.counters["validate.batch_failures"] += 1

    async def batch(self, batch: Sequence[Ev]) -> None:
        """Validate, dedupe and forward one batch, then record its stats per partition."""
        rt = self.rt
        stats: dict[int, ValidateStats] = {}
        admitted: set[int] = set()
        for ev in batch:
            msg = ev.message
            p = msg.partition
            st = stats.get(p)
            if st is None:
                cur = rt.validate_stats.get(f"p{p}".encode())
                st = stats[p] = ValidateStats.model_validate_json(cur) if cur else ValidateStats()
            # The stats are written only after what they count is durable, so their last
            # offset says where to continue (streams.offset_guard).
            if not await self.guard.admit(msg.topic, p, msg.offset, st.last_offset):
                continue
            st.raw += 1
            st.last_offset = msg.offset
            admitted.add(p)
            value: bytes = msg.value or b""
            try:
                await self._one(ev, value, st)
            except Exception as exc:  # one bad event never stops the stream
                log.exception("validate: event at %s[%d]@%d failed", msg.topic, p, msg.offset)
                await rt.dead_letter(value, UNPROCESSABLE, f"{type(exc).__name__}: {exc}", ev, None)
                st.dead_lettered += 1
        # The stats say "offsets up to here are done": they must not land before the
        # forwards, seen-set entries and dead letters they count.
        await rt.app.producer.flush()
        # Only partitions this batch advanced: the stats of a partition read but not
        # admitted (e.g. revoked, now another worker's) must never be written back.
        for p in sorted(admitted):
            await rt.put(
                rt.validate_stats, p, f"p{p}".encode(), stats[p].model_dump_json().encode()
            )
        rt.counters["validate.raw"] += len(batch)
        if time.monotonic() - self._last_purge >= rt.config.seen_purge_every_s:
            self._last_purge = time.monotonic()
            await self._purge_seen(admitted)

    async def _one(self, ev: Ev, value: bytes, st: ValidateStats) -> None:
        rt, msg = self.rt, ev.message
        p = msg.partition
        parsed = parse(value)
        if isinstance(parsed, Rejected):
            await rt.dead_letter(value, parsed.reason, parsed.detail, ev, parsed.event_id)
            st.dead_lettered += 1
            return
        t = to_ms(parsed.event_time)
        self._raw_watermark[p] = max(self._raw_watermark.get(p, 0), t)
        key = str(parsed.event_id).encode()
        seen = rt.seen.get(key)
        if seen is not None and json.loads(seen)[:2] != [p, msg.offset]:
            st.duplicates += 1
            return
        headers: list[tuple[str, bytes]] | None = None
        if seen is None and rt.seen.get(dedupe.closed_key(parsed.session_id)):
            # Its session was closed and forgotten (streams.dedupe): a replay, or an event
            # too late to count. Kept (the stores dedupe by id) but tagged so that no
            # summary, rollup or incident counts it again.
            st.duplicates += 1
            st.late_closed += 1
            headers = [(dedupe.LATE_HEADER, b"1")]
        else:
            # (Seen at this very offset: our own forward before a crash, whose stats never
            # landed. Forward again; sessions drop the second copy.)
            await rt.put(rt.seen, p, key, dedupe.id_value(p, msg.offset, t, parsed.session_id))
            if seen is None:
                self._seen_index.add_id(p, key, t, parsed.session_id)
            st.valid += 1
        await self._forward(parsed, headers)

    async def _forward(self, event: Event, headers: list[tuple[str, bytes]] | None) -> None:
        enriched = self.rt.catalog.enrich(event)
        await self.rt.app.producer.send(
            self.rt.events_topic.get_topic_name(),
            event.session_id.encode(),
            enriched.model_dump_json().encode(),
            None,
            None,
            headers,
        )

    async def _purge_seen(self, owned: set[int]) -> None:
        """Forget the ids of sessions over, keeping a small marker of each (streams.dedupe)."""
        rt = self.rt
        policy = dedupe.DedupePolicy.of(rt.config)
        entries: list[tuple[bytes, bytes]] | None = None
        for p in sorted(owned):
            if not self._seen_index.loaded(p):
                entries = entries if entries is not None else list(rt.seen.items())
                self._seen_index.load(p, entries)
            plan = self._seen_index.plan(p, self._raw_watermark.get(p, 0), policy)
            # Markers first: a crash between the two leaves ids that the next purge
            # removes, never a forgotten session without its marker.
            for part, key, value in plan.markers:
                await rt.put(rt.seen, part, key, value)
            for part, key in plan.forget:
                await rt.put(rt.seen, part, key, None)
            rt.counters["validate.seen_purged"] += len(plan.forget)
            rt.counters["validate.sessions_closed"] += len(plan.markers)
