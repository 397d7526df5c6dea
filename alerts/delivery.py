"""Which notification to try next: order per receiver, retries, rate limits, silences, acks.

Pure bookkeeping (no I/O), so that the notifier's behaviour after a restart is simply this
queue rebuilt from the durable topics: every notification in `ops.notifications.v1` that
has no final entry in the delivery log `ops.deliveries.v1` is pending again.

- Order: each receiver gets its notifications in the order they were created, so a
  resolved never overtakes its firing. A receiver that is down holds only its own queue.
- Retries: a failed attempt waits `RetryPolicy.delay(attempt)` before the next; attempts
  never give up on an outage (5xx, timeouts, refused connections).
- A 4xx answer (other than 408/425/429) is final ("rejected"): the request itself is
  wrong and repeating it cannot help; the delivery log keeps the receiver's answer.
- Rate limit per route: past `max` sends per `per_s` seconds the rest wait, never dropped.
- Silences and acknowledgements turn a pending notification into a final "silenced" or
  "acknowledged" entry of the log instead of a send (resolved notifications of an
  acknowledged alert are still sent).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from alerts.records import FINAL_OUTCOMES, Ack, Delivery, Expire, Notification, Silence
from alerts.rules import RateLimit
from indexers.retry import RetryPolicy

RETRYABLE_4XX = frozenset({408, 425, 429})


def outcome_of(http_status: int | None) -> str:
    """'delivered', 'rejected' or 'failed' for an HTTP answer (None: no answer at all)."""
    if http_status is None:
        return "failed"
    if 200 <= http_status < 300:
        return "delivered"
    if 400 <= http_status < 500 and http_status not in RETRYABLE_4XX:
        return "rejected"
    return "failed"


@dataclass
class _Pending:
    notification: Notification
    attempts: int = 0
    next_at: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to do with one pending notification now: send it, or close it with `outcome`."""

    notification: Notification
    attempt: int
    outcome: str | None = None  # None = send; otherwise "silenced" / "acknowledged"


class DeliveryQueue:
    """Pending notifications per receiver, and what is due."""

    def __init__(
        self,
        policy: RetryPolicy,
        rate_limits: dict[str, RateLimit],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.rate_limits = rate_limits
        self.clock = clock
        self._queues: dict[str, deque[str]] = {}
        self._pending: dict[str, _Pending] = {}
        self._known: set[str] = set()
        self._final: set[str] = set()
        self._sent: dict[str, deque[float]] = {}
        self.silences: dict[str, Silence] = {}
        self.acks: dict[str, list[Ack]] = {}

    # -- what the durable topics say --------------------------------------------------
    def add(self, n: Notification) -> bool:
        """Queue `n` unless it is known already (returns whether it was new)."""
        if n.notification_id in self._known:
            return False
        self._known.add(n.notification_id)
        if n.notification_id in self._final:
            return False
        self._pending[n.notification_id] = _Pending(n)
        self._queues.setdefault(n.receiver, deque()).append(n.notification_id)
        return True

    def knows(self, notification_id: str) -> bool:
        """Whether this notification was queued before (by anyone, any time)."""
        return notification_id in self._known

    def record(self, d: Delivery) -> None:
        """Apply one delivery-log entry (read back from the log or just written)."""
        p = self._pending.get(d.notification_id)
        if d.outcome in FINAL_OUTCOMES:
            self._final.add(d.notification_id)
            if p is not None:
                del self._pending[d.notification_id]
                q = self._queues.get(p.notification.receiver)
                if q is not None and d.notification_id in q:
                    q.remove(d.notification_id)
            return
        if p is not None and d.attempt >= p.attempts:
            p.attempts = d.attempt + 1
            p.next_at = self.clock() + self.policy.delay(d.attempt)

    def apply(self, action: Silence | Expire | Ack) -> None:
        """Apply one audited action from `ops.alert_actions.v1`."""
        if isinstance(action, Silence):
            self.silences[action.silence_id] = action
        elif isinstance(action, Expire):
            s = self.silences.get(action.silence_id)
            if s is not None and action.at < s.ends_at:
                self.silences[action.silence_id] = s.model_copy(update={"ends_at": action.at})
        else:
            self.acks.setdefault(action.alert_key, []).append(action)

    # -- what to do now ---------------------------------------------------------------
    def pending(self) -> list[Notification]:
        """Every notification not yet final, in queue order."""
        return [self._pending[i].notification for q in self._queues.values() for i in q]

    def due(self, now: datetime) -> list[Decision]:
        """At most one decision per receiver: the head of its queue, if it may go now."""
        out: list[Decision] = []
        t = self.clock()
        for q in self._queues.values():
            if not q:
                continue
            p = self._pending[q[0]]
            n = p.notification
            if n.alert.status == "firing" and self._acked(n):
                out.append(Decision(n, p.attempts, "acknowledged"))
            elif any(s.matches(n.alert, now) for s in self.silences.values()):
                out.append(Decision(n, p.attempts, "silenced"))
            elif p.next_at <= t and self._may_send(n.route, t):
                out.append(Decision(n, p.attempts))
        return out

    def sent(self, route: str) -> None:
        """Count one send against the route's rate limit."""
        if route in self.rate_limits:
            self._sent.setdefault(route, deque()).append(self.clock())

    def refund(self, route: str) -> None:
        """Undo the last `sent` of a route (the attempt reached nobody)."""
        window = self._sent.get(route)
        if window:
            window.pop()

    def _may_send(self, route: str, t: float) -> bool:
        limit = self.rate_limits.get(route)
        if limit is None:
            return True
        window = self._sent.setdefault(route, deque())
        while window and window[0] <= t - limit.per_s:
            window.popleft()
        return len(window) < limit.max

    def _acked(self, n: Notification) -> bool:
        return any(a.at >= n.alert.started_at for a in self.acks.get(n.alert.key, ()))

    def next_wake(self, default_s: float) -> float:
        """Seconds until something may be due (bounded by `default_s`)."""
        t = self.clock()
        heads = [self._pending[q[0]].next_at for q in self._queues.values() if q]
        if not heads:
            return default_s
        return max(0.0, min(default_s, min(heads) - t))


def rate_limits_of(routes: Iterable[tuple[str, RateLimit | None]]) -> dict[str, RateLimit]:
    """Route name -> its rate limit, for routes that have one."""
    return {name: limit for name, limit in routes if limit is not None}
