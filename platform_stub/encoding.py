"""Fast, deterministic building blocks for event JSON: ids, timestamps, envelopes.

The hot path builds each event as one f-string from pre-encoded parts instead of a
pydantic model (tests validate samples against `contract.events.EVENT_ADAPTER`).
"""

from __future__ import annotations

import random
import statistics
import time

V4_CLEAR = ~((0xF << 76) | (0xC << 60))
V4_SET = (0x4 << 76) | (0x8 << 60)

# Epoch second -> its formatted prefix. A dict, not the last second only: each session's next
# event is made when its previous one is sent, seconds to minutes ahead, so consecutive calls
# jump between seconds (a one-entry cache missed on two calls in three).
SECOND_PREFIXES: dict[int, str] = {}
# Standard normal quantiles, indexed by 12 random bits: noise without the cost of
# `random.gauss` (the player's throughput walk and service latencies need a bell shape,
# not exact tails).
NORMALS = tuple(
    statistics.NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096)
)  # (second, its formatted prefix)


def uuid4_from(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng` (deterministic, unlike `uuid.uuid4`)."""
    # `to_bytes().hex()`: the same 32 lowercase digits as `:032x`, in half the time.
    h = ((rng.getrandbits(128) & V4_CLEAR) | V4_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso_ms(epoch_ms: int) -> str:
    """UTC ISO-8601 with milliseconds and `Z`, e.g. 2026-01-01T18:00:00.250Z."""
    sec, ms = divmod(epoch_ms, 1000)
    prefix = SECOND_PREFIXES.get(sec)
    if prefix is None:
        prefix = second_prefix(sec)
    return f"{prefix}{ms:03d}Z"


def second_prefix(sec: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of epoch second `sec`, remembered in `SECOND_PREFIXES`."""
    if len(SECOND_PREFIXES) > 4_096:
        SECOND_PREFIXES.clear()
    prefix = SECOND_PREFIXES[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    return prefix


def event_line(event_id: str, event_type: str, event_ms: int, envelope: str, payload: str) -> str:
    """One event as a JSON line (no newline); `payload` is a pre-encoded JSON object."""
    return (
        f'{{"event_id":"{event_id}","event_type":"{event_type}","schema_version":1,'
        f'"event_time":"{iso_ms(event_ms)}",{envelope},"payload":{payload}}}'
    )
