"""Synthetic, contract-valid Event JSON for the indexers' tests and benchmarks.

Not a simulator (that is `platform_stub/`): just fast, deterministic documents with realistic
keyword cardinalities, so sink tests do not depend on other packages' progress.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

ISPS = ("Comcast", "Verizon", "AT&T", "Spectrum", "Cox", "BT", "Orange", "Telekom")
REGIONS = ("us-east", "us-west", "eu-west", "eu-central")
DEVICE_MODELS = ("SmartTV-X1", "Streamer-4K", "Phone-12", "Tablet-9", "Console-5", "Browser")
DEVICE_TYPES = {"SmartTV-X1": "tv", "Streamer-4K": "tv", "Phone-12": "mobile",
                "Tablet-9": "mobile", "Console-5": "console", "Browser": "web"}  # fmt: skip
ERROR_CODES = (
    ("NW-1001", "network", "Network connection lost"),
    ("CDN-2002", "cdn", "Edge cache returned HTTP 503"),
    ("DRM-3003", "drm", "License request failed"),
    ("DEC-4004", "decoder", "Decoder could not render frame"),
)
EVENT_TYPES = ("play_requested", "first_frame", "heartbeat", "rebuffer_end", "error")


def _payload(event_type: str, rng: random.Random) -> dict[str, Any]:
    if event_type == "first_frame":
        return {"startup_ms": rng.randint(300, 6000), "bitrate_kbps": rng.choice((1500, 3000))}
    if event_type == "heartbeat":
        return {
            "bitrate_kbps": rng.choice((800, 1500, 3000, 6000)),
            "buffer_ms": rng.randint(0, 30000),
            "throughput_kbps": rng.randint(500, 50000),
            "dropped_frames": rng.randint(0, 3),
            "position_ms": rng.randint(0, 3_600_000),
        }
    if event_type == "rebuffer_end":
        return {"duration_ms": rng.randint(100, 8000)}
    if event_type == "error":
        code, category, message = rng.choice(ERROR_CODES)
        return {
            "code": code,
            "category": category,
            "severity": rng.choice(("fatal", "warning")),
            "http_status": 503 if category == "cdn" else None,
            "message": message,
        }
    return {"autoplay": False}


def make_event(
    rng: random.Random,
    event_time: datetime,
    member: int,
    event_type: str | None = None,
) -> dict[str, Any]:
    """One Event as a JSON-ready dict (valid against `contract.events.Event`)."""
    etype = event_type or rng.choice(EVENT_TYPES)
    model = DEVICE_MODELS[member % len(DEVICE_MODELS)]
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": etype,
        "schema_version": 1,
        "event_time": event_time.isoformat(),
        "received_at": event_time.isoformat(),
        "member_id": f"m-{member:07d}",
        "profile_id": f"p-{member:07d}-1",
        "session_id": f"s-{member:07d}-{rng.randint(0, 20)}",
        "title_id": f"t-{rng.randint(1, 500)}",
        "device": {
            "device_id": f"d-{member:07d}",
            "device_type": DEVICE_TYPES[model],
            "device_model": model,
            "os": "os-1",
            "app_version": rng.choice(("7.1.0", "7.2.0")),
        },
        "network": {
            "country": "US",
            "region": REGIONS[member % len(REGIONS)],
            "isp": ISPS[member % len(ISPS)],
            "asn": 7922 + member % len(ISPS),
            "oca_id": f"oca-{member % 40:02d}",
            "cdn_tier": "edge",
            "connection_type": "wifi",
        },
        "payload": {"event_type": etype, **_payload(etype, rng)},
    }


def events(
    count: int,
    seed: int = 1,
    members: int = 1000,
    end: datetime | None = None,
    span: timedelta = timedelta(hours=6),
) -> Iterator[dict[str, Any]]:
    """`count` events spread over `span` before `end`, across `members` members."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    step = span / max(1, count)
    start = end - span
    for i in range(count):
        yield make_event(rng, start + step * i, rng.randrange(members))
