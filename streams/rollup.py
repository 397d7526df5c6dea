"""Tumbling one-minute event-time rollups by dimension.

Pure logic: a `WindowState` holds the `MinuteCounts` of every dimension value seen in one
minute of one partial (a source partition). Events add to the minute of their event time;
a window closes once the partition's watermark passes its end plus the allowed lateness,
and is published as one `MinuteRollup` per dimension value. An event for a closed window
is still added (never dropped), counted in `late_events`, and the touched values are
published again with a higher `revision`.

Session-level facts (a new play, a new viewer in this minute, watch time since the last
event) come from the sessionizer's `Applied`, which already removed duplicates.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ConfigDict, TypeAdapter

from contract.dimensions import ALL, DIMENSIONS
from contract.records import MinuteCounts, MinuteRollup, SessionSummary
from contract.sketch import LatencySketch, bucket_of
from streams.sessionizer import Applied, from_ms, minute_of, to_ms

WINDOW_MS = 60_000


@dataclass(frozen=True)
class RollupPolicy:
    """Lateness and retention of minute windows (event time)."""

    allowed_lateness_ms: int = 30_000
    closed_retention_ms: int = 2 * 3600_000  # late events up to 2 h still revise the minute


DEFAULT_POLICY = RollupPolicy()


def dimension_pairs(dims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (dimension, value) pairs an event or session counts towards, "all" first."""
    return [(ALL, ALL)] + [(d, str(dims.get(d, "unknown"))) for d in DIMENSIONS]


def _key(dimension: str, value: str) -> str:
    return f"{dimension}={value}"


def value_keys(dims: Mapping[str, Any]) -> tuple[str, ...]:
    """The window value keys ("all=all", "isp=Comcast", ...) of `dimension_pairs(dims)`.

    Interned: every open session keeps its keys (`SessionState.value_keys`), and sessions
    share most values.
    """
    return tuple(sys.intern(_key(d, v)) for d, v in dimension_pairs(dims))


def split_key(key: str) -> tuple[str, str]:
    """("isp", "Comcast") of a window's value key "isp=Comcast"."""
    d, _, v = key.partition("=")
    return d, v


@dataclass(slots=True)
class _StoredWindow:
    """A `WindowState` as the changelog and the partials topic hold it (its JSON)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    window_start_ms: int
    partial: str
    values: dict[str, MinuteCounts] = field(default_factory=dict)
    closed: bool = False
    revision: int = -1
    late_events: int = 0
    touched_since_close: list[str] = field(default_factory=list)


_WINDOW_JSON: TypeAdapter[_StoredWindow] = TypeAdapter(_StoredWindow)

# What `_counts_doc` relies on to write `MinuteCounts` as pydantic does: these fields are
# floats (pydantic writes an int held there as `5.0`), `startup` is the one model, and
# every other field is an int or a dict of str -> int.
_COUNT_FIELDS: tuple[str, ...] = tuple(MinuteCounts.model_fields)
_SKETCH_FIELDS: tuple[str, ...] = tuple(LatencySketch.model_fields)
if _COUNT_FIELDS.index("startup") != 10 or _SKETCH_FIELDS != (
    "buckets",
    "count",
    "total",
    "min",
    "max",
):
    raise RuntimeError("rollup._counts_doc must follow MinuteCounts and LatencySketch")


def dump_window_json(stored: _StoredWindow, cache: dict[str, Any] | None = None) -> bytes:
    """A window's JSON, byte for byte what `TypeAdapter(_StoredWindow).dump_json` writes.

    orjson over plain dicts, cheaper than pydantic per state a batch writes. An int held
    in a float field is written as a float, as pydantic does. The counters are ints: they
    are validated, then only ever added to (a bool added to an int is an int). A value
    orjson refuses is written by pydantic itself. `tests/test_streams_state_json.py`
    compares the two on many windows.

    `cache` (value key -> its counts' JSON, `WindowState._json`) holds the JSON of counts
    unchanged since it was written; what is missing is written and added to it.
    """
    try:
        if cache is None:
            values: dict[str, Any] = {k: _counts_doc(c) for k, c in stored.values.items()}
        else:
            values = {}
            for k, c in stored.values.items():
                fragment = cache.get(k)
                if fragment is None:
                    fragment = cache[k] = orjson.Fragment(
                        orjson.dumps(_counts_doc(c), option=_OPTS)
                    )
                values[k] = fragment
        doc = {
            "window_start_ms": stored.window_start_ms,
            "partial": stored.partial,
            "values": values,
            "closed": stored.closed,
            "revision": stored.revision,
            "late_events": stored.late_events,
            "touched_since_close": stored.touched_since_close,
        }
        return orjson.dumps(doc, option=_OPTS)
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return _WINDOW_JSON.dump_json(stored)


# The sketch's buckets are keyed by int, written as strings (as pydantic does).
_OPTS = orjson.OPT_NON_STR_KEYS


def _counts_doc(c: MinuteCounts) -> dict[str, Any]:
    """The fields of `c` as orjson writes them like pydantic (ValueError if it cannot)."""
    doc = c.__dict__.copy()  # the model's fields, in their order
    if len(doc) != len(_COUNT_FIELDS):
        raise ValueError("not a plain MinuteCounts")
    sketch = doc["startup"].__dict__
    low, high = sketch["min"], sketch["max"]
    doc["startup"] = {
        "buckets": sketch["buckets"],
        "count": sketch["count"],
        "total": float(sketch["total"]),
        "min": None if low is None else float(low),
        "max": None if high is None else float(high),
    }
    doc["bitrate_kbps_ms"] = float(doc["bitrate_kbps_ms"])
    return doc


# The additive counters an event adds to, in the order `_Pending` holds them.
_PENDING_FIELDS = (
    "events",
    "plays",
    "active_sessions",
    "concurrent_viewers",
    "failed_sessions",
    "failed_starts",
    "rebuffer_ms",
    "rebuffer_count",
    "rebuffering_sessions",
    "watch_ms",
    "upshifts",
    "downshifts",
    "bitrate_kbps_ms",
    "bitrate_ms",
)


class _Pending:
    """Increments not yet added to the `MinuteCounts` of one set of value keys.

    An event counts towards nine dimension values; adding its increments to nine pydantic
    objects was most of the logic's time. Events with the same value keys (a session's
    events within its minute, sessions alike) add here once instead, and `WindowState`
    adds the sums to the nine counts whenever they are read. The sums are exact integers
    (`bitrate_kbps_ms` too, below 2**53 per value and minute), so the counts come out as
    if each event had been added on its own.
    """

    __slots__ = ("counts", *_PENDING_FIELDS)

    def __init__(self, counts: list[MinuteCounts]) -> None:
        self.counts = counts
        self.events = self.plays = self.active_sessions = self.concurrent_viewers = 0
        self.failed_sessions = self.failed_starts = 0
        self.rebuffer_ms = self.rebuffer_count = self.rebuffering_sessions = 0
        self.watch_ms = self.upshifts = self.downshifts = 0
        self.bitrate_kbps_ms = self.bitrate_ms = 0

    def add_to_counts(self) -> None:
        """Add the sums to the counts (then forgotten: the caller drops this object)."""
        incs = [(name, inc) for name in _PENDING_FIELDS if (inc := getattr(self, name))]
        for c in self.counts:
            # Plain counters, no validation on assignment: add to the field values.
            fields = c.__dict__
            for name, inc in incs:
                fields[name] += inc


class WindowState:
    """One minute of one partial; JSON-serializable for the changelog.

    Its JSON is what the pydantic model it replaces wrote (`model_dump_json` /
    `model_validate_json`), so changelogs written before read back unchanged. Event
    increments wait in `_Pending` sums until `values` is read (closing, serializing).

    The open window of a partition is written at every batch, but a batch changes only
    some of its hundreds of counts: `_json` keeps the JSON of each counts object this
    class alone has changed since it was last written (every change goes through
    `_counts` or `_flush`, which drop its entry). Once `values` or `counts` hands the
    counts out, whoever holds them may change them unseen: the cache is then off for good
    (and once the window is closed, `close`).
    """

    __slots__ = (
        "_json",
        "_pending",
        "_values",
        "closed",
        "late_events",
        "partial",
        "revision",
        "touched_since_close",
        "window_start_ms",
    )

    def __init__(
        self,
        window_start_ms: int,
        partial: str,
        values: dict[str, MinuteCounts] | None = None,
        closed: bool = False,
        revision: int = -1,
        late_events: int = 0,
        touched_since_close: list[str] | None = None,
    ) -> None:
        self.window_start_ms = window_start_ms
        self.partial = partial
        self._values: dict[str, MinuteCounts] = {} if values is None else values
        self.closed = closed
        self.revision = revision
        self.late_events = late_events
        self.touched_since_close: list[str] = (
            [] if touched_since_close is None else touched_since_close
        )
        self._pending: dict[tuple[str, ...], _Pending] = {}
        # value key -> JSON of its counts (see above); None: off (counts given by a caller).
        self._json: dict[str, Any] | None = {} if values is None else None

    @property
    def values(self) -> dict[str, MinuteCounts]:
        """The counts per value key ("isp=Comcast"), every increment added."""
        self._flush()
        self._json = None  # handed out
        return self._values

    def model_dump_json(self) -> str:
        """The window's JSON, as the changelog and the partials topic store it."""
        return self.json_bytes().decode()

    def json_bytes(self) -> bytes:
        """`model_dump_json()` as bytes (what a changelog entry holds), without the str."""
        self._flush()
        stored = _StoredWindow(
            self.window_start_ms,
            self.partial,
            self._values,
            self.closed,
            self.revision,
            self.late_events,
            self.touched_since_close,
        )
        return dump_window_json(stored, self._json)

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> WindowState:
        """A window from its JSON (checked: unknown fields are an error)."""
        s = _WINDOW_JSON.validate_json(data)
        w = cls(
            s.window_start_ms,
            s.partial,
            s.values,
            s.closed,
            s.revision,
            s.late_events,
            s.touched_since_close,
        )
        w._json = {}  # its counts were made by the validation, held by no one else
        return w

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowState):
            return NotImplemented
        return self.model_dump_json() == other.model_dump_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WindowState({self.model_dump_json()})"

    def counts(self, dimension: str, value: str) -> MinuteCounts:
        """The counts of one dimension value (created empty on first use)."""
        self._flush()
        self._json = None  # handed out
        return self._counts(_key(dimension, value))

    def _counts(self, key: str) -> MinuteCounts:
        """The counts of a value key, for the caller to change (its JSON is dropped)."""
        c = self._values.get(key)
        if c is None:
            c = self._values[key] = MinuteCounts()
        if self._json:
            self._json.pop(key, None)
        return c

    def _flush(self) -> None:
        if not self._pending:
            return
        for p in self._pending.values():
            p.add_to_counts()
        cache = self._json
        if cache:
            # Each changed key once (thousands of key sets share a few hundred keys).
            for k in set().union(*self._pending):
                cache.pop(k, None)
        self._pending.clear()

    def _touch(self, keys: Iterable[str]) -> None:
        if self.closed:
            self.late_events += 1
            for k in keys:
                if k not in self.touched_since_close:
                    self.touched_since_close.append(k)


def add_event(window: WindowState, dims: Mapping[str, Any], applied: Applied) -> None:
    """Add one (non-duplicate) event's increments to every dimension value it belongs to."""
    add_to(window, value_keys(dims), applied)


def add_to(window: WindowState, keys: tuple[str, ...], applied: Applied) -> None:
    """`add_event` with the value keys of the dimensions (`value_keys`) known already."""
    if applied.duplicate:
        return
    if window.closed:  # a late event (rare): added at once, published again as a revision
        now = _Pending([window._counts(k) for k in keys])
        _accumulate(now, applied)
        now.add_to_counts()
        window._touch(keys)
        return
    p = window._pending.get(keys)
    if p is None:
        # The value keys are created now, in the order of the events, as they always were.
        # (`window._counts`, inline; their JSON is dropped from the cache when the sums
        # are added, `WindowState._flush`.)
        values = window._values
        counts = []
        for k in keys:
            c = values.get(k)
            if c is None:
                c = values[k] = MinuteCounts()
            counts.append(c)
        p = window._pending[keys] = _Pending(counts)
    _accumulate(p, applied)


def _accumulate(p: _Pending, applied: Applied) -> None:
    p.events += 1
    # Booleans add as 0 / 1.
    p.active_sessions += applied.new_active_minute
    p.concurrent_viewers += applied.new_playing_minute
    watch = applied.watch_ms
    if watch:
        p.watch_ms += watch
        if applied.bitrate_kbps is not None:
            p.bitrate_kbps_ms += applied.bitrate_kbps * watch
            p.bitrate_ms += watch
    # What most events (heartbeats) leave at zero. A start failure is a failure, and a
    # new rebuffering minute comes with a rebuffer.
    if (
        applied.new_play
        or applied.new_failure
        or applied.rebuffer_count
        or applied.upshift
        or applied.downshift
    ):
        p.plays += applied.new_play
        p.failed_sessions += applied.new_failure
        p.failed_starts += applied.new_start_failure
        p.rebuffer_ms += applied.rebuffer_ms
        p.rebuffer_count += applied.rebuffer_count
        p.rebuffering_sessions += applied.new_rebuffer_minute
        p.upshifts += applied.upshift
        p.downshifts += applied.downshift
    # The sketch's buckets and the error codes keep their order of arrival (it shows in
    # the JSON): added at once, not summed.
    if applied.startup_ms is not None:
        add_startup(p.counts, applied.startup_ms)
    code = applied.error_code
    if code is not None:
        for c in p.counts:
            c.errors_by_code[code] = c.errors_by_code.get(code, 0) + 1


def add_startup(counts: list[MinuteCounts], startup_ms: int) -> None:
    """`c.startup.add(startup_ms)` for every counts, without pydantic's `__setattr__`.

    `contract.sketch.LatencySketch.add`, for nine sketches at once (it was a tenth of the
    logic's time); `tests/test_streams_rollup.py` checks the two agree.
    """
    b = bucket_of(startup_ms)
    for c in counts:
        sketch = c.startup
        buckets = sketch.buckets
        buckets[b] = buckets.get(b, 0) + 1
        f = sketch.__dict__
        f["count"] += 1
        f["total"] += startup_ms
        low, high = f["min"], f["max"]
        f["min"] = startup_ms if low is None else min(low, startup_ms)
        f["max"] = startup_ms if high is None else max(high, startup_ms)


def session_end_ms(summary: SessionSummary) -> int:
    """The event time a session's end is counted at (its end, else its last event)."""
    return to_ms(summary.ended_at or summary.last_event_at)


def add_session_end(window: WindowState, summary: SessionSummary) -> None:
    """Count a session's first close in the minute it ended (EBVS and start failures)."""
    keys = [_key(ALL, ALL)] + [_key(d, str(getattr(summary, d))) for d in DIMENSIONS]
    start_failure = summary.start_outcome == "start_failure"
    exit_before_start = summary.start_outcome == "exit_before_start"
    for k in keys:
        # Plain counters (their sums wait for no one: any order gives the same counts).
        f = window._counts(k).__dict__
        f["ended_sessions"] += 1
        f["start_failures"] += start_failure
        f["exits_before_start"] += exit_before_start
        f["in_play_failures"] += summary.in_play_failure
    window._touch(keys)


def very_late_partial(partial: str, tag: str) -> str:
    """Partial name for events that arrive after their window was forgotten."""
    return f"{partial}.late.{tag}"


def partition_of(partial: str) -> str:
    """The partition's own partial name ("p3") of any of its partials, very late or not."""
    return partial.split(".late.", 1)[0]


def is_due(window: WindowState, watermark_ms: int, policy: RollupPolicy = DEFAULT_POLICY) -> bool:
    """True when the watermark has passed the window's end plus the allowed lateness."""
    return window.window_start_ms + WINDOW_MS + policy.allowed_lateness_ms <= watermark_ms


def forgettable(
    window: WindowState, watermark_ms: int, policy: RollupPolicy = DEFAULT_POLICY
) -> bool:
    """True when a closed window is past retention and can be deleted."""
    return window.closed and (
        window.window_start_ms + WINDOW_MS + policy.closed_retention_ms <= watermark_ms
    )


def close(window: WindowState) -> list[MinuteRollup]:
    """Close the window: every dimension value as a rollup (revision 0)."""
    window.closed = True
    window.revision += 1
    window.touched_since_close.clear()
    window._flush()
    # A closed window is written again only for late events: its JSON cache is let go
    # rather than kept (as big as the window's JSON) for the whole retention. (Keeping it
    # for the checkpoint right after the close saved no measurable time.)
    window._json = None
    return _rollups(window, sorted(window._values))


def revise(window: WindowState) -> list[MinuteRollup]:
    """Rollups of the values touched by late events since the last publication."""
    if not window.closed or not window.touched_since_close:
        return []
    window.revision += 1
    keys = sorted(window.touched_since_close)
    window.touched_since_close.clear()
    window._flush()
    return _rollups(window, keys)


def _rollups(window: WindowState, keys: list[str]) -> list[MinuteRollup]:
    """The rollups of the window's values `keys` (the window's pending sums added)."""
    # Times, immutable, made once per window rather than per value.
    start = from_ms(window.window_start_ms)
    end = from_ms(window.window_start_ms + WINDOW_MS)
    out = []
    for key in keys:
        d, v = split_key(key)
        out.append(
            MinuteRollup.of(
                window_start=start,
                window_end=end,
                dimension=d,
                value=v,
                partial=window.partial,
                counts=snapshot(window._values[key]),
                revision=window.revision,
                late_events=window.late_events,
            )
        )
    return out


def snapshot(counts: MinuteCounts) -> MinuteCounts:
    """A copy of `counts` that later increments leave alone (`MinuteCounts.clone`:
    `model_copy(deep=True)` at a fraction of its cost)."""
    return counts.clone()


class MinuteRoller:
    """In-memory driver over the windows of one partial (tests, benchmarks).

    The Faust app keeps the same `WindowState`s in a changelogged table.
    """

    def __init__(self, partial: str = "p0", policy: RollupPolicy = DEFAULT_POLICY) -> None:
        self.partial = partial
        self.policy = policy
        self.windows: dict[int, WindowState] = {}
        self.watermark_ms = 0
        self._late_seq = 0

    def window(self, t_ms: int) -> WindowState:
        """The window holding event time `t_ms`."""
        start = minute_of(t_ms)
        w = self.windows.get(start)
        if w is None:
            partial = self.partial
            if start + WINDOW_MS + self.policy.closed_retention_ms <= self.watermark_ms:
                # The minute was published and forgotten: publish these events as a new
                # partial of that minute, so summing partials stays exact.
                self._late_seq += 1
                partial = very_late_partial(self.partial, f"{self.watermark_ms}-{self._late_seq}")
            w = self.windows[start] = WindowState(window_start_ms=start, partial=partial)
        return w

    def add(self, t_ms: int, dims: Mapping[str, Any], applied: Applied) -> None:
        """Add an event's increments at event time `t_ms`."""
        self.watermark_ms = max(self.watermark_ms, t_ms)
        add_event(self.window(t_ms), dims, applied)
        if applied.closed_now and applied.summary is not None:
            self.add_end(applied.summary)

    def add_end(self, summary: SessionSummary) -> None:
        """Count a session's first close."""
        add_session_end(self.window(session_end_ms(summary)), summary)

    def advance(self, watermark_ms: int | None = None) -> list[MinuteRollup]:
        """Close due windows, publish revisions of closed ones, forget old ones."""
        if watermark_ms is not None:
            self.watermark_ms = max(self.watermark_ms, watermark_ms)
        out: list[MinuteRollup] = []
        for start in sorted(self.windows):
            w = self.windows[start]
            if not w.closed and is_due(w, self.watermark_ms, self.policy):
                out.extend(close(w))
            elif w.closed:
                out.extend(revise(w))
            if forgettable(w, self.watermark_ms, self.policy):
                del self.windows[start]
        return out
