"""Retry policy as a value: how long to wait before the n-th retry."""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamwatch.settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and no give-up: sinks never drop data.

    `max_attempts=None` retries forever (what the sinks use: an outage pauses consumption
    instead of losing events); a finite value is for callers that must fail eventually.
    """

    initial_s: float = 0.2
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The sinks' policy from `sink_retry_initial_s` / `sink_retry_max_s`."""
        return cls(initial_s=settings.sink_retry_initial_s, max_s=settings.sink_retry_max_s)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based), jittered by +-`jitter`."""
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def gives_up(self, attempt: int) -> bool:
        """True once `attempt` retries have been spent (never, for the sinks)."""
        return self.max_attempts is not None and attempt >= self.max_attempts
