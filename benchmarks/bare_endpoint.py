"""The reference for the collector benchmark: a bare aiohttp endpoint writing to Kafka.

It takes the same requests as the collector (`POST /v1/events`, `POST /v1/cmcd`), does no
parsing, validation or enrichment, and produces every non-blank line of the body to the raw
topic as one record (acks=all, idempotent, the collector's linger), answering 200 once all
are acknowledged. The collector's rate over this one's is what its work costs.

    python -m benchmarks.bare_endpoint --port P   (topic from the STREAMWATCH_ settings)
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web
from aiokafka import AIOKafkaProducer

from streamwatch import topics
from streamwatch.settings import Settings

PRODUCER_KEY = web.AppKey("producer", AIOKafkaProducer)


async def _post(request: web.Request) -> web.Response:
    body = await request.read()
    producer = request.app[PRODUCER_KEY]
    topic = request.app["topic"]
    futures = [await producer.send(topic, value=line) for line in body.split(b"\n") if line.strip()]
    await asyncio.gather(*futures)
    return web.json_response({"accepted": len(futures), "events": len(futures)})


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(settings: Settings) -> web.Application:
    """The bare endpoint, producing to `settings`' raw topic."""
    app = web.Application()
    app["topic"] = settings.topic(topics.RAW)

    async def start(app: web.Application) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.collector_linger_ms,
        )
        await producer.start()
        app[PRODUCER_KEY] = producer

    async def stop(app: web.Application) -> None:
        await app[PRODUCER_KEY].stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/events", _post)
    app.router.add_post("/v1/cmcd", _post)
    app.router.add_get("/healthz", _healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(Settings()), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
