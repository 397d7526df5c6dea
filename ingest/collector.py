"""The HTTP collector: players POST event batches, Kafka gets them, nothing is lost.

Routes:

- `POST /v1/events`: a JSON array or NDJSON of events (`application/json` or
  `application/x-ndjson`, optionally `Content-Encoding: gzip`).
  - 200 `{"accepted": n, "rejected": [{"index", "reason", "detail"}]}` once Kafka has
    acknowledged every accepted event *and* every rejected event's dead letter. A batch whose
    events were all rejected is still a 200 with `accepted: 0`: the batch was read, each event
    has its answer, and retrying it would not help (the rejections are in the dead-letter
    topic already).
  - 400 body empty, not JSON/NDJSON (with line/column/char of the failure), or bad gzip;
    408 body not received in time; 413 body, decompressed body or event count over the limit;
    415 other content type or encoding; 429 over the client's rate (Retry-After);
    503 Kafka did not acknowledge in time (Retry-After). Never a 2xx for an unacknowledged event.
- `POST /v1/cmcd`: CMCD v2 event mode (`application/cmcd`, one report per line), as hls.js,
  dash.js and Shaka send it; each report becomes contract events (`ingest.cmcd_events`).
  200 `{"accepted", "events", "duplicates", "ignored", "rejected"}` when at least one report
  was good (every bad line dead-lettered with its reason); 400 when none was; 413/415/429/503
  as above; 410 when CMCD intake is turned off (`collector_cmcd_enabled`), which tells a
  player to stop reporting to this target for the session.
- `GET /healthz`: 200 when a Kafka broker answers, else 503 (JSON either way).
- `GET /metrics`: Prometheus text.

Whole-body failures of `/v1/events` (400/413/415) are answered to the client and counted, not
dead-lettered: nothing in them could be attributed to an event, and copying junk bodies into
Kafka would let any client fill it. A refused CMCD body is dead-lettered by its head (at most
`max_event_bytes`): players drop a report answered 4xx, so the dead letter is its only trace.
Both routes are rate limited per client, which bounds what a client can put there.

Every event is enriched before validation (`ingest.enrichment`): facts a v2 event left out
are derived from the client address, the User-Agent and the CDN host map. The address is used
for that lookup only and is never logged or stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from contract.deadletter import BODY_TOO_LARGE, TOO_MANY_EVENTS, DeadLetter
from ingest.body import BodyTooLarge, InvalidGzip, gunzip_capped, read_capped
from ingest.cmcd_batch import CmcdBatch, decode_cmcd_body, translate_cmcd_body
from ingest.cmcd_events import CmcdIdentity, CmcdSessions, CmcdTranslator
from ingest.cmcd_turns import SessionTurns
from ingest.endpoints import CMCD_PATH as CMCD_PATH  # re-exported: clients import it here
from ingest.endpoints import EVENTS_PATH as EVENTS_PATH
from ingest.enrichment import ClientContext, Enricher, client_address
from ingest.metrics import CONTENT_TYPE, CollectorMetrics
from ingest.producer import EventProducer, KafkaUnavailable, Record
from ingest.ratelimit import TokenBucketLimiter
from ingest.validation import BatchError, BatchResult, IngestLimits, Rejection, validate_batch
from streamwatch.settings import Settings

log = logging.getLogger(__name__)

CMCD_CONTENT_TYPE = "application/cmcd"
_INTAKE_PATHS = frozenset({EVENTS_PATH, CMCD_PATH})
ACCEPTED_CONTENT_TYPES = frozenset(
    {"application/json", "application/x-ndjson", "application/ndjson"}
)
_GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
_SOURCE = "collector"
_HEADERS: tuple[tuple[str, bytes], ...] = (("source", _SOURCE.encode()),)
# Bodies up to this size are validated on the event loop; larger ones in a worker thread so
# health checks and small batches are not stuck behind a 5 MB batch.
_INLINE_VALIDATION_BYTES = 64 * 1024

SETTINGS_KEY = web.AppKey("settings", Settings)
PRODUCER_KEY = web.AppKey("producer", EventProducer)
METRICS_KEY = web.AppKey("metrics", CollectorMetrics)
LIMITER_KEY = web.AppKey("limiter", TokenBucketLimiter)
ENRICHER_KEY = web.AppKey("enricher", Enricher)
CMCD_SESSIONS_KEY = web.AppKey("cmcd_sessions", CmcdSessions)
CMCD_TURNS_KEY = web.AppKey("cmcd_turns", SessionTurns)
LOG_FIELDS_KEY = web.RequestKey("log_fields", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(settings: Settings, producer: EventProducer | None = None) -> web.Application:
    """The collector application; it owns `producer` (started and stopped with the app)."""
    app = web.Application(middlewares=[_observe, _rate_limit])
    app[SETTINGS_KEY] = settings
    app[PRODUCER_KEY] = producer or EventProducer(settings, source=_SOURCE)
    app[METRICS_KEY] = CollectorMetrics()
    app[LIMITER_KEY] = TokenBucketLimiter(
        settings.collector_rate_limit_rps, settings.collector_rate_limit_burst
    )
    app[ENRICHER_KEY] = Enricher(settings)
    app[CMCD_SESSIONS_KEY] = CmcdSessions(settings.cmcd_session_cache)
    app[CMCD_TURNS_KEY] = SessionTurns(app[CMCD_SESSIONS_KEY], settings.cmcd_reorder_wait_s)
    app.router.add_post(EVENTS_PATH, post_events)
    app.router.add_post(CMCD_PATH, post_cmcd)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/metrics", get_metrics)
    app.on_startup.append(_start_producer)
    app.on_cleanup.append(_stop_producer)
    return app


async def _start_producer(app: web.Application) -> None:
    # A collector that starts while Kafka is down stays up and answers 503 until it is back.
    await app[PRODUCER_KEY].start()


async def _stop_producer(app: web.Application) -> None:
    await app[PRODUCER_KEY].stop()
    app[ENRICHER_KEY].close()


# --- middlewares -------------------------------------------------------------------------


def client_key(request: web.Request, trusted_proxy_hops: int) -> str:
    """The client a request is charged to: its address, as seen by our outermost proxy.

    With N trusted proxies each appending to X-Forwarded-For, the Nth entry from the right is
    the address the outermost trusted proxy saw; entries further left are client-supplied
    and could be forged to dodge the rate limit.
    """
    address = client_address(
        request.remote, request.headers.get("X-Forwarded-For", ""), trusted_proxy_hops
    )
    return address or "unknown"


def client_context(request: web.Request, settings: Settings) -> ClientContext:
    """The request's client address (for the geo lookup only) and User-Agent."""
    return ClientContext(
        ip=client_address(
            request.remote,
            request.headers.get("X-Forwarded-For", ""),
            settings.collector_trusted_proxy_hops,
        ),
        user_agent=request.headers.get("User-Agent"),
    )


@web.middleware
async def _rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in _INTAKE_PATHS:
        return await handler(request)
    settings = request.app[SETTINGS_KEY]
    client = client_key(request, settings.collector_trusted_proxy_hops)
    wait_s = request.app[LIMITER_KEY].acquire(client)
    if wait_s is None:
        return await handler(request)
    retry_after = max(1, int(wait_s + 0.999))
    return _error(
        429,
        "rate_limited",
        f"more than {settings.collector_rate_limit_rps:g} requests/s from {client}; "
        f"retry after {retry_after}s",
        headers={"Retry-After": str(retry_after)},
    )


def _request_log_level(status: int) -> int:
    """The level of a request's log line by its answer."""
    if status >= 500:
        return logging.WARNING
    return logging.INFO if status >= 400 else logging.DEBUG


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, time and log every request (one JSON log line each)."""
    metrics = request.app[METRICS_KEY]
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        response = _error(500, "internal_error", "the collector failed; see its log")
    elapsed = time.perf_counter() - started
    route = (
        request.path
        if request.path in (EVENTS_PATH, CMCD_PATH, "/healthz", "/metrics")
        else "other"
    )
    metrics.requests.labels(route=route, status=str(response.status)).inc()
    if route in _INTAKE_PATHS:
        metrics.request_seconds.observe(elapsed)
        # One line per request would be megabytes an hour at a steady load: accepted batches
        # log at DEBUG (counted in /metrics), rejections at INFO, failures at WARNING.
        log.log(
            _request_log_level(response.status),
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 2),
                **request.get(LOG_FIELDS_KEY, {}),
            },
        )
    if isinstance(response, web.HTTPException):
        raise response
    return response


# --- POST /v1/events -----------------------------------------------------------------------


async def post_events(request: web.Request) -> web.StreamResponse:
    """Accept a batch of events; see the module docstring for every answer."""
    settings = request.app[SETTINGS_KEY]
    metrics = request.app[METRICS_KEY]
    limits = IngestLimits.from_settings(settings)
    deadline = asyncio.get_running_loop().time() + settings.collector_request_timeout_s

    refusal = _check_headers(request, limits)
    if refusal is not None:
        metrics.batches_rejected.labels(reason=refusal[1]).inc()
        return _error(*refusal)

    read = await _read_events_body(request, limits, deadline)
    if isinstance(read, web.StreamResponse):
        return read
    raw, body = read

    received_at = datetime.now(UTC)
    enricher, client = request.app[ENRICHER_KEY], client_context(request, settings)

    def prepare(obj: dict[str, Any]) -> None:
        enricher.enrich(obj, client)

    if len(body) <= _INLINE_VALIDATION_BYTES:
        outcome = validate_batch(body, limits, received_at, prepare)
    else:
        outcome = await asyncio.to_thread(validate_batch, body, limits, received_at, prepare)
    if isinstance(outcome, BatchError):
        metrics.batches_rejected.labels(reason=outcome.reason).inc()
        return _batch_error(outcome)

    request[LOG_FIELDS_KEY] = {
        "format": outcome.format,
        "accepted": len(outcome.accepted),
        "rejected": len(outcome.rejected),
        "bytes": len(raw),
    }
    unavailable = await _write_before(request, outcome, limits, deadline)
    if unavailable is not None:
        return unavailable

    metrics.events_accepted.inc(len(outcome.accepted))
    metrics.stage.batch(len(outcome.accepted) + len(outcome.rejected))
    metrics.stage.records(len(outcome.accepted))
    metrics.stage.records(len(outcome.rejected), outcome="deadletter")
    for rejection in outcome.rejected:
        metrics.events_rejected.labels(reason=rejection.reason).inc()
        metrics.stage.deadletter(rejection.reason)
    return web.json_response(
        {
            "accepted": len(outcome.accepted),
            "rejected": [
                {"index": r.index, "reason": r.reason, "detail": r.detail} for r in outcome.rejected
            ],
        }
    )


async def _read_events_body(
    request: web.Request, limits: IngestLimits, deadline: float
) -> tuple[bytes, bytes] | web.StreamResponse:
    """(raw, decoded) body of a POST /v1/events, or the answer refusing it."""
    settings, metrics = request.app[SETTINGS_KEY], request.app[METRICS_KEY]
    try:
        async with asyncio.timeout_at(deadline):
            raw = await read_capped(request.content.iter_chunked(64 * 1024), limits.max_batch_bytes)
    except BodyTooLarge as exc:
        metrics.batches_rejected.labels(reason=BODY_TOO_LARGE).inc()
        return _error(413, BODY_TOO_LARGE, str(exc))
    except TimeoutError:
        return _error(
            408,
            "request_timeout",
            f"body not received within {settings.collector_request_timeout_s:g}s",
        )
    metrics.received_bytes.inc(len(raw))
    if _encoding(request) not in _GZIP_ENCODINGS or not raw:
        return raw, raw
    try:
        return raw, gunzip_capped(raw, limits.max_batch_bytes)
    except BodyTooLarge as exc:
        metrics.batches_rejected.labels(reason=BODY_TOO_LARGE).inc()
        return _error(413, BODY_TOO_LARGE, str(exc))
    except InvalidGzip as exc:
        metrics.batches_rejected.labels(reason="invalid_gzip").inc()
        return _error(400, "invalid_gzip", str(exc))


def _batch_error(outcome: BatchError) -> web.Response:
    """The 4xx answer to a body that could not be split into events."""
    status = 413 if outcome.reason in (BODY_TOO_LARGE, TOO_MANY_EVENTS) else 400
    extra: dict[str, Any] = {}
    if outcome.position is not None:
        extra = {
            "line": outcome.position.line,
            "column": outcome.position.column,
            "char": outcome.position.char,
        }
    return _error(status, outcome.reason, outcome.detail, **extra)


def _check_headers(request: web.Request, limits: IngestLimits) -> tuple[int, str, str] | None:
    """A (status, reason, detail) refusal decided from the headers alone, or None."""
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        return (
            415,
            "unsupported_media_type",
            f"Content-Type {request.content_type!r} is not accepted; use application/json "
            "(a JSON array or object) or application/x-ndjson",
        )
    encoding = _encoding(request)
    if encoding not in _GZIP_ENCODINGS and encoding != "identity":
        return (
            415,
            "unsupported_content_encoding",
            f"Content-Encoding {encoding!r} is not accepted; use gzip or none",
        )
    if request.content_length is not None and request.content_length > limits.max_batch_bytes:
        return (
            413,
            BODY_TOO_LARGE,
            f"body is {request.content_length} bytes; the limit is {limits.max_batch_bytes}",
        )
    return None


def _encoding(request: web.Request) -> str:
    return request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"


async def _write_before(
    request: web.Request, outcome: BatchResult | CmcdBatch, limits: IngestLimits, deadline: float
) -> web.Response | None:
    """Write a body's outcome to Kafka by `deadline`; the 503 to answer when it could not be."""
    settings, metrics = request.app[SETTINGS_KEY], request.app[METRICS_KEY]
    try:
        async with asyncio.timeout_at(deadline):
            await _write(request.app[PRODUCER_KEY], metrics, outcome, limits)
    except KafkaUnavailable as exc:
        metrics.kafka_unavailable.inc()
        metrics.stage.error("kafka_unavailable")
        log.warning("kafka unavailable", extra={"error": str(exc)})
        return _unavailable(str(exc), exc.retry_after_s)
    except TimeoutError:
        metrics.kafka_unavailable.inc()
        metrics.stage.error("request_timeout")
        return _unavailable(
            f"request not completed within {settings.collector_request_timeout_s:g}s",
            settings.collector_retry_after_s,
        )
    return None


async def _write(
    producer: EventProducer,
    metrics: CollectorMetrics,
    outcome: BatchResult | CmcdBatch,
    limits: IngestLimits,
) -> None:
    """Produce the accepted events and the dead letters; return only when all are acked."""
    records = [Record(a.key, a.value, _HEADERS) for a in outcome.accepted]
    letters = [_dead_letter(r, limits) for r in outcome.rejected]
    started = time.perf_counter()
    results = await asyncio.gather(
        producer.send_events(records), producer.send_deadletters(letters), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    metrics.produce_seconds.observe(time.perf_counter() - started)
    metrics.stage.observe("produce", time.perf_counter() - started)


def _dead_letter(rejection: Rejection, limits: IngestLimits) -> DeadLetter:
    original = rejection.original
    detail = rejection.detail
    if len(original) > limits.max_event_bytes:
        # An oversized event would make an oversized Kafka record; its head is enough to
        # see what it was, and the detail says how much was cut.
        detail = f"{detail} (original truncated to its first {limits.max_event_bytes} bytes)"
        original = original[: limits.max_event_bytes]
    return DeadLetter.of(
        original, rejection.reason, _SOURCE, detail=detail, event_id=rejection.event_id
    )


# --- POST /v1/cmcd --------------------------------------------------------------------------


def _cmcd_refusal(request: web.Request) -> tuple[int, str, str] | None:
    """Why the headers of a POST /v1/cmcd are refused (status, reason, detail), if they are."""
    if request.content_type != CMCD_CONTENT_TYPE:
        return (
            415,
            "unsupported_media_type",
            f"Content-Type {request.content_type!r} is not accepted on {CMCD_PATH}; "
            f"CMCD event reports are {CMCD_CONTENT_TYPE}, one report per line",
        )
    if _encoding(request) != "identity":
        return (415, "unsupported_content_encoding", "CMCD reports are sent uncompressed")
    return None


async def post_cmcd(request: web.Request) -> web.StreamResponse:
    """CMCD v2 event mode: one report per line; see the module docstring for every answer."""
    settings = request.app[SETTINGS_KEY]
    metrics = request.app[METRICS_KEY]
    limits = IngestLimits.from_settings(settings)
    deadline = asyncio.get_running_loop().time() + settings.collector_request_timeout_s
    if not settings.collector_cmcd_enabled:
        return _error(410, "cmcd_disabled", "CMCD reporting is turned off on this collector")

    refusal = _cmcd_refusal(request)
    try:
        async with asyncio.timeout_at(deadline):
            # A refused body is read only as far as its dead letter keeps.
            cap = limits.max_batch_bytes if refusal is None else limits.max_event_bytes
            raw = await read_capped(request.content.iter_chunked(64 * 1024), cap)
    except BodyTooLarge as exc:
        raw = exc.head
        refusal = refusal or (413, BODY_TOO_LARGE, str(exc))
    except TimeoutError:
        timeout = settings.collector_request_timeout_s
        return _error(408, "request_timeout", f"body not received within {timeout:g}s")
    metrics.received_bytes.inc(len(raw))
    if refusal is not None:
        return await _refuse_cmcd(request, limits, raw, *refusal)

    inline = len(raw) <= _INLINE_VALIDATION_BYTES
    args = (raw, limits, settings.cmcd_max_reports)
    decoded = (
        decode_cmcd_body(*args) if inline else await asyncio.to_thread(decode_cmcd_body, *args)
    )
    if isinstance(decoded, BatchError):
        return await _refuse_cmcd_body(request, limits, raw, decoded)
    # From translation to commit the body holds its sessions' turns (`ingest.cmcd_turns`).
    sessions = request.app[CMCD_SESSIONS_KEY]
    async with request.app[CMCD_TURNS_KEY].turn(decoded.sessions()):
        translator = CmcdTranslator(sessions, _cmcd_identity(settings))
        enricher, client = request.app[ENRICHER_KEY], client_context(request, settings)

        def prepare(obj: dict[str, Any]) -> None:
            enricher.enrich(obj, client)

        steps = (decoded, limits, datetime.now(UTC), translator, prepare)
        if inline:
            outcome = translate_cmcd_body(*steps)
        else:
            outcome = await asyncio.to_thread(translate_cmcd_body, *steps)
        if isinstance(outcome, BatchError):
            return await _refuse_cmcd_body(request, limits, raw, outcome)

        request[LOG_FIELDS_KEY] = {
            "format": "cmcd",
            "reports": outcome.reports,
            "accepted": len(outcome.accepted),
            "rejected": len(outcome.rejected),
            "bytes": len(raw),
        }
        unavailable = await _write_before(request, outcome, limits, deadline)
        if unavailable is not None:
            return unavailable
        # Only now, with the events in Kafka, does the collector remember what the body taught.
        sessions.commit(translator.updates)
    metrics.events_accepted.inc(len(outcome.accepted))
    for rejection in outcome.rejected:
        metrics.events_rejected.labels(reason=rejection.reason).inc()
    answer: dict[str, Any] = {
        "accepted": outcome.reports_accepted,
        "events": len(outcome.accepted),
        "duplicates": outcome.duplicates,
        "ignored": outcome.ignored,
        "rejected": [
            {"index": r.index, "reason": r.reason, "detail": r.detail} for r in outcome.rejected
        ],
    }
    if outcome.rejected and outcome.reports_accepted == 0:
        # Not one report was usable: a 4xx says so (the lines are dead-lettered already).
        first = outcome.rejected[0]
        return web.json_response(
            {"error": first.reason, "detail": first.detail, **answer}, status=400
        )
    return web.json_response(answer)


async def _refuse_cmcd_body(
    request: web.Request, limits: IngestLimits, raw: bytes, error: BatchError
) -> web.Response:
    status = 413 if error.reason in (BODY_TOO_LARGE, TOO_MANY_EVENTS) else 400
    return await _refuse_cmcd(request, limits, raw, status, error.reason, error.detail)


async def _refuse_cmcd(
    request: web.Request, limits: IngestLimits, head: bytes, status: int, reason: str, detail: str
) -> web.Response:
    """Answer a refused CMCD body, after its head is in the dead-letter topic."""
    metrics = request.app[METRICS_KEY]
    metrics.batches_rejected.labels(reason=reason).inc()
    letter = _dead_letter(Rejection(-1, reason, detail, head), limits)
    try:
        await request.app[PRODUCER_KEY].send_deadletters([letter])
    except KafkaUnavailable as exc:
        metrics.kafka_unavailable.inc()
        return _unavailable(str(exc), exc.retry_after_s)
    return _error(status, reason, detail)


def _cmcd_identity(settings: Settings) -> CmcdIdentity:
    return CmcdIdentity(
        member_key=settings.cmcd_member_key,
        profile_key=settings.cmcd_profile_key,
        device_key=settings.cmcd_device_key,
        dimensions=tuple(settings.custom_dimensions),
    )


# --- GET /healthz, GET /metrics --------------------------------------------------------------


async def get_healthz(request: web.Request) -> web.Response:
    """200 when a Kafka broker answers a metadata request, 503 otherwise."""
    settings = request.app[SETTINGS_KEY]
    reachable = await request.app[PRODUCER_KEY].is_reachable()
    body = {
        "status": "ok" if reachable else "unavailable",
        "kafka": {"reachable": reachable, "bootstrap_servers": settings.bootstrap_servers},
    }
    return web.json_response(body, status=200 if reachable else 503)


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    payload = request.app[METRICS_KEY].render()
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


# --- answers -------------------------------------------------------------------------------


def _error(
    status: int,
    reason: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> web.Response:
    return web.json_response(
        {"error": reason, "detail": detail, **fields}, status=status, headers=headers
    )


def _unavailable(detail: str, retry_after_s: int) -> web.Response:
    return _error(503, "kafka_unavailable", detail, headers={"Retry-After": str(retry_after_s)})


# --- running -----------------------------------------------------------------------------

# aiohttp would otherwise decompress gzip bodies itself before the handler sees them; the
# collector decompresses on its own, with its own cap and its own 413, whatever aiohttp does.
RUNNER_KWARGS: dict[str, Any] = {"auto_decompress": False, "access_log": None}


@asynccontextmanager
async def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 0,
    producer: EventProducer | None = None,
) -> AsyncIterator[str]:
    """Run a collector on host:port (0 = any free port) inside a `with`; yields its base URL."""
    runner = web.AppRunner(create_app(settings, producer), **RUNNER_KWARGS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host  # IPv6 literal
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()


def run_collector(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the collector until interrupted (blocking)."""
    from ingest.logs import configure_json_logging

    configure_json_logging()
    host = host or settings.collector_host
    port = port or settings.collector_port
    log.info("collector starting", extra={"host": host, "port": port})
    web.run_app(create_app(settings), host=host, port=port, print=None, **RUNNER_KWARGS)
