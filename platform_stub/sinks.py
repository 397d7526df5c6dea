"""Where generated events go: an NDJSON file, Kafka (direct produce) or the HTTP collector.

A sink takes batches of JSON lines with their keys and reports, through `delivered`, the
lines that the destination has durably accepted (Kafka: acknowledged with acks=all;
collector: answered 2xx and not listed as rejected). The runner's ledger records exactly
those, so reconciliation compares against what was really produced.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from streamwatch.errors import StreamwatchError
from streamwatch.key_partition import murmur2
from streamwatch.service_metrics import StageMetrics

Delivered = Callable[[list[str]], None]


class SinkError(StreamwatchError):
    """A destination refused events for good (not a retryable condition)."""


class Sink(Protocol):
    """What the runner needs from a destination."""

    async def start(self) -> None:
        """Connect."""

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """Hand over one batch (may return before it is acknowledged)."""

    async def flush(self) -> None:
        """Wait until everything handed over is acknowledged (or failed)."""

    async def stop(self) -> None:
        """Flush and disconnect."""


class FileSink:
    """NDJSON lines to a file (offline use, tests, replays)."""

    def __init__(self, path: Path, delivered: Delivered) -> None:
        self.path = path
        self._delivered = delivered
        self._fh: Any = None

    async def start(self) -> None:
        """Open the file (truncating it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8", newline="\n")

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """Append lines."""
        self._fh.write("\n".join(lines))
        self._fh.write("\n")
        self._delivered(lines)

    async def flush(self) -> None:
        """Flush the OS buffer."""
        if self._fh is not None:
            self._fh.flush()

    async def stop(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class NullSink:
    """Discards events (measures generation alone)."""

    def __init__(self, delivered: Delivered) -> None:
        self._delivered = delivered

    async def start(self) -> None:
        """Nothing to connect."""

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """Count as delivered."""
        self._delivered(lines)

    async def flush(self) -> None:
        """Nothing pending."""

    async def stop(self) -> None:
        """Nothing to close."""


class KafkaSink:
    """Direct produce to the raw topic: idempotent, acks=all, key = session id.

    Events are grouped per partition into record batches (`create_batch`/`send_batch`)
    instead of one `send` per event: the per-message path of aiokafka costs tens of
    microseconds and would cap the stub far below what the broker takes. Partitions follow
    Kafka's default murmur2 key hashing, so the collector's per-message produce and this
    path put a session on the same partition.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        delivered: Delivered,
        *,
        linger_ms: int = 20,
        max_batch_bytes: int = 1_000_000,
        max_in_flight_batches: int = 64,
        compression_type: str | None = None,
        producers: int = 1,
    ) -> None:
        self.topic = topic
        self._delivered = delivered
        # aiokafka keeps one request in flight per broker connection; more producers, each
        # owning a share of the partitions, allow more (on a busy 2-CPU box it measured no
        # clear gain, hence 1). Each is idempotent on its own partitions: per-key order holds.
        self._producers = [
            AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=linger_ms,
                max_batch_size=max_batch_bytes,
                max_request_size=max_batch_bytes + 65_536,
                compression_type=compression_type,
                request_timeout_ms=60_000,
            )
            for _ in range(max(1, producers))
        ]
        self._partitions: list[int] = []
        self._partition_of: dict[str, tuple[int, bytes]] = {}
        self._pending: list[tuple[asyncio.Future[Any], list[str]]] = []
        self._max_in_flight = max_in_flight_batches

    async def start(self) -> None:
        """Connect and learn the topic's partitions."""
        for producer in self._producers:
            await producer.start()
        self._partitions = sorted(await self._producers[0].partitions_for(self.topic))
        if not self._partitions:
            raise SinkError(f"topic {self.topic!r} has no partitions (run `topics create`)")

    def _partition(self, key: str) -> tuple[int, bytes]:
        """The key's partition and its bytes."""
        known = self._partition_of.get(key)
        if known is None:
            # Same arithmetic as Kafka's DefaultPartitioner; cached because a session's many
            # events share one key and the pure-Python hash is slow.
            raw = key.encode()
            idx = (murmur2(raw) & 0x7FFFFFFF) % len(self._partitions)
            if len(self._partition_of) > 500_000:
                self._partition_of.clear()
            known = self._partition_of[key] = (self._partitions[idx], raw)
        return known

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """Queue one batch per partition; returns once queued (not yet acknowledged)."""
        groups: dict[int, tuple[list[str], list[bytes]]] = {}
        known = self._partition_of
        for line, key in zip(lines, keys, strict=True):
            # The cache hit inline: this loop runs once per event.
            partition, raw = known.get(key) or self._partition(key)
            group = groups.get(partition)
            if group is None:
                group = groups[partition] = ([], [])
            group[0].append(line)
            group[1].append(raw)
        # Queue on every producer before waiting on any: a producer blocked on its previous
        # batch must not hold back the others.
        await asyncio.gather(
            *(self._send_partition(p, ls, ks) for p, (ls, ks) in sorted(groups.items()))
        )
        self._reap()
        while len(self._pending) > self._max_in_flight:
            # Backpressure: never queue unboundedly ahead of the broker's acknowledgements.
            await asyncio.wait([f for f, _ in self._pending], return_when=asyncio.FIRST_COMPLETED)
            self._reap()

    async def _send_partition(self, partition: int, lines: list[str], keys: list[bytes]) -> None:
        producer = self._producers[partition % len(self._producers)]
        batch = producer.create_batch()
        in_batch: list[str] = []
        for line, key in zip(lines, keys, strict=True):
            value = line.encode()
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                future = await producer.send_batch(batch, self.topic, partition=partition)
                self._pending.append((future, in_batch))
                batch = producer.create_batch()
                in_batch = []
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise SinkError(f"event larger than the producer batch: {len(value)} bytes")
            in_batch.append(line)
        if in_batch:
            batch.close()
            future = await producer.send_batch(batch, self.topic, partition=partition)
            self._pending.append((future, in_batch))

    def _reap(self) -> None:
        still: list[tuple[asyncio.Future[Any], list[str]]] = []
        for future, lines in self._pending:
            if not future.done():
                still.append((future, lines))
                continue
            exc = future.exception()
            if exc is not None:
                raise SinkError(f"Kafka did not accept a batch: {exc!r}") from exc
            self._delivered(lines)
        self._pending = still

    async def flush(self) -> None:
        """Wait for every queued batch to be acknowledged."""
        if self._pending:
            await asyncio.wait([f for f, _ in self._pending])
        self._reap()

    async def stop(self) -> None:
        """Flush and close the producer."""
        try:
            await self.flush()
        finally:
            for producer in self._producers:
                await producer.stop()


class HttpSink:
    """POST batches to the collector as gzip NDJSON; honours 429/503 Retry-After.

    A 2xx answer lists rejected events by index (a partly bad batch; the collector has
    dead-lettered them); those are not in the ledger. Retryable answers (429, 5xx,
    connection errors) are retried with backoff and the server's Retry-After; other 4xx
    answers stop the run, since resending cannot help.
    """

    def __init__(
        self,
        url: str,
        delivered: Delivered,
        *,
        max_attempts: int = 20,
        backoff_s: float = 0.2,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
        gzip_level: int = 1,
    ) -> None:
        self.url = url
        self._delivered = delivered
        self._max_attempts = max_attempts
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._timeout = timeout_s
        self._gzip_level = gzip_level
        self._session: Any = None
        self.retries = 0
        self.rejected = 0

    async def start(self) -> None:
        """Open the HTTP session."""
        import aiohttp

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
                "User-Agent": "streamwatch-platform-stub",
            },
        )

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """POST one batch, retrying until accepted; returns when it is acknowledged."""
        import aiohttp

        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=self._gzip_level)
        delay = self._backoff
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with self._session.post(self.url, data=body) as response:
                    text = await response.text()
                    if 200 <= response.status < 300:
                        self._accepted(lines, text)
                        return
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    if response.status != 429 and response.status < 500:
                        raise SinkError(
                            f"collector refused a batch: HTTP {response.status}: {text[:300]}"
                        )
            except (TimeoutError, aiohttp.ClientError) as exc:
                retry_after = None
                if attempt == self._max_attempts:
                    raise SinkError(f"collector unreachable at {self.url}: {exc!r}") from exc
            self.retries += 1
            await asyncio.sleep(retry_after if retry_after is not None else delay)
            delay = min(self._max_backoff, delay * 2)
        raise SinkError(f"collector kept refusing after {self._max_attempts} attempts")

    def _accepted(self, lines: list[str], text: str) -> None:
        rejected = _rejected_indexes(text, len(lines))
        if rejected:
            self.rejected += len(rejected)
            lines = [line for i, line in enumerate(lines) if i not in rejected]
        self._delivered(lines)

    async def flush(self) -> None:
        """`send` already waits for each answer."""

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


def _rejected_indexes(text: str, count: int) -> set[int]:
    """Positions the collector's answer lists as rejected: `{"rejected": [{"index": i}]}`."""
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        return set()
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return set()
    return {
        item["index"]
        for item in rejected
        if isinstance(item, dict)
        and isinstance(item.get("index"), int)
        and 0 <= item["index"] < count
    }


class MeteredSink:
    """A sink wrapped with the service metrics (`streamwatch.service_metrics`, stage "stub").

    Throughput counts what the destination acknowledged (the `delivered` callback), so the
    stub's series are comparable with the collector's and the sinks'.
    """

    def __init__(self, inner: Sink, metrics: StageMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    @staticmethod
    def counting(delivered: Delivered, metrics: StageMetrics) -> Delivered:
        """`delivered`, also counting each acknowledged batch."""

        def count(lines: list[str]) -> None:
            metrics.records(len(lines))
            delivered(lines)

        return count

    async def start(self) -> None:
        """Connect."""
        await self.inner.start()
        self.metrics.up(True)

    async def send(self, lines: list[str], keys: list[str]) -> None:
        """Hand over one batch, timing it and counting failures by exception type."""
        self.metrics.batch(len(lines))
        try:
            with self.metrics.time("send"):
                await self.inner.send(lines, keys)
        except Exception as exc:
            self.metrics.error(type(exc).__name__)
            raise

    async def flush(self) -> None:
        """Wait for the acknowledgements."""
        with self.metrics.time("flush"):
            await self.inner.flush()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self.inner.stop()
        self.metrics.up(False)
