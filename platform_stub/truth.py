"""What the stub knows about each session: the answer key for session summaries.

Definitions follow DESIGN.md "Metric definitions":

- startup: play_requested -> first_frame (`startup_ms`, only when `first_frame`);
- start failure: a fatal error before first frame (`fatal_before_start`);
- exit before video start (EBVS): no first frame and no fatal error (`exit_before_start`);
- playback failure: the session ended in a fatal error (`ended_in_fatal`, before or after
  first frame);
- rebuffer %: rebuffer_ms / (watch_ms + rebuffer_ms) summed over sessions;
- time-weighted bitrate: bitrate integrated over watch time, divided by watch time.

Dimensions are the session's values at play_requested (a session that fails over keeps its
original OCA as `oca_id`; `final_oca_id` says where it ended up).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class SessionTruth:
    """Ground truth for one playback session."""

    session_id: str
    member_id: str
    profile_id: str
    title_id: str
    device_id: str
    device_type: str
    device_model: str
    os: str
    app_version: str
    country: str
    region: str
    isp: str
    asn: int
    oca_id: str
    cdn_tier: str
    final_oca_id: str
    connection_type: str
    started_ms: int
    ended_ms: int
    events: int
    complete: bool  # False when the run stopped before the session ended
    first_frame: bool
    startup_ms: int | None
    fatal_before_start: bool
    fatal_after_start: bool
    exit_before_start: bool
    exit_reason: str | None
    watch_ms: int
    rebuffer_count: int
    rebuffer_ms: int
    avg_bitrate_kbps: float
    upshifts: int
    downshifts: int
    error_codes: tuple[str, ...]
    fatal_code: str | None
    fault_affected: bool  # the scenario's fault struck this session

    @property
    def ended_in_fatal(self) -> bool:
        """Playback failure: the session ended in a fatal error."""
        return self.fatal_before_start or self.fatal_after_start

    def to_json(self) -> str:
        """One JSONL line."""
        record = asdict(self)
        record["error_codes"] = list(self.error_codes)
        record["ended_in_fatal"] = self.ended_in_fatal
        return json.dumps(record, separators=(",", ":"))


def write_truth(records: Iterable[SessionTruth], out: IO[str]) -> int:
    """Write records as JSONL; returns how many were written."""
    n = 0
    for record in records:
        out.write(record.to_json())
        out.write("\n")
        n += 1
    return n


def read_truth(path: Path) -> list[dict[str, object]]:
    """Read a truth JSONL file back (as plain dicts, for checks and notebooks)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
