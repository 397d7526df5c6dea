"""When the detector may judge a minute: once every events partition is done with it.

Each events partition publishes, on the one-partition partials topic, its partial of a
minute when the minute closes, then a progress marker saying up to which minute it has
closed everything. Because both come from the partition's own (event-time driven) scan,
in order, "partition p is done with minute m" is a fact of the topic's content, not of
how fast each worker runs. Judging a minute only when every partition is done makes the
incidents the same whether one worker or several process the partitions, at any speed.

A partition that says nothing at all (no traffic, or a worker gone) must not hold the
detector up forever: once the partials topic's own record timestamps show it silent for
`silence_ms` while others go on, minutes are judged without it. Record timestamps are
stored in the topic, so a detector replaying after a crash decides exactly as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import BaseModel, ConfigDict

# Key prefix of progress markers on the partials topic (partials are keyed by minute).
PROGRESS_KEY_PREFIX = b"progress:"


class PartitionProgress(BaseModel):
    """Every minute starting at or before `closed_upto_ms` is closed in `partial`."""

    model_config = ConfigDict(extra="forbid")

    partial: str  # the partition's partial name, "p<partition>"
    closed_upto_ms: int


def is_progress(key: bytes | None) -> bool:
    """Whether a partials-topic record is a progress marker (not a minute's partial)."""
    return key is not None and key.startswith(PROGRESS_KEY_PREFIX)


def progress_key(partial: str) -> bytes:
    """The record key of a partition's progress markers."""
    return PROGRESS_KEY_PREFIX + partial.encode()


def closed_upto(watermark_ms: int, window_ms: int, lateness_ms: int) -> int:
    """The newest minute start a partition at `watermark_ms` has closed.

    A window closes once `start + window + lateness <= watermark` (see `streams.app`).
    """
    newest = watermark_ms - window_ms - lateness_ms
    return newest - newest % window_ms


def judgeable(
    pending: Collection[int],
    arrived: Mapping[int, Collection[str]],
    closed: Mapping[str, int],
    heard_ms: Mapping[str, int],
    since_ms: int,
    clock_ms: int,
    expected: Collection[str],
    silence_ms: int,
) -> list[int]:
    """The oldest pending minutes that may be judged now, oldest first.

    A partition is done with minute `m` when its partial of `m` arrived or its progress
    says it closed `m`. A partition silent for `silence_ms` of record time up to `clock_ms`
    (since its last record, or since `since_ms`, the first record heard at all) is not
    waited for. Stops at the first minute still waiting: minutes are judged in order.
    """
    waited_for = [p for p in expected if clock_ms - heard_ms.get(p, since_ms) < silence_ms]
    out: list[int] = []
    for start in sorted(pending):
        got = arrived.get(start, ())
        if not all(p in got or closed.get(p, start - 1) >= start for p in waited_for):
            break
        out.append(start)
    return out
