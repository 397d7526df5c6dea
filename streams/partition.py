"""One partition's sessions and minute windows, and the one driver of their closing.

The stream worker (`streams.qoe_agent`, over changelogged tables) and `streams.replay` (in
memory) both run this class, so what they publish for the same input is the same:

- `apply` feeds one event to its session (`streams.sessionizer`) and its minute window
  (`streams.rollup`), publishing a summary when the event closes or revises the session;
- `done_with` records the event as applied and, every `scan_step_ms` of event time, runs
  `scan`: close idle sessions (their end counted in the minute they ended), close due
  windows, publish revisions of closed windows touched by late events, forget what is past
  retention, and tell the detector up to which minute this partition is done.

Closing is driven by event time only (the checkpoint's watermark), never the wall clock: a
worker replaying after a crash closes and publishes exactly what the lost batch did.

Where states live is the caller's: a `StateStore` loads a state that is not in memory and
is told of every state a batch writes (the worker keeps undo images; replay keeps nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from ingest.events import Event
from streams import minute_gate, rollup, sessionizer
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.records import MinuteRollup, SessionSummary
from streams.rollup import WindowState
from streams.sessionizer import Applied, SessionState


class StateStore(Protocol):
    """Where a partition's session and window states are kept between batches."""

    def load_session(self, key: bytes) -> SessionState | None:
        """The committed state of a session not in memory, or None."""

    def load_window(self, key: bytes) -> WindowState | None:
        """The committed state of a window not in memory, or None."""

    def touch_session(self, key: bytes) -> None:
        """The current batch writes this session."""

    def touch_window(self, key: bytes) -> None:
        """The current batch writes this window."""


class MemoryStore:
    """No storage beyond memory (replay, tests): nothing to load, nothing to undo."""

    def load_session(self, key: bytes) -> SessionState | None:
        """Nothing is stored outside memory."""
        return None

    def load_window(self, key: bytes) -> WindowState | None:
        """Nothing is stored outside memory."""
        return None

    def touch_session(self, key: bytes) -> None:
        """No undo image to keep."""

    def touch_window(self, key: bytes) -> None:
        """No undo image to keep."""


@dataclass
class Published:
    """What applying events and scanning published, in order, per destination topic."""

    summaries: list[SessionSummary] = field(default_factory=list)
    rollups: list[MinuteRollup] = field(default_factory=list)
    # (key, value) of the detector's partials topic: closed windows and progress markers,
    # serialized when published (the window may change again in the same batch).
    partials: list[tuple[bytes, bytes]] = field(default_factory=list)

    def clear(self) -> None:
        """Forget what was sent."""
        self.summaries.clear()
        self.rollups.clear()
        self.partials.clear()


def session_key(p: int, session_id: str) -> bytes:
    """The table key of a session's state in partition `p`."""
    return f"{p}|{session_id}".encode()


def window_key(p: int, start_ms: int, partial: str) -> bytes:
    """The table key of one partial's window of the minute starting at `start_ms`."""
    return f"{p}|{start_ms}|{partial}".encode()


def partition_of_key(key: bytes) -> int:
    """The partition a session or window key belongs to."""
    return int(key.split(b"|", 1)[0])


_NEVER = 2**63  # later than any event time (epoch ms)
_WINDOW_MS = rollup.WINDOW_MS


class PartitionState:
    """The sessions and windows of one input partition, with its checkpoint."""

    def __init__(
        self,
        p: int,
        cp: Checkpoint,
        config: StreamsConfig,
        store: StateStore,
        counters: Counter[str] | None = None,
    ) -> None:
        self.p = p
        self.cp = cp
        self.config = config
        self.store = store
        self.counters: Counter[str] = Counter() if counters is None else counters
        # key -> (last event time of a session / start of a window, closed): what scans read.
        self.session_index: dict[bytes, tuple[int, bool]] = {}
        self.window_index: dict[bytes, tuple[int, bool]] = {}
        # Parsed states (the store stays the source of truth: this saves re-parsing).
        self.sessions: dict[bytes, SessionState] = {}
        self.windows: dict[bytes, WindowState] = {}
        # Forgotten by a scan: deleted for good once its checkpoint is durable.
        self.forgotten_sessions: set[bytes] = set()
        self.forgotten_windows: set[bytes] = set()
        # The key of this partition's own window of the last minute asked for.
        self._own_start = -1
        self._own_key = b""
        # No session in `session_index` times out or is forgotten before this event time
        # (a lower bound: 0 until a scan has looked at every session), so that a scan
        # walks every open session only when one is due (the walk was 4 % of the worker).
        self._sessions_due_ms = 0
        # Read once: the policy's attribute chain per event cost more than the comparison.
        self._timeout_ms = config.session.inactivity_timeout_ms
        self._retention_ms = config.session.closed_retention_ms
        self._session_policy = config.session
        self._key_prefix = f"{p}|"  # of `session_key(p, ...)`

    # ------------------------------------------------------------------ events ---------

    def apply(
        self, event: Event, offset: int | None, out: Published, t: int | None = None
    ) -> Applied:
        """Apply one event to its session and its minute window.

        `t`: the event's time in epoch ms, if the caller has worked it out already.
        """
        if t is None:
            t = int(event.event_time.timestamp() * 1000)  # sessionizer.to_ms, inline
        cp = self.cp
        if t > cp.watermark_ms:
            cp.watermark_ms = t
        skey = f"{self._key_prefix}{event.session_id}".encode()  # session_key, inline
        state = self.sessions.get(skey) or self._session(skey)
        if state is None:
            state = self.sessions[skey] = sessionizer.new_state(event.session_id)
        store = self.store
        store.touch_session(skey)
        applied = sessionizer.apply(state, event, self._session_policy, offset, t)
        last_ms, closed = state.last_event_ms, state.closed
        self.session_index[skey] = (last_ms, closed)
        # `_due_ms`, inline: per event.
        due = last_ms + (self._retention_ms if closed else self._timeout_ms)
        if due < self._sessions_due_ms:
            self._sessions_due_ms = due
        if applied.duplicate:
            self.counters["qoe.duplicates"] += 1
            return applied
        keys = state.value_keys
        if keys is None:
            keys = state.value_keys = rollup.value_keys(state.dims)
        start = t - t % _WINDOW_MS
        w = self.windows.get(self._own_key) if start == self._own_start else None
        if w is not None and not w.closed:  # most events: the current minute's own window
            store.touch_window(self._own_key)
        else:
            w = self.window(t, event.event_id)
        rollup.add_to(w, keys, applied)
        if applied.summary is not None:
            self._publish_summary(applied.summary, out)
            if applied.closed_now:
                self._count_end(applied.summary, f"{event.event_id}-end")
        return applied

    def done_with(self, offset: int | None, out: Published) -> None:
        """Record an input message as applied; scan when event time has moved a step."""
        if offset is not None:
            self.cp.upto = offset
        if self.cp.watermark_ms >= self.cp.next_scan_ms:
            self.scan(out)
            self.cp.next_scan_ms = self.cp.watermark_ms + self.config.scan_step_ms

    def window(self, t_ms: int, late_tag: object) -> WindowState:
        """The window of `t_ms`, marked as written by this batch.

        A minute published and forgotten already gets a partial of its own for this late
        event (`rollup.very_late_partial`, tagged `str(late_tag)`), so that summing partials
        stays exact.
        """
        start = t_ms - t_ms % rollup.WINDOW_MS
        if start == self._own_start:  # most events: the partition's current minute
            key = self._own_key
        else:
            key = window_key(self.p, start, f"p{self.p}")
            self._own_start, self._own_key = start, key
        w = self.windows.get(key) or self._window_state(key)
        if w is None:
            partial = f"p{self.p}"
            retention = self.config.rollup.closed_retention_ms
            if start + rollup.WINDOW_MS + retention <= self.cp.watermark_ms:
                partial = rollup.very_late_partial(partial, str(late_tag))
                key = window_key(self.p, start, partial)
                self.counters["qoe.very_late"] += 1
            w = self.windows[key] = WindowState(window_start_ms=start, partial=partial)
        self.store.touch_window(key)
        self.window_index[key] = (start, w.closed)
        if w.closed and key.decode() not in self.cp.revise:
            self.cp.revise.append(key.decode())  # a late event: published again at the scan
        return w

    # ------------------------------------------------------------------ closing --------

    def scan(self, out: Published) -> None:
        """Close idle sessions and due windows, revise late ones, forget old ones."""
        self._close_sessions(out)
        self._close_windows(out)
        self._revise_windows(out)
        self._forget_windows()
        # After this scan's partials: the detector then knows this partition is done with
        # every minute up to here, however fast or slow the other partitions go.
        done = minute_gate.closed_upto(
            self.cp.watermark_ms, rollup.WINDOW_MS, self.config.rollup.allowed_lateness_ms
        )
        if done > self.cp.closed_upto_ms:
            progress = minute_gate.PartitionProgress(partial=f"p{self.p}", closed_upto_ms=done)
            out.partials.append(
                (minute_gate.progress_key(progress.partial), progress.model_dump_json().encode())
            )
            self.cp.closed_upto_ms = done

    def _close_sessions(self, out: Published) -> None:
        spol, wm = self.config.session, self.cp.watermark_ms
        if wm < self._sessions_due_ms:
            return  # none is due: what the walk below would find
        due: list[bytes] = []
        next_due = _NEVER
        for k, (last_ms, closed) in self.session_index.items():
            at = self._due_ms(last_ms, closed)
            if at <= wm:
                due.append(k)
            elif at < next_due:
                next_due = at
        # Sorted: the order of what is published must not depend on how the index was built.
        for key in sorted(due):
            state = self._session(key)
            if state is None:
                del self.session_index[key]
                continue
            self.store.touch_session(key)
            summary = sessionizer.expire(state, wm, spol)
            if summary is not None:
                self._publish_summary(summary, out)
                self._count_end(summary, f"{key!r}-end")
                self.session_index[key] = (state.last_event_ms, True)
                next_due = min(next_due, self._due_ms(state.last_event_ms, True))
            elif sessionizer.forgettable(state, wm, spol):
                del self.sessions[key]
                del self.session_index[key]
                self.forgotten_sessions.add(key)
            else:
                next_due = wm  # still due: looked at again by the next scan
        self._sessions_due_ms = next_due

    def _due_ms(self, last_ms: int, closed: bool) -> int:
        """When a session last seen at `last_ms` is due at a scan: an open one times out,
        a closed one is forgotten (`sessionizer.expire`, `sessionizer.forgettable`)."""
        return last_ms + (self._retention_ms if closed else self._timeout_ms)

    def _close_windows(self, out: Published) -> None:
        lateness, wm = self.config.rollup.allowed_lateness_ms, self.cp.watermark_ms
        for key in sorted(
            k
            for k, (start, closed) in self.window_index.items()
            if not closed and start + rollup.WINDOW_MS + lateness <= wm
        ):
            w = self._window_state(key)
            if w is None:
                del self.window_index[key]
                continue
            self.store.touch_window(key)
            self._publish_rollups(rollup.close(w), out)
            out.partials.append((str(w.window_start_ms).encode(), w.json_bytes()))
            self.window_index[key] = (w.window_start_ms, True)

    def _revise_windows(self, out: Published) -> None:
        for key_s in sorted(self.cp.revise):
            key = key_s.encode()
            w = self._window_state(key)
            if w is not None:
                self.store.touch_window(key)
                self._publish_rollups(rollup.revise(w), out)
        self.cp.revise.clear()

    def _forget_windows(self) -> None:
        retention, wm = self.config.rollup.closed_retention_ms, self.cp.watermark_ms
        for key in sorted(
            k
            for k, (start, closed) in self.window_index.items()
            if closed and start + rollup.WINDOW_MS + retention <= wm
        ):
            self.store.touch_window(key)
            self.windows.pop(key, None)
            del self.window_index[key]
            self.forgotten_windows.add(key)

    # ------------------------------------------------------------------ helpers --------

    def _count_end(self, summary: SessionSummary, late_tag: str) -> None:
        """Count a session's first close in the minute it ended."""
        rollup.add_session_end(self.window(rollup.session_end_ms(summary), late_tag), summary)

    def _publish_summary(self, summary: SessionSummary, out: Published) -> None:
        out.summaries.append(summary)
        self.counters["qoe.summaries"] += 1

    def _publish_rollups(self, rollups: list[MinuteRollup], out: Published) -> None:
        out.rollups.extend(rollups)
        self.counters["qoe.rollups"] += len(rollups)

    # A state forgotten since the last commit is still in the store, committed: it must
    # not come back from there (`MemoryStore` has nothing either, so replay agrees).
    def _session(self, key: bytes) -> SessionState | None:
        state = self.sessions.get(key)
        if state is None and key not in self.forgotten_sessions:
            state = self.store.load_session(key)
            if state is not None:
                self.sessions[key] = state
        return state

    def _window_state(self, key: bytes) -> WindowState | None:
        w = self.windows.get(key)
        if w is None and key not in self.forgotten_windows:
            w = self.store.load_window(key)
            if w is not None:
                self.windows[key] = w
        return w
