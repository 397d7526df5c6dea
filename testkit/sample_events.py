"""Example events, one valid payload per event type: for docs, tests and benchmarks.

These are wire-format dicts (what a player sends), not models, so callers can break them on
purpose to exercise validation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contract.events import EVENT_TYPES

_PAYLOADS: dict[str, dict[str, Any]] = {
    "play_requested": {"autoplay": False, "resume_position_ms": 0},
    "manifest_loaded": {"latency_ms": 180, "renditions": 8},
    "license_acquired": {"latency_ms": 95, "drm": "widevine"},
    "first_frame": {"startup_ms": 1450, "bitrate_kbps": 3000},
    "heartbeat": {
        "bitrate_kbps": 5800,
        "buffer_ms": 24000,
        "throughput_kbps": 21000,
        "dropped_frames": 0,
        "position_ms": 60000,
        "playing": True,
    },
    "bitrate_change": {"from_kbps": 3000, "to_kbps": 5800},
    "rebuffer_start": {"position_ms": 120000},
    "rebuffer_end": {"duration_ms": 850},
    "pause": {"position_ms": 300000},
    "resume": {"paused_ms": 4000},
    "seek": {"from_ms": 300000, "to_ms": 900000},
    "error": {
        "code": "CDN-3002",
        "category": "cdn",
        "severity": "warning",
        "http_status": 503,
        "message": "segment 5xx from OCA",
    },
    "playback_end": {"watched_ms": 2_400_000, "exit_reason": "completed"},
}
assert set(_PAYLOADS) == set(EVENT_TYPES), "every event type needs a sample payload"


def sample_event(
    event_type: str = "heartbeat",
    *,
    session_id: str | None = None,
    event_time: datetime | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid wire-format event of `event_type` with a fresh event_id; `overrides` win."""
    when = event_time or datetime.now(UTC)
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "event_time": when.isoformat().replace("+00:00", "Z"),
        "member_id": "m-0001",
        "profile_id": "p-0001",
        "session_id": session_id or f"s-{uuid.uuid4().hex[:12]}",
        "title_id": "t-80100172",
        "device": {
            "device_id": "d-0001",
            "device_type": "tv",
            "device_model": "SmartTV 55X",
            "os": "tizen 7",
            "app_version": "9.4.1",
        },
        "network": {
            "country": "NL",
            "region": "NH",
            "isp": "ExampleNet",
            "asn": 64500,
            "oca_id": "oca-ams-014",
            "cdn_tier": "edge",
            "connection_type": "wifi",
        },
        "payload": dict(_PAYLOADS[event_type]),
    }
    event.update(overrides)
    return event


def sample_events(n: int, *, sessions: int = 10) -> list[dict[str, Any]]:
    """`n` valid events cycling through every event type over `sessions` sessions."""
    session_ids = [f"s-{uuid.uuid4().hex[:12]}" for _ in range(max(sessions, 1))]
    return [
        sample_event(
            EVENT_TYPES[i % len(EVENT_TYPES)], session_id=session_ids[i % len(session_ids)]
        )
        for i in range(n)
    ]
