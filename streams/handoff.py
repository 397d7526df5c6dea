"""Events the validate agent forwarded, kept for the qoe agent of the same process.

The qoe agent reads back, from telemetry.events.v1, the very bytes the validate agent
serialized a moment before; parsing them again with the contract's validators cost it as
much as its whole session and rollup logic. So the validate agent leaves each forwarded
event here, keyed by its serialized bytes, and the qoe agent takes it back by the bytes it
read: a hit is the object those exact bytes were made from, so it is what parsing them
would give. A miss (another worker forwarded it, a restart emptied the cache, the qoe agent
fell far behind) parses as before. Bounded: the oldest entries go first.
"""

from __future__ import annotations

from contract.events import Event

DEFAULT_CAPACITY = 50_000


class Handoff:
    """Forwarded events by their bytes, at most `capacity` of them (oldest dropped)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._events: dict[bytes, Event] = {}
        self.hits = 0
        self.misses = 0

    def put(self, value: bytes, event: Event) -> None:
        """Keep `event`, serialized as `value`, for the qoe agent."""
        events = self._events
        events[value] = event
        if len(events) > self.capacity:
            del events[next(iter(events))]

    def take(self, value: bytes) -> Event | None:
        """The event serialized as `value` if it is still here (and forget it)."""
        event = self._events.pop(value, None)
        if event is None:
            self.misses += 1
        else:
            self.hits += 1
        return event

    def clear(self) -> None:
        """Forget everything (nothing here is state: it only saves parsing)."""
        self._events.clear()
