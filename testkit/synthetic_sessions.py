"""Hand-built events for unit tests and benchmarks of the streams box.

Not a simulator (that is `platform_stub/`): just the shortest way to write a valid `Event`
and a plausible session as a list of events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from contract.events import EVENT_ADAPTER, Event

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

DEFAULT_ENVELOPE: dict[str, Any] = {
    "member_id": "m-1",
    "profile_id": "p-1",
    "title_id": "t-1",
    "device": {
        "device_id": "d-1",
        "device_type": "tv",
        "device_model": "TV-X",
        "os": "tizen",
        "app_version": "1.0.0",
    },
    "network": {
        "country": "US",
        "region": "us-east",
        "isp": "isp-a",
        "asn": 64500,
        "oca_id": "oca-1",
        "cdn_tier": "edge",
        "connection_type": "wifi",
    },
}


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def event(
    event_type: str,
    t: datetime,
    session_id: str = "s-1",
    payload: dict[str, Any] | None = None,
    event_id: str | None = None,
    **envelope: Any,
) -> Event:
    """One valid event; `envelope` overrides DEFAULT_ENVELOPE keys (device/network merge)."""
    env = {**DEFAULT_ENVELOPE}
    for k, v in envelope.items():
        env[k] = {**env[k], **v} if isinstance(v, dict) and isinstance(env.get(k), dict) else v
    doc = {
        **env,
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "event_time": t.isoformat(),
        "session_id": session_id,
        "payload": {"event_type": event_type, **(payload or {})},
    }
    return EVENT_ADAPTER.validate_python(doc)


def normal_session(
    session_id: str = "s-1",
    start_s: float = 0.0,
    startup_ms: int = 1_500,
    watch_s: int = 120,
    bitrate_kbps: int = 5_000,
    heartbeat_s: int = 10,
    rebuffers: tuple[tuple[float, int], ...] = (),
    **envelope: Any,
) -> list[Event]:
    """A session that starts, watches `watch_s` seconds (plus rebuffers) and ends.

    `rebuffers` are (seconds after first frame, duration ms); a rebuffer pauses the
    content clock, so the session's wall time is watch time plus rebuffer time.
    """
    ev: list[Event] = []
    t = start_s
    ev.append(event("play_requested", at(t), session_id, **envelope))
    ev.append(event("manifest_loaded", at(t + 0.3), session_id, {"latency_ms": 300}, **envelope))
    ev.append(event("license_acquired", at(t + 0.6), session_id, {"latency_ms": 300}, **envelope))
    ff = t + startup_ms / 1000
    ev.append(
        event(
            "first_frame",
            at(ff),
            session_id,
            {"startup_ms": startup_ms, "bitrate_kbps": bitrate_kbps},
            **envelope,
        )
    )
    stall_total = 0.0
    pending = sorted(rebuffers)
    for k in range(1, watch_s // heartbeat_s + 1):
        content = k * heartbeat_s
        while pending and pending[0][0] < content:
            at_s, dur = pending.pop(0)
            start = ff + at_s + stall_total
            ev.append(event("rebuffer_start", at(start), session_id, **envelope))
            stall_total += dur / 1000
            ev.append(
                event(
                    "rebuffer_end",
                    at(start + dur / 1000),
                    session_id,
                    {"duration_ms": dur},
                    **envelope,
                )
            )
        ev.append(
            event(
                "heartbeat",
                at(ff + content + stall_total),
                session_id,
                {"bitrate_kbps": bitrate_kbps, "buffer_ms": 20_000, "throughput_kbps": 20_000},
                **envelope,
            )
        )
    ev.append(
        event(
            "playback_end",
            at(ff + watch_s + stall_total),
            session_id,
            {"watched_ms": watch_s * 1000, "exit_reason": "user_exit"},
            **envelope,
        )
    )
    return ev
