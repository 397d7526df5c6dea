"""All-or-nothing state per input partition, on top of Faust's last-write-wins changelogs.

Faust writes every table update to a changelog topic as it happens, and a `kill -9` can
leave any prefix of a batch's updates there: a session could then say "event 812 applied"
while the minute window it fed never got it (lost on replay), or the other way round
(counted twice). Kafka transactions would make the batch atomic, but faust-streaming's
`exactly_once` is unreliable (faust-streaming#517, #440, #323), so the stream worker commits
each partition's batch itself:

1. every state written in a batch is an `Entry`: the batch number `seq`, the new value and
   the value as of the last committed batch (`prev`, the undo image);
2. after all of a batch's writes (and its output messages), the producer is flushed;
3. then the partition's `Checkpoint` is written: `seq`, the highest input offset whose
   effects are in the state (`upto`), and the event-time clock (watermark, next scan).

On restart, entries newer than the checkpoint are rolled back to `prev` (`recover`), events
at or below `upto` are skipped, and the rest is processed again from exactly the committed
state. Because closing sessions and windows is driven by event time recorded in the
checkpoint (never by the wall clock), the replay re-publishes exactly what the lost batch
published, so consumers that keep the latest revision per key see no difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import ClassVar

from pydantic import ConfigDict, TypeAdapter


@dataclass(slots=True)
class ValidateStats:
    """Reconciliation counters of one raw partition: raw = valid + dead + duplicates.

    Carried in the partition's `Checkpoint`, so the same commit point covers the counts
    and the sessions and windows the counted events changed: a batch is counted exactly
    when its effects are committed, and a replayed batch is never counted twice.

    A plain dataclass, counted per event at the cost of a Python attribute (a pydantic
    model's validating `__setattr__` was per event too); its JSON is the pydantic model's
    it replaces, field for field.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    raw: int = 0
    valid: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # includes `late_closed`
    late_closed: int = 0  # events of sessions closed and forgotten: kept, never re-counted

    # The counter names, as the pydantic model gave them (`streams.progress` sums them);
    # set from the fields below the class.
    model_fields: ClassVar[tuple[str, ...]]

    def model_dump(self) -> dict[str, int]:
        """The counters by name."""
        return {name: getattr(self, name) for name in self.model_fields}


@dataclass(slots=True)
class Checkpoint:
    """The committed position of one raw partition, with its reconciliation counters.

    A plain dataclass: `upto` and `watermark_ms` change with every event, and a pydantic
    model's `__setattr__` cost a twentieth of the logic's time. Its JSON
    (`model_dump_json` / `model_validate_json`, through a pydantic `TypeAdapter`) is the
    pydantic model's it replaces, so checkpoints written before read back unchanged.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    seq: int = 0  # last committed batch of the partition
    upto: int = -1  # highest input offset whose effects are committed
    watermark_ms: int = 0  # highest event time seen up to `upto`
    next_scan_ms: int = 0  # event time at which sessions and windows are next checked
    revise: list[str] = field(default_factory=list)  # closed windows touched by late events
    closed_upto_ms: int = 0  # newest minute the detector was told this partition closed
    stats: ValidateStats = field(default_factory=ValidateStats)

    def model_dump_json(self) -> str:
        """The checkpoint's JSON, as the checkpoints table stores it."""
        return _CHECKPOINT_JSON.dump_json(self).decode()

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Checkpoint:
        """A checkpoint from its JSON (checked: unknown fields are an error)."""
        return _CHECKPOINT_JSON.validate_json(data)


_CHECKPOINT_JSON: TypeAdapter[Checkpoint] = TypeAdapter(Checkpoint)
ValidateStats.model_fields = tuple(f.name for f in fields(ValidateStats))


@dataclass(frozen=True)
class Entry:
    """One table value: batch number, index hints, current and committed-before images.

    `ms` and `closed` (the session's last event time or the window's start, and whether it
    is closed) let a recovering worker index its keys without parsing every state.
    An empty `cur` is a deletion that is not committed yet; an empty `prev` means the key
    did not exist before the batch.
    """

    seq: int
    ms: int
    closed: bool
    cur: bytes
    prev: bytes = b""

    def encode(self) -> bytes:
        """`seq:ms:closed:len(cur):` followed by cur then prev (JSON never needs escaping)."""
        head = f"{self.seq}:{self.ms}:{int(self.closed)}:{len(self.cur)}:".encode()
        return b"".join((head, self.cur, self.prev))  # one copy of the images, not two

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        """Inverse of `encode`; a bare JSON state (written before entries) is batch 0."""
        if is_legacy(raw):
            return cls(0, 0, False, raw)
        seq, ms, closed, start, end = _head(raw)
        return cls(int(seq), int(ms), closed == b"1", raw[start:end], raw[end:])


def _head(raw: bytes) -> tuple[bytes, bytes, bytes, int, int]:
    """An entry's seq, ms and closed fields, and where its `cur` image starts and ends."""
    seq_end = raw.index(b":")
    ms_end = raw.index(b":", seq_end + 1)
    closed_end = raw.index(b":", ms_end + 1)
    size_end = raw.index(b":", closed_end + 1)
    start = size_end + 1
    end = start + int(raw[closed_end + 1 : size_end])
    return raw[:seq_end], raw[seq_end + 1 : ms_end], raw[ms_end + 1 : closed_end], start, end


def is_legacy(raw: bytes) -> bool:
    """A state stored by a worker older than this protocol: the bare JSON object."""
    return raw[:1] == b"{"


def committed_value(raw: bytes | None) -> bytes:
    """The current image of a stored entry, b"" for none (the prev of the next write).

    `Entry.decode(raw).cur`, copying only `cur` (read for every state a batch touches).
    """
    if not raw:
        return b""
    if is_legacy(raw):
        return raw
    _, _, _, start, end = _head(raw)
    return raw[start:end]


@dataclass(frozen=True)
class Repair:
    """What recovering one key needs: rewrite it, delete it, or keep it (index only)."""

    key: bytes
    action: str  # "keep" | "rewrite" | "delete"
    entry: Entry | None  # the committed entry to keep or rewrite (None when deleted)


def recover(items: Iterable[tuple[bytes, bytes]], checkpoint: Checkpoint) -> list[Repair]:
    """Roll the entries of one partition back to its checkpoint.

    Entries written by a batch after the checkpoint (seq > checkpoint.seq) get their
    committed image back, or are deleted if the key is new; committed deletions (empty
    cur) are deleted for good; states stored before this protocol are kept and rewritten
    as entries.
    """
    out: list[Repair] = []
    for key, raw in items:
        if is_legacy(raw):
            # Committed by an older worker (no undo images then): kept, re-stored as an entry.
            out.append(Repair(key, "rewrite", Entry(checkpoint.seq, 0, False, raw)))
            continue
        e = Entry.decode(raw)
        if e.seq > checkpoint.seq:
            if e.prev:
                # The index hints describe `cur`; the caller re-derives them from prev.
                out.append(Repair(key, "rewrite", Entry(checkpoint.seq, 0, False, e.prev)))
            else:
                out.append(Repair(key, "delete", None))
        elif not e.cur:
            out.append(Repair(key, "delete", None))
        else:
            out.append(Repair(key, "keep", e))
    return out


def with_hints(entry: Entry, hints: Callable[[bytes], tuple[int, bool]]) -> Entry:
    """The entry with `ms` / `closed` recomputed from its current image."""
    ms, closed = hints(entry.cur)
    return Entry(entry.seq, ms, closed, entry.cur, entry.prev)
