"""The validate step of the one pass over telemetry.raw.v1: parse, dedupe, enrich, forward.

Run by `streams.qoe_agent` for every raw message it admits, before the event is applied to
its session and minute window in the same pass. Every raw message is counted in its
partition's `ValidateStats` (raw = valid + dead-lettered + duplicates), which the
partition's checkpoint carries, so the counts commit together with the state they changed.
A message that is not an event goes to the dead-letter topic with its original bytes and
the reason. Duplicates are dropped by event id through the seen-set table, and events of
sessions closed and forgotten are kept but tagged late (`streams.dedupe`). Valid events are
enriched and forwarded to telemetry.events.v1 (for the sinks) keyed by session_id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ingest.events import Event
from streams import dedupe
from streams.committed_state import ValidateStats
from streams.runtime import AgentRuntime, SourceMessage
from streams.send_buffer import Headers
from streams.sessionizer import to_ms
from streams.table_io import reads
from streams.validate import Rejected, dump_event, parse
from streamwatch import topics

log = logging.getLogger("streamwatch.streams")


class ValidateStep:
    """Parse, dedupe and forward one raw message; its table is the seen-set."""

    def __init__(self, rt: AgentRuntime) -> None:
        self.rt = rt
        self._seen_index = dedupe.SeenIndex()
        self._events_topic: str = rt.events_topic.get_topic_name()
        self._events_parts = rt.settings.partitions_for(topics.EVENTS)
        # The seen-set's plain dict and its `TableIO.stager`, looked up once: read and
        # written per event.
        self._seen_set: Mapping[bytes, bytes] | None = None
        self._write_seen: Callable[[int, bytes, bytes], None] | None = None
        self._send: Callable[[str, int, bytes | None, bytes, Headers | None], None] | None = None

    def forget(self, partition: int) -> None:
        """Drop what this worker indexed of a raw partition (revoked or reassigned)."""
        self._seen_index.forget([partition])
        self._seen_set = None
        self._write_seen = None

    def one(
        self, p: int, offset: int, value: bytes, st: ValidateStats
    ) -> tuple[Event, int] | Rejected | None:
        """The enriched event to apply with its event time in epoch ms (worked out here
        once, for the seen-set and the session alike); why it is not an event (for
        `reject`); or None (a duplicate, or an event of a session closed and forgotten).

        `value` is the raw record at `offset` of partition `p`. Counts the message in `st`
        (except `raw`, which the caller counts, and a rejection, which `reject` counts).
        Not a coroutine: it runs once per event, and only a rejection needs to wait.
        """
        rt = self.rt
        parsed = parse(value)
        if isinstance(parsed, Rejected):
            return parsed
        key = dedupe.id_key(parsed.event_id)
        seen_set = self._seen_set
        if seen_set is None:
            seen_set = self._seen_set = reads(rt.seen)
        seen = seen_set.get(key)
        if seen is not None and not dedupe.seen_at(seen, p, offset):
            st.duplicates += 1
            return None
        if seen is None and seen_set.get(dedupe.closed_key(parsed.session_id)):
            # Its session was closed and forgotten (streams.dedupe): a replay, or an event
            # too late to count. Kept (the stores dedupe by id) but tagged, and never
            # applied: no summary, rollup or incident counts it again.
            st.duplicates += 1
            st.late_closed += 1
            self.rt.counters["qoe.late_closed"] += 1
            self._forward(p, self._enrich(parsed), [(dedupe.LATE_HEADER, b"1")])
            return None
        # (Seen at this very offset: read again after a crash that lost its batch's
        # checkpoint; the state was rolled back, so it is applied again.)
        t = to_ms(parsed.event_time)
        if seen is None:
            write = self._write_seen
            if write is None:
                write = self._write_seen = rt.stager(rt.seen)
            write(p, key, dedupe.id_value(p, offset, t, parsed.session_id))
            self._seen_index.add_id(p, key, t, parsed.session_id)
        st.valid += 1
        enriched = self._enrich(parsed)
        self._forward(p, enriched, None)
        return enriched, t

    async def reject(
        self, msg: SourceMessage, value: bytes, why: Rejected, st: ValidateStats
    ) -> None:
        """Dead-letter a raw message that is not an event, with the reason, and count it."""
        await self.rt.dead_letter(value, why.reason, why.detail, msg, why.event_id)
        st.dead_lettered += 1

    def _enrich(self, parsed: Event) -> Event:
        # In place: `parsed` was made by this step's `parse` and is held by no one else
        # (see `Catalog.enrich_parsed`).
        return self.rt.catalog.enrich_parsed(parsed)

    def _forward(self, p: int, event: Event, headers: list[tuple[str, bytes]] | None) -> None:
        # To the raw record's partition: the same session_id-keyed order, no partitioner.
        # `dump_event` writes the bytes `event.model_dump_json()` does, for less.
        key, value = event.session_id.encode(), dump_event(event)
        send = self._send
        if send is None:
            send = self._send = self.rt.sender()
        send(self._events_topic, p % self._events_parts, key, value, headers)

    async def purge(self, watermarks: dict[int, int]) -> None:
        """Forget the ids of sessions over, keeping a small marker of each (streams.dedupe).

        `watermarks`: the committed event-time watermark of each partition to purge.
        """
        rt = self.rt
        policy = dedupe.DedupePolicy.of(rt.config)
        entries: list[tuple[bytes, bytes]] | None = None
        for p in sorted(watermarks):
            if not self._seen_index.loaded(p):
                entries = entries if entries is not None else list(rt.seen.items())
                self._seen_index.load(p, entries)
            plan = self._seen_index.plan(p, watermarks[p], policy)
            # Markers first: a crash between the two leaves ids that the next purge
            # removes, never a forgotten session without its marker. Buffered (one send
            # per id was one producer call per event over a long run); the buffer keeps
            # their order within each changelog partition, and the next flush sends them.
            for part, key, value in plan.markers:
                rt.stage(rt.seen, part, key, value)
            for part, key in plan.forget:
                rt.stage(rt.seen, part, key, None)
            rt.counters["validate.seen_purged"] += len(plan.forget)
            rt.counters["validate.sessions_closed"] += len(plan.markers)
