"""Process every input offset exactly in sequence, whatever the consumer's commits say.

The stream state records the last input offset it applied (validate stats, partition
checkpoints, the detector's state), so the state, not faust's committed offset, decides
where processing resumes. Faust can commit past messages that were never processed: its
consumer treats any hole it sees in the offsets it read as acknowledged (the "gap" logic
of `faust.transport.consumer`), and `take_events` acknowledges a whole buffer when it is
torn down. Seen after `kill -9` as a run of about a dozen events per partition that
were neither forwarded nor counted.

So each message is classified against the state's last offset: already applied
(skip), next in sequence (process), or after a hole (rewind the consumer to the missing
offset and skip until it arrives). And after every rebalance, before faust positions the
consumer at the committed offsets, the app commits the state's own offsets
(`StreamsApp._commit_state_offsets`), so a restart resumes exactly where the state is.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from enum import Enum
from typing import Any

from faust.types import TP

log = logging.getLogger("streamwatch.streams")

REWIND_RETRY_S = 2.0  # seek again if the missing offset has not arrived by then


class Position(Enum):
    """Where a message stands relative to the state's last applied offset."""

    APPLIED = "applied"  # at or below it: its effects are in the state already
    NEXT = "next"  # the one to apply now
    AFTER_GAP = "after_gap"  # something between was never applied


def classify(last_applied: int, offset: int) -> Position:
    """Position of `offset` given the last offset whose effects are in the state (for a
    state that applied nothing: the offset before the log's start, see `OffsetGuard`)."""
    if offset == last_applied + 1:
        return Position.NEXT
    if offset <= last_applied:
        return Position.APPLIED
    return Position.AFTER_GAP


class OffsetGuard:
    """Per input partition, keep processing in offset sequence; rewinds on gaps."""

    def __init__(self, consumer: Any, counters: Counter[str], stage: str) -> None:
        self.consumer = consumer
        self.counters = counters
        self.stage = stage
        self._rewound: dict[TP, tuple[int, float]] = {}
        self._log_start: dict[TP, int] = {}

    def next_in_sequence(self, offset: int, last_applied: int) -> bool:
        """Whether the message is the next to apply and no rewind is under way: `admit`'s
        answer for nearly every message, without a coroutine per message. False says
        only that `admit` must decide."""
        return last_applied >= 0 and offset == last_applied + 1 and not self._rewound

    async def admit(self, topic: str, partition: int, offset: int, last_applied: int) -> bool:
        """True when this message is the next to apply; False to skip it."""
        if last_applied < 0:
            # A state that applied nothing starts where the log starts (retention may have
            # removed its first offsets), not at whatever offset arrives first: a record
            # fetched before a rebalance can arrive after it, ahead of the earlier records
            # dropped with the revoke, and taking it as the start would skip those for good
            # (sessions lost with two workers and large batches).
            last_applied = await self._start_of(TP(topic, partition)) - 1
        position = classify(last_applied, offset)
        if position is Position.NEXT:
            if self._rewound:
                self._rewound.pop(TP(topic, partition), None)
            return True
        if position is Position.APPLIED:
            self.counters[f"{self.stage}.replayed"] += 1
            return False
        tp = TP(topic, partition)
        expected = last_applied + 1
        self.counters[f"{self.stage}.gap_skipped"] += 1
        previous = self._rewound.get(tp)
        if previous is not None and previous[0] == expected:
            return False  # already rewound; older fetched messages still draining
        earliest = (await self.consumer.earliest_offsets(tp)).get(tp, 0)
        if earliest > expected:
            # Retention deleted what was never processed: resume at what is left.
            log.error(
                "%s: %s[%d] offsets %d..%d were deleted before being processed",
                self.stage,
                topic,
                partition,
                expected,
                earliest - 1,
            )
            self.counters[f"{self.stage}.offsets_lost"] += earliest - expected
            expected = earliest
            if offset == expected:
                return True
        log.warning(
            "%s: %s[%d] got offset %d, expected %d: rewinding",
            self.stage,
            topic,
            partition,
            offset,
            expected,
        )
        await self._rewind(tp, expected)
        return False

    async def retry_rewinds(self) -> None:
        """Seek again where a rewound offset has not arrived in `REWIND_RETRY_S`."""
        now = time.monotonic()
        for tp, (expected, at) in list(self._rewound.items()):
            if now - at >= REWIND_RETRY_S:
                await self._rewind(tp, expected)

    def forget(self) -> None:
        """Drop pending rewinds (after a rebalance the consumer is re-positioned anyway)."""
        self._rewound.clear()
        self._log_start.clear()

    async def _start_of(self, tp: TP) -> int:
        """The log's first offset (asked once per assignment; a later start, moved by
        retention, shows as a gap, which asks again)."""
        start = self._log_start.get(tp)
        if start is None:
            start = self._log_start[tp] = (await self.consumer.earliest_offsets(tp)).get(tp, 0)
        return start

    async def _rewind(self, tp: TP, offset: int) -> None:
        self.counters[f"{self.stage}.rewinds"] += 1
        self._rewound[tp] = (offset, time.monotonic())
        # seek_wait runs in the consumer's thread and resets faust's read offset, so the
        # re-read messages are not dropped as already seen.
        await self.consumer.seek_wait({tp: offset})
