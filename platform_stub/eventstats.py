"""Session summaries and QoE metrics computed from events alone.

An independent reading of the stub's output: it sees only the event stream (never the
player's state), so comparing it with `truth.jsonl` checks the events say what the truth
says, and the realism tests use it to measure the metrics of DESIGN.md. This is a reference
for checking, not the stream processor's sessionizer.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def event_ms(event: dict[str, Any]) -> int:
    """An event's event_time as epoch ms."""
    return int(
        datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp() * 1000
    )


@dataclass
class SessionStats:
    """What the events of one session say."""

    session_id: str
    dims: dict[str, str] = field(default_factory=dict)
    started_ms: int = 0
    ended_ms: int | None = None  # time of playback_end
    first_frame: bool = False
    startup_ms: int | None = None
    fatal_before_start: bool = False
    fatal_after_start: bool = False
    ended: bool = False
    exit_reason: str | None = None
    watch_ms: int = 0
    rebuffer_count: int = 0
    rebuffer_ms: int = 0
    upshifts: int = 0
    downshifts: int = 0
    error_codes: list[str] = field(default_factory=list)
    final_oca_id: str = ""

    @property
    def exit_before_start(self) -> bool:
        """EBVS: play requested, no first frame, no fatal error."""
        return self.ended and not self.first_frame and not self.fatal_before_start

    @property
    def ended_in_fatal(self) -> bool:
        """Playback failure: the session ended in a fatal error."""
        return self.fatal_before_start or self.fatal_after_start


def _dims(event: dict[str, Any]) -> dict[str, str]:
    device, network = event["device"], event["network"]
    return {
        "title_id": event["title_id"],
        "member_id": event["member_id"],
        "device.device_type": device["device_type"],
        "device.os": device["os"],
        "device.app_version": device["app_version"],
        "network.region": network["region"],
        "network.country": network["country"],
        "network.isp": network["isp"],
        "network.oca_id": network["oca_id"],
        "network.cdn_tier": network["cdn_tier"],
        "network.connection_type": network["connection_type"],
    }


def sessionize(events: Iterable[dict[str, Any]]) -> dict[str, SessionStats]:
    """Fold events (any order within the stream, time order within a session) by session."""
    sessions: dict[str, SessionStats] = {}
    for event in events:
        sid = event["session_id"]
        s = sessions.get(sid)
        if s is None:
            s = sessions[sid] = SessionStats(sid)
        _fold(s, event)
    return sessions


def _fold(s: SessionStats, event: dict[str, Any]) -> None:
    """Add one event of the session to its stats."""
    kind = event["event_type"]
    payload = event["payload"]
    s.final_oca_id = event["network"]["oca_id"]
    if kind == "play_requested":
        s.dims = _dims(event)
        s.started_ms = event_ms(event)
    elif kind == "first_frame":
        s.first_frame = True
        s.startup_ms = payload["startup_ms"]
    elif kind == "rebuffer_start":
        s.rebuffer_count += 1
    elif kind == "rebuffer_end":
        s.rebuffer_ms += payload["duration_ms"]
    elif kind == "bitrate_change":
        if payload["to_kbps"] > payload["from_kbps"]:
            s.upshifts += 1
        else:
            s.downshifts += 1
    elif kind == "error":
        s.error_codes.append(payload["code"])
        if payload["severity"] == "fatal":
            if s.first_frame:
                s.fatal_after_start = True
            else:
                s.fatal_before_start = True
    elif kind == "playback_end":
        s.ended = True
        s.ended_ms = event_ms(event)
        s.exit_reason = payload["exit_reason"]
        s.watch_ms = payload["watched_ms"]


def read_ndjson(path: str) -> list[dict[str, Any]]:
    """Parse an NDJSON events file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True)
class QoE:
    """The DESIGN.md metrics over a set of sessions (percentages in 0..100)."""

    sessions: int
    startup_p50_ms: float | None
    startup_p95_ms: float | None
    start_failure_pct: float
    exit_before_start_pct: float
    playback_failure_pct: float
    rebuffer_pct: float
    rebuffers_per_minute: float


def qoe(sessions: Iterable[SessionStats]) -> QoE:
    """Aggregate metrics; rebuffer % = rebuffer time / (watch time + rebuffer time)."""
    items = [s for s in sessions if s.ended]
    n = len(items)
    startups = sorted(s.startup_ms for s in items if s.startup_ms is not None)
    watch = sum(s.watch_ms for s in items)
    stall = sum(s.rebuffer_ms for s in items)
    rebuffers = sum(s.rebuffer_count for s in items)

    def pct(pred: Callable[[SessionStats], bool]) -> float:
        return 100.0 * sum(1 for s in items if pred(s)) / n if n else 0.0

    return QoE(
        sessions=n,
        startup_p50_ms=statistics.median(startups) if startups else None,
        startup_p95_ms=startups[int(0.95 * (len(startups) - 1))] if startups else None,
        start_failure_pct=pct(lambda s: s.fatal_before_start),
        exit_before_start_pct=pct(lambda s: s.exit_before_start),
        playback_failure_pct=pct(lambda s: s.ended_in_fatal),
        rebuffer_pct=100.0 * stall / (watch + stall) if watch + stall else 0.0,
        rebuffers_per_minute=rebuffers / (watch / 60_000) if watch else 0.0,
    )


def qoe_by(
    sessions: Iterable[SessionStats],
    dimension: str,
    keep: Callable[[SessionStats], bool] = lambda s: True,
) -> dict[str, QoE]:
    """Metrics per value of `dimension` (e.g. "network.isp") over the sessions `keep` selects."""
    groups: dict[str, list[SessionStats]] = {}
    for s in sessions:
        if s.dims and keep(s):
            groups.setdefault(s.dims[dimension], []).append(s)
    return {value: qoe(group) for value, group in groups.items()}
