"""Dedupe of the validate stage that holds for as long as it matters.

Event ids are remembered per session, not per event age: every id of a session stays in
the seen-set while the session can still change (until its last event is
`session_gap_ms` of event time behind its partition's newest event: the stream's
inactivity timeout plus the time a closed session is kept for late events). Then the
session's ids are replaced by one small marker (`closed_key` -> `[partition, last event
ms]`, a few dozen bytes), kept for `horizon_ms` (default 7 days) of event time.

An event whose id is in the seen-set is a duplicate. An event of a session with a marker
is a replay of a session already counted, or an event too late to count: it is kept
(forwarded, tagged `LATE_HEADER`; the stores dedupe by event id) and counted with the
duplicates, and no summary, rollup or incident counts it again. Reconciliation stays
exact: raw = valid + dead-lettered + duplicates.

Pure logic; `streams.validate_agent` does the table I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from streams.config import StreamsConfig

LATE_HEADER = "streamwatch-late"
_MARKER = b"s|"  # event ids are UUIDs: no id starts with this

DAY_MS = 86_400_000


@dataclass(frozen=True)
class DedupePolicy:
    """How long ids and closed-session markers are kept (event time), and the id cap."""

    session_gap_ms: int = 32 * 60_000
    horizon_ms: int = 7 * DAY_MS
    max_ids_per_partition: int = 1_000_000

    @classmethod
    def of(cls, config: StreamsConfig) -> DedupePolicy:
        """The policy of a `StreamsConfig`: ids are kept at least as long as sessions are."""
        spol = config.session
        kept = spol.inactivity_timeout_ms + spol.closed_retention_ms
        return cls(
            session_gap_ms=max(config.dedupe_ttl_ms, kept),
            horizon_ms=config.dedupe_horizon_ms,
            max_ids_per_partition=config.dedupe_max_keys_per_partition,
        )


def id_key(event_id: uuid.UUID) -> bytes:
    """The seen-set key of an event id: `str(event_id).encode()`.

    orjson writes a UUID in the same canonical form (lower-case hex, hyphenated) in C;
    `UUID.__str__` formats it in Python, about a microsecond per event.
    """
    return orjson.dumps(event_id)[1:-1]


def closed_key(session_id: str) -> bytes:
    """The seen-set key of a closed session's marker."""
    return _MARKER + session_id.encode()


def is_marker(key: bytes) -> bool:
    """Whether a seen-set key is a closed session's marker (not an event id)."""
    return key.startswith(_MARKER)


def id_value(partition: int, offset: int, event_ms: int, session_id: str) -> bytes:
    """The seen-set value of an event id: where it was read, its time and its session."""
    sid = session_id
    if sid.isascii() and sid.isprintable() and '"' not in sid and "\\" not in sid:
        # json.dumps' own output for such a session id, without its per-call cost.
        return f'[{partition}, {offset}, {event_ms}, "{session_id}"]'.encode()
    return json.dumps([partition, offset, event_ms, session_id]).encode()


def seen_at(value: bytes, partition: int, offset: int) -> bool:
    """Whether a seen-set id value was written for the message at (partition, offset)."""
    return bool(json.loads(value)[:2] == [partition, offset])


def marker_value(partition: int, last_ms: int) -> bytes:
    """The value of a closed session's marker."""
    return json.dumps([partition, last_ms]).encode()


def is_late(headers: Any) -> bool:
    """Whether a forwarded event carries the late tag (headers as faust or aiokafka give them)."""
    if not headers:
        return False
    items = headers.items() if isinstance(headers, Mapping) else headers
    return any(k == LATE_HEADER for k, _ in items)


@dataclass
class Purge:
    """What one purge writes: markers (partition, key, value) first, then deletions."""

    markers: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    forget: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class _SessionIds:
    """A session's newest event time and its ids' keys (updated in place, once per id)."""

    newest: int
    keys: list[bytes]


@dataclass
class _PartitionIndex:
    sessions: dict[str, _SessionIds] = field(default_factory=dict)
    markers: dict[bytes, int] = field(default_factory=dict)  # marker key -> last event ms
    legacy: list[tuple[int, bytes]] = field(default_factory=list)  # (expire_at, key)
    ids: int = 0


class SeenIndex:
    """In-memory index of the seen-set by partition and session, so that a purge reads no
    JSON: built once per partition from the table, then kept up to date with each write.
    """

    def __init__(self) -> None:
        self._parts: dict[int, _PartitionIndex] = {}

    def loaded(self, partition: int) -> bool:
        """Whether this partition's index was built since it was (re)assigned."""
        return partition in self._parts

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop partitions (revoked or reassigned: the table may have changed elsewhere)."""
        for p in partitions:
            self._parts.pop(p, None)

    def load(self, partition: int, entries: Iterable[tuple[bytes, bytes]]) -> None:
        """Build a partition's index from the seen-set's entries (others are skipped)."""
        idx = self._parts[partition] = _PartitionIndex()
        # Every value is a JSON list whose first item is its partition: the entries of the
        # other partitions are skipped by that prefix, not parsed (a purge loads each
        # partition it holds from the same entries).
        mine = f"[{partition},".encode()
        for key, value in entries:
            if not value.startswith(mine):
                continue
            v = json.loads(value)
            if is_marker(key):
                idx.markers[key] = v[1]
            elif len(v) == 3:  # stored before ids were kept per session: [p, offset, expire]
                idx.legacy.append((v[2], key))
            else:
                self.add_id(partition, key, v[2], v[3])

    def add_id(self, partition: int, key: bytes, event_ms: int, session_id: str) -> None:
        """Record an id written to the seen-set (a no-op for a partition not loaded)."""
        idx = self._parts.get(partition)
        if idx is None:
            return
        idx.ids += 1
        known = idx.sessions.get(session_id)
        if known is None:
            idx.sessions[session_id] = _SessionIds(event_ms, [key])
            return
        known.keys.append(key)
        if event_ms > known.newest:
            known.newest = event_ms

    def plan(self, partition: int, watermark_ms: int, policy: DedupePolicy) -> Purge:
        """Which ids to forget (sessions over, or the oldest beyond the cap) and which
        markers to write or drop, at the partition's event-time watermark; the index is
        updated as if the purge were done."""
        idx = self._parts.get(partition)
        out = Purge()
        if idx is None:
            return out
        p, wm = partition, watermark_ms
        for mkey, last in list(idx.markers.items()):
            if last + policy.horizon_ms <= wm:
                out.forget.append((p, mkey))
                del idx.markers[mkey]
        keep = []
        for expire_at, key in idx.legacy:
            if expire_at <= wm:
                out.forget.append((p, key))
            else:
                keep.append((expire_at, key))
        idx.legacy = keep
        over = [
            sid for sid, ids in idx.sessions.items() if ids.newest + policy.session_gap_ms <= wm
        ]
        excess = idx.ids - policy.max_ids_per_partition
        if excess > 0:
            # Beyond the cap: the oldest sessions still open go too.
            rest = sorted(
                (ids.newest, sid)
                for sid, ids in idx.sessions.items()
                if ids.newest + policy.session_gap_ms > wm
            )
            for _, sid in rest:
                if excess <= 0:
                    break
                over.append(sid)
                excess -= len(idx.sessions[sid].keys)
        for sid in sorted(over, key=lambda s: idx.sessions[s].newest):
            gone = idx.sessions.pop(sid)
            newest, keys = gone.newest, gone.keys
            idx.ids -= len(keys)
            mkey = closed_key(sid)
            if newest + policy.horizon_ms > wm and idx.markers.get(mkey, -1) < newest:
                out.markers.append((p, mkey, marker_value(p, newest)))
                idx.markers[mkey] = newest
            out.forget.extend((p, k) for k in keys)
        return out


def plan_purge(
    entries: Iterable[tuple[bytes, bytes]],
    owned: set[int],
    watermark: Mapping[int, int],
    policy: DedupePolicy,
) -> Purge:
    """`SeenIndex.plan` over a seen-set's entries, for the partitions in `owned`."""
    index = SeenIndex()
    items = list(entries)
    out = Purge()
    for p in sorted(owned):
        index.load(p, items)
        plan = index.plan(p, watermark.get(p, 0), policy)
        out.markers += plan.markers
        out.forget += plan.forget
    return out
