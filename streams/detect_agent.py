"""The detect agent (internal partials topic -> ops.incidents.v1).

Each events partition publishes its partial of a minute when it closes the minute, then a
progress marker (`streams.minute_gate`). The agent keeps the partials of minutes not judged
yet as table entries of their own, judges a minute once every partition is done with it
(merging its partials in arrival order), and publishes the incidents `streams.detector`
finds. Its state records the last partials offset applied, like the other agents'.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import faust
from faust.types import EventT, StreamT
from pydantic import BaseModel, ConfigDict, Field

from ingest.validation import UNPROCESSABLE
from streams import detector, minute_gate, rollup
from streams.offset_guard import OffsetGuard
from streams.records import MinuteCounts
from streams.rollup import WindowState
from streams.runtime import AgentRuntime
from streams.sessionizer import from_ms
from streamwatch import topics

log = logging.getLogger("streamwatch.streams")

Ev = EventT[Any]
DETECTOR_STATE = b"state"


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


def _pending_key(start_ms: int, partial: str) -> bytes:
    """The detector-table entry holding one partition's partial of a pending minute."""
    return f"pending|{start_ms}|{partial}".encode()


class DetectAgent:
    """Runs on the one-partition partials topic; its table is the detector's."""

    def __init__(self, rt: AgentRuntime, guard: OffsetGuard) -> None:
        self.rt = rt
        self.guard = guard
        raw_parts = rt.settings.partitions_for(topics.RAW)
        self._expected_partials = {f"p{p}" for p in range(raw_parts)}
        # Parsed once, kept with the exact bytes they were parsed from: the state this
        # agent last wrote, and the values of the partials pending judgement. Used only
        # while the table still holds those very bytes (a rebalance or a recovery may
        # have replaced them), so a cache can never stand for what the table says.
        self._state: tuple[bytes, DetectorRuntime] | None = None
        self._values: dict[bytes, tuple[bytes, dict[str, MinuteCounts]]] = {}

    async def run(self, stream: StreamT[Any]) -> None:
        """The agent: batches of partials and progress markers."""
        async for batch in cast("faust.Stream[bytes]", stream).take_events(100, within=1.0):
            await self.batch(batch)

    async def batch(self, batch: Sequence[Ev]) -> None:
        """Apply a batch of partials to the detector state, then write the state."""
        rt = self.rt
        raw = rt.detector_table.get(DETECTOR_STATE)
        cached, self._state = self._state, None  # kept again only once written
        if cached is not None and raw is not None and cached[0] is raw:
            state = cached[1]
        else:
            state = DetectorRuntime.model_validate_json(raw) if raw else DetectorRuntime()
            self._values.clear()  # the table changed under this agent: parse from it
        # Entries of minutes judged by the last batch; deleted only now that the state
        # saying so is written (a crash in between leaves them listed, deleted next time).
        for stale in state.drop:
            await rt.put(rt.detector_table, 0, stale.encode(), None)
        state.drop.clear()
        for ev in batch:
            msg = ev.message
            if not await self.guard.admit(msg.topic, msg.partition, msg.offset, state.upto_offset):
                continue
            state.upto_offset = msg.offset
            heard = int(msg.timestamp * 1000)
            state.clock_ms = max(state.clock_ms, heard)
            if state.since_ms is None:
                state.since_ms = heard
            try:
                await self._one(state, msg.key, msg.value or b"", heard)
            except Exception as exc:
                log.exception("detect: partial failed")
                await rt.dead_letter(
                    msg.value or b"", UNPROCESSABLE, f"{type(exc).__name__}: {exc}", msg, None
                )
                continue
            await self._judge_ready_minutes(state)
        written = state.model_dump_json().encode()
        await rt.put(rt.detector_table, 0, DETECTOR_STATE, written)
        self._state = (written, state)

    async def _one(self, rt: DetectorRuntime, key: bytes | None, value: bytes, heard: int) -> None:
        if minute_gate.is_progress(key):
            progress = minute_gate.PartitionProgress.model_validate_json(value)
            p = progress.partial
            rt.heard_ms[p] = heard
            rt.closed_upto[p] = max(rt.closed_upto.get(p, 0), progress.closed_upto_ms)
            return
        w = WindowState.model_validate_json(value)
        start = w.window_start_ms
        owner = rollup.partition_of(w.partial)
        rt.heard_ms[owner] = heard
        if (rt.evaluated_upto_ms is not None and start <= rt.evaluated_upto_ms) or (
            start <= rt.closed_upto.get(owner, start - 1)
        ):
            # Judged already, or a late window its partition closed after saying it was
            # done with the minute: the rollups have it, the judgement does not.
            rt.late_partials += 1
            return
        arrived = rt.partials.setdefault(start, [])
        if w.partial in arrived:
            return  # re-published by a worker that replayed after a crash
        arrived.append(w.partial)
        key = _pending_key(start, w.partial)
        await self.rt.put(self.rt.detector_table, 0, key, value)
        self._values[key] = (value, w.values)

    async def _judge_ready_minutes(self, rt: DetectorRuntime) -> None:
        """Judge the oldest pending minutes every partition is done with (`minute_gate`).

        Judging per arriving record, in topic order, makes the outcome independent of how
        the records were batched.
        """
        if not rt.partials and not rt.pending:
            return
        cfg = self.rt.config
        ready = minute_gate.judgeable(
            rt.partials.keys() | rt.pending.keys(),
            rt.partials,
            rt.closed_upto,
            rt.heard_ms,
            rt.since_ms if rt.since_ms is not None else rt.clock_ms,
            rt.clock_ms,
            self._expected_partials,
            int(cfg.detector_silence_s * 1000),
        )
        for start in ready:
            parts = [rt.pending.pop(start, {})]  # legacy: merged before entries existed
            for partial in rt.partials.pop(start, []):  # in arrival order: same float sums
                key = _pending_key(start, partial)
                rt.drop.append(key.decode())
                raw = self.rt.detector_table.get(key)
                cached = self._values.pop(key, None)
                if raw is not None and cached is not None and cached[0] is raw:
                    parts.append(cached[1])
                elif raw is not None:
                    parts.append(WindowState.model_validate_json(raw).values)
            # Parsed for this minute alone (the cache entries are popped): summed in place.
            values = detector.merge_partials(
                [(rollup.split_key(k), c) for part in parts for k, c in part.items()], owned=True
            )
            for inc in detector.evaluate(rt.state, from_ms(start), values, cfg.detector):
                await self.rt.incidents_topic.send(
                    key=inc.incident_id.encode(), value=inc.model_dump_json().encode()
                )
                self.rt.counters["detect.incidents"] += 1
            rt.evaluated_upto_ms = start
