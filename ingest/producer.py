"""Writing accepted events and dead letters to Kafka, with every ack awaited.

The collector may only answer 2xx once Kafka holds the batch, so `EventProducer.send_events`
returns only after every record is acknowledged by all in-sync replicas (acks='all', an
idempotent producer) and raises `KafkaUnavailable` when that does not happen in time. Retries
are a `RetryPolicy` value, not sleeps scattered through the code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contract.deadletter import DeadLetter
from streamwatch import topics
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings

log = logging.getLogger(__name__)

# Kafka's own default cap on a produce request is 1 MiB; our records are far smaller (events
# are capped by max_event_bytes) but a batch of them may be larger, so allow some headroom.
_MIN_MAX_REQUEST_SIZE = 1024 * 1024


class KafkaUnavailable(StreamwatchError):
    """Kafka did not acknowledge everything in time; nothing may be reported as accepted."""

    exit_code = 5

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed produce is retried, inside one deadline.

    `attempts` counts the first try. Backoff doubles (times `multiplier`) from
    `initial_backoff_s` up to `max_backoff_s`. The overall deadline is the producer's ack
    timeout, so retries never make a request outlive it.
    """

    attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def backoff_s(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed."""
        delay = self.initial_backoff_s * self.multiplier ** max(failed_attempt - 1, 0)
        return float(min(delay, self.max_backoff_s))

    def should_retry(self, failed_attempt: int) -> bool:
        """Whether another attempt follows attempt number `failed_attempt`."""
        return failed_attempt < self.attempts


@dataclass(frozen=True)
class Record:
    """One Kafka record: key, value and headers as bytes."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class EventProducer:
    """An idempotent acks='all' producer for the raw and dead-letter topics.

    The underlying aiokafka producer is started lazily and restarted after a failed start, so
    a collector can come up while Kafka is down and recover without a restart of its own.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ack_timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        source: str = "collector",
    ) -> None:
        self.settings = settings
        self.ack_timeout_s = ack_timeout_s or settings.collector_produce_timeout_s
        self.retry = retry or RetryPolicy()
        self.source = source
        self.raw_topic = settings.topic(topics.RAW)
        self.deadletter_topic = settings.topic(topics.DEADLETTER)
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> bool:
        """Try to connect now; returns whether Kafka answered (a later send retries)."""
        try:
            await asyncio.wait_for(self._ensure_started(), self.ack_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("kafka not reachable at start", extra={"error": repr(exc)})
            return False
        return True

    async def stop(self) -> None:
        """Flush what is in flight and close the connection."""
        async with self._start_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Replace `producer` by a fresh one on next use; close it in the background.

        An idempotent producer whose batches failed or expired unsent is left with a gap in its
        sequence numbers: once Kafka is back every later batch fails with
        OutOfOrderSequenceNumber and it never recovers (aiokafka does not bump the epoch the
        way the Java client does). A new producer gets a new producer id and starts clean.
        """
        if self._producer is producer:
            self._producer = None
            task = asyncio.create_task(self._close_quietly(producer))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _close_quietly(self, producer: AIOKafkaProducer) -> None:
        try:
            await producer.stop()
        except Exception as exc:  # closing a broken producer may fail; it is gone either way
            log.debug("closing a retired producer failed", extra={"error": repr(exc)})

    async def _ensure_started(self) -> AIOKafkaProducer:
        async with self._start_lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                client_id=f"streamwatch-{self.source}",
                acks="all",
                enable_idempotence=True,
                linger_ms=self.settings.collector_linger_ms,
                # Batches expire with our deadline instead of aiokafka's 40 s default, so an
                # unacknowledged record never outlives the request that waits for it.
                request_timeout_ms=int(self.ack_timeout_s * 1000),
                max_request_size=max(_MIN_MAX_REQUEST_SIZE, 4 * self.settings.max_event_bytes),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            return producer

    # -- sending ------------------------------------------------------------------------
    async def send_events(self, records: Sequence[Record]) -> None:
        """Write records to the raw topic; returns only when every one is acknowledged."""
        await self.send(self.raw_topic, records)

    async def send_deadletters(self, letters: Sequence[DeadLetter]) -> None:
        """Write dead-letter records (JSON) to the dead-letter topic, all acknowledged."""
        records = [
            Record(
                key=letter.event_id.encode("utf-8") if letter.event_id else None,
                value=letter.model_dump_json().encode("utf-8"),
                headers=(("reason", letter.reason.encode("utf-8")),),
            )
            for letter in letters
        ]
        await self.send(self.deadletter_topic, records)

    async def send(self, topic: str, records: Sequence[Record]) -> None:
        """Write `records` to `topic` and await all acks, retrying failures per the policy.

        Raises `KafkaUnavailable` if not everything is acknowledged within the ack timeout.
        A record that failed and is sent again may reach Kafka twice; consumers dedupe on
        event_id (DESIGN.md, at-least-once).
        """
        if not records:
            return
        try:
            async with asyncio.timeout(self.ack_timeout_s):
                await self._send_with_retries(topic, records)
        except TimeoutError as exc:
            # Batches still queued in this producer would expire later and leave a gap.
            if self._producer is not None:
                self._retire(self._producer)
            raise self._unavailable(
                f"Kafka did not acknowledge {len(records)} records to {topic} within "
                f"{self.ack_timeout_s:g}s"
            ) from exc
        except (KafkaError, OSError) as exc:
            raise self._unavailable(f"Kafka refused records for {topic}: {exc!r}") from exc

    async def _send_with_retries(self, topic: str, records: Sequence[Record]) -> None:
        pending = list(records)
        attempt = 0
        while True:
            attempt += 1
            try:
                pending = await self._send_once(topic, pending)
                error: BaseException | None = None
            except (KafkaError, OSError) as exc:
                # Failing to connect or to enqueue is retried like a failed ack.
                error = exc
            if not pending:
                return
            if not self.retry.should_retry(attempt):
                raise error or KafkaError(f"{len(pending)} records not acknowledged")
            log.info(
                "retrying produce",
                extra={"topic": topic, "attempt": attempt, "pending": len(pending)},
            )
            await asyncio.sleep(self.retry.backoff_s(attempt))

    async def _send_once(self, topic: str, records: list[Record]) -> list[Record]:
        """Send once; returns the records that were not acknowledged."""
        producer = await self._ensure_started()
        futures: list[asyncio.Future[Any]] = []
        for rec in records:
            futures.append(
                await producer.send(topic, value=rec.value, key=rec.key, headers=list(rec.headers))
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [
            rec for rec, res in zip(records, results, strict=True) if isinstance(res, BaseException)
        ]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "records not acknowledged",
                extra={"topic": topic, "failed": len(failed), "error": repr(first)},
            )
            self._retire(producer)
        return failed

    def _unavailable(self, message: str) -> KafkaUnavailable:
        return KafkaUnavailable(message, retry_after_s=self.settings.collector_retry_after_s)

    # -- health -------------------------------------------------------------------------
    async def is_reachable(self, timeout_s: float = 3.0) -> bool:
        """Whether a broker answers a metadata request right now."""
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self._ensure_started()
                await producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError):
            return False
        return True
