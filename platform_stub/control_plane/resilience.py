"""Resilience policies of a simulated service call: retries and a circuit breaker.

Both run on simulated time (the breaker opens and half-opens by event time, never by the
wall clock), so a stub run stays deterministic per seed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How a caller retries a failed call: attempts in all, and exponential backoff."""

    max_attempts: int = 1
    backoff_ms: int = 50
    multiplier: float = 2.0

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt `attempt` (1-based) before the next one."""
        return int(self.backoff_ms * self.multiplier ** (attempt - 1))


@dataclass(frozen=True)
class BreakerPolicy:
    """When a caller's circuit opens: failure share over its last `window` calls."""

    window: int = 20
    min_calls: int = 10
    failure_share: float = 0.5
    open_ms: int = 5_000  # then one trial call (half-open)


class CircuitBreaker:
    """A Hystrix-style breaker over the outcomes of the last calls (simulated time)."""

    __slots__ = ("_failures", "_outcomes", "_pos", "open_until", "policy")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._outcomes = bytearray(policy.window)  # 1 = failed
        self._pos = 0
        self._failures = 0
        self.open_until = -1

    def allows(self, now_ms: int) -> bool:
        """Whether a call may go out at `now_ms` (closed, or half-open after the wait)."""
        return now_ms >= self.open_until

    def record(self, now_ms: int, ok: bool) -> None:
        """Fold in one call's outcome; open the circuit when too many failed."""
        window = self.policy.window
        slot = self._pos % window
        self._failures += (0 if ok else 1) - self._outcomes[slot]
        self._outcomes[slot] = 0 if ok else 1
        self._pos += 1
        calls = min(self._pos, window)
        if calls >= self.policy.min_calls and self._failures >= self.policy.failure_share * calls:
            self.open_until = now_ms + self.policy.open_ms
            self._outcomes[:] = bytes(window)  # the half-open trial starts a fresh window
            self._failures = 0
            self._pos = 0
