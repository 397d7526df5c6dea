"""The notifier (`streamwatch alerts run`): rules over the live topics, delivery that
survives receivers being down and the notifier being killed.

Durable record, all in Kafka:

- `ops.notifications.v1` (the outbox, keyed by alert key so a firing and its resolved stay
  in order): every notification, written (acks=all) before any attempt to send it;
- `ops.deliveries.v1` (the delivery log): every attempt with the receiver's answer, and the
  final outcome (delivered / rejected / silenced / acknowledged);
- `ops.alert_actions.v1`: silences, their expiry and acknowledgements, with who and when.

At start the notifier reads those three topics to their end, so it knows what was sent and
what is still owed; then it reads the minute rollups and incidents from the beginning to
rebuild the rule engine's state (it is deterministic). Transitions whose notification ids
the outbox already holds are not written again; transitions found only during that catch-up
are written if their alert still fires or they are recent (`alerts_catch_up_max_age_min`),
so a new rule does not page about last week. Notifications of the outbox without a final
log entry are sent again from where they stood: nothing is lost by a crash, and a
delivered one is not sent twice (the log entry is written right after the receiver's 2xx;
a crash in that instant can repeat one send, which receivers can drop by the notification
id carried in every body and in the webhook's Idempotency-Key header).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import TypeAdapter, ValidationError

from alerts import kafka_io
from alerts.delivery import Decision, DeliveryQueue, outcome_of, rate_limits_of
from alerts.engine import RuleEngine
from alerts.minutes import MinuteAssembler
from alerts.receivers import Receiver, request_for
from alerts.records import Alert, AlertAction, Delivery, Notification
from alerts.routing import notifications_for
from alerts.rules import RuleSet
from contract.records import Incident, MinuteRollup
from indexers.retry import RetryPolicy
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics

log = logging.getLogger("streamwatch.alerts")
ACTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(AlertAction)
STATE_TOPICS = (topics.NOTIFICATIONS, topics.DELIVERIES, topics.ALERT_ACTIONS)
INPUT_TOPICS = (topics.MINUTE, topics.INCIDENTS)
_ANSWER_CHARS = 500


def retry_policy(settings: Settings) -> RetryPolicy:
    """Backoff between delivery attempts; never gives up on a receiver that is down."""
    return RetryPolicy(initial_s=settings.alerts_retry_initial_s, max_s=settings.alerts_retry_max_s)


def public_link(settings: Settings) -> str:
    """Where a notification points people: the SRE app's incidents page."""
    base = settings.alerts_public_url or settings.dashboards_public_url
    return base or f"http://127.0.0.1:{settings.dashboards_port}/incidents"


class Notifier:
    """Rule engine + outbox + delivery, over Kafka."""

    def __init__(
        self, settings: Settings, ruleset: RuleSet, receivers: Mapping[str, Receiver]
    ) -> None:
        self.settings = settings
        self.ruleset = ruleset
        self.receivers = dict(receivers)
        self.engine = RuleEngine(ruleset)
        self.minutes = MinuteAssembler(settings.alerts_minute_grace_min)
        self.queue = DeliveryQueue(
            retry_policy(settings), rate_limits_of((r.name, r.rate_limit) for r in ruleset.routes)
        )
        self.link = public_link(settings)
        self.catching_up = True
        self._held: list[Alert] = []
        self._warned: set[str] = set()
        self._idle: frozenset[int] = frozenset()
        self.counts: dict[str, int] = {}

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # -- the loop ---------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        # The topics are assigned once at start: make sure they exist (idempotent).
        await create_topics(self.settings)
        producer = kafka_io.producer(self.settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        timeout = aiohttp.ClientTimeout(total=self.settings.alerts_request_timeout_s)
        await producer.start()
        try:
            await consumer.start()
        except BaseException:
            await producer.stop()
            raise
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                self._producer = producer
                self._http = http
                state = await kafka_io.partitions(self.settings, STATE_TOPICS)
                await self._read_state(consumer, state)
                inputs = await kafka_io.partitions(self.settings, INPUT_TOPICS)
                positions = {tp: await consumer.position(tp) for tp in state}
                consumer.assign(state + inputs)
                for tp, pos in positions.items():
                    consumer.seek(tp, pos)
                if inputs:
                    await consumer.seek_to_beginning(*inputs)
                    input_end = await consumer.end_offsets(inputs)
                else:
                    input_end = {}
                log.info(
                    "notifier: %d notifications owed; catching up on %d input partitions",
                    len(self.queue.pending()),
                    len(inputs),
                )
                while not stop.is_set():
                    wake = min(self.queue.next_wake(1.0), 0.2 if self.catching_up else 1.0)
                    batch = await consumer.getmany(
                        timeout_ms=max(10, int(wake * 1000)), max_records=5000
                    )
                    for tp, msgs in batch.items():
                        for m in msgs:
                            self._dispatch(tp, m)
                    self._idle = await self._idle_partitions(consumer, inputs)
                    if self.catching_up and await self._caught_up(consumer, input_end):
                        await self._end_catch_up()
                    await self._judge_minutes()
                    # What the outbox owes goes out even while history is re-read.
                    await self._deliver_due()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _read_state(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not pending:
                return
            for tp, msgs in (await consumer.getmany(*pending, timeout_ms=500)).items():
                for m in msgs:
                    self._dispatch(tp, m)

    @staticmethod
    async def _idle_partitions(
        consumer: AIOKafkaConsumer, inputs: list[TopicPartition]
    ) -> frozenset[int]:
        idle: set[int] = set()
        for tp in inputs:
            if tp.topic.endswith(topics.MINUTE):
                high = consumer.highwater(tp)
                if high is None or await consumer.position(tp) >= high:
                    idle.add(tp.partition)
        return frozenset(idle)

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return False
        return True

    async def _end_catch_up(self) -> None:
        await self._judge_minutes()
        newest = self.engine.last_minute
        horizon = timedelta(minutes=self.settings.alerts_catch_up_max_age_min)
        firing = self.engine.firing
        skipped: set[str] = set()
        for alert in self._held:
            when = alert.resolved_at or alert.fired_at
            recent = newest is None or when >= newest - horizon
            still = alert.status == "firing" and firing.get(alert.key) == alert
            # A resolved whose firing was never sent would confuse the receiver: skip both.
            if (recent or still) and alert.episode not in skipped:
                await self._notify(alert)
            else:
                skipped.add(alert.episode)
                self._count("catch_up_skipped")
        self._held.clear()
        self.catching_up = False
        log.info("notifier: caught up; %d notifications owed", len(self.queue.pending()))

    # -- input ------------------------------------------------------------------------
    def _dispatch(self, tp: TopicPartition, m: ConsumerRecord[bytes, bytes]) -> None:
        logical = tp.topic[len(self.settings.topic_prefix) :]
        raw = m.value or b""
        try:
            if logical == topics.NOTIFICATIONS:
                self.queue.add(Notification.model_validate_json(raw))
            elif logical == topics.DELIVERIES:
                self.queue.record(Delivery.model_validate_json(raw))
            elif logical == topics.ALERT_ACTIONS:
                self.queue.apply(ACTION_ADAPTER.validate_json(raw))
            elif logical == topics.MINUTE:
                self.minutes.add(MinuteRollup.model_validate_json(raw), tp.partition)
            elif logical == topics.INCIDENTS:
                for alert in self.engine.on_incident(Incident.model_validate_json(raw)):
                    self._transition(alert)
        except ValidationError as exc:
            # Not ours to fix and must not stop alerting: count it and go on.
            self._count(f"invalid.{logical}")
            log.warning("notifier: skipped an invalid record on %s: %s", tp.topic, exc)

    def _transition(self, alert: Alert) -> None:
        self._held.append(alert)

    async def _judge_minutes(self) -> None:
        for start, values in self.minutes.ready(self._idle):
            for alert in self.engine.on_minute(start, values):
                self._transition(alert)
        if not self.catching_up:
            held, self._held = self._held, []
            for alert in held:
                await self._notify(alert)

    async def _notify(self, alert: Alert) -> None:
        now = datetime.now(UTC)
        notes, missing = notifications_for(alert, self.ruleset, self.receivers, now)
        for name in missing:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("notifier: receiver %r is named by a route but not configured", name)
        for n in notes:
            if self.queue.knows(n.notification_id):
                continue
            # Durable first: once in the outbox it will be delivered, whatever happens next.
            await self._producer.send_and_wait(
                self.settings.topic(topics.NOTIFICATIONS),
                key=alert.key.encode(),
                value=n.model_dump_json().encode(),
            )
            self.queue.add(n)
            self._count("notifications")
            log.info("notifier: %s %s -> %s", alert.status, alert.key, n.receiver)

    # -- output -----------------------------------------------------------------------
    async def _deliver_due(self) -> None:
        decisions = self.queue.due(datetime.now(UTC))
        if decisions:
            await asyncio.gather(*(self._deliver(d) for d in decisions))

    async def _deliver(self, d: Decision) -> None:
        n = d.notification
        status: int | None = None
        if d.outcome is not None:
            outcome, answer = d.outcome, ""
        else:
            self.queue.sent(n.route)
            status, answer = await self._send(n)
            outcome = outcome_of(status)
            if outcome != "delivered":
                self.queue.refund(n.route)  # the limit protects people; nobody was reached
        entry = Delivery(
            notification_id=n.notification_id,
            receiver=n.receiver,
            route=n.route,
            alert_key=n.alert.key,
            status=n.alert.status,
            outcome=outcome,  # type: ignore[arg-type]
            attempt=d.attempt,
            at=datetime.now(UTC),
            http_status=status,
            answer=answer[:_ANSWER_CHARS],
        )
        await self._producer.send_and_wait(
            self.settings.topic(topics.DELIVERIES),
            key=n.notification_id.encode(),
            value=entry.model_dump_json().encode(),
        )
        self.queue.record(entry)
        self._count(f"outcome.{outcome}")
        if outcome != "delivered":
            log.info("notifier: %s to %s: %s %s", outcome, n.receiver, status, answer[:120])

    async def _send(self, n: Notification) -> tuple[int | None, str]:
        url, body, headers = request_for(
            self.receivers[n.receiver], n, self.link, datetime.now(UTC)
        )
        try:
            async with self._http.post(url, json=body, headers=headers) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
