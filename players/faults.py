"""Per-session faults the segment server applies: a throttled link, a failing rendition.

A fault is data (a frozen dataclass) registered for one playback session's URL token, so
that one browser session can be throttled while another gets 404s, on one server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# hls/<rendition>/seg_007.m4s (0-based) and dash/seg-<rep>-008.m4s (1-based)
_HLS_SEGMENT = re.compile(r"^hls/(?P<rendition>[a-z0-9_]+)/seg_(?P<n>\d+)\.m4s$")
_DASH_SEGMENT = re.compile(r"^dash/seg-(?P<rep>\d+)-(?P<n>\d+)\.m4s$")


@dataclass(frozen=True)
class Segment:
    """A media segment request: which rendition, which position (0-based)."""

    rendition: str
    index: int


def parse_segment(path: str, renditions: tuple[str, ...]) -> Segment | None:
    """The media segment a ladder path names, or None for playlists and init segments."""
    if m := _HLS_SEGMENT.match(path):
        return Segment(m["rendition"], int(m["n"]))
    if m := _DASH_SEGMENT.match(path):
        rep = int(m["rep"])
        name = renditions[rep] if rep < len(renditions) else m["rep"]
        return Segment(name, int(m["n"]) - 1)
    return None


@dataclass(frozen=True)
class Throttle:
    """Pace segment bodies at `kbps` for `for_s` seconds, from the `after_segments`-th on."""

    after_segments: int
    for_s: float
    kbps: int


@dataclass(frozen=True)
class FailSegments:
    """Answer `status` for segments at `from_index` or later of `renditions` (empty: all)."""

    status: int
    from_index: int
    renditions: tuple[str, ...] = ()

    def fails(self, seg: Segment) -> bool:
        """Whether this segment request gets the error status."""
        return seg.index >= self.from_index and (
            not self.renditions or seg.rendition in self.renditions
        )


Fault = Throttle | FailSegments


@dataclass
class SessionLog:
    """What one session token asked for and what it got (for tests and debugging)."""

    fault: Fault | None = None
    segments_served: int = 0
    throttle_started: float | None = None
    requests: list[tuple[float, str, int]] = field(default_factory=list)

    def throttle_active(self, now: float) -> bool:
        """Whether the throttle window is open now (it opens on first use)."""
        f = self.fault
        if not isinstance(f, Throttle) or self.segments_served < f.after_segments:
            return False
        if self.throttle_started is None:
            self.throttle_started = now
        return now - self.throttle_started < f.for_s


def fault_from_json(data: dict[str, object]) -> Fault:
    """A fault from its JSON form: {"kind": "throttle"|"fail", ...}."""
    kind = data.get("kind")
    if kind == "throttle":
        return Throttle(
            after_segments=int(str(data["after_segments"])),
            for_s=float(str(data["for_s"])),
            kbps=int(str(data["kbps"])),
        )
    if kind == "fail":
        rends = data.get("renditions") or []
        if not isinstance(rends, list):
            raise ValueError("renditions must be a list")
        return FailSegments(
            status=int(str(data["status"])),
            from_index=int(str(data["from_index"])),
            renditions=tuple(str(r) for r in rends),
        )
    raise ValueError(f"unknown fault kind {kind!r} (throttle or fail)")
