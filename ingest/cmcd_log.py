"""CMCD v1 in CDN / origin access logs -> what each playback session's requests tell.

Input: access logs in the combined log format, where players put CMCD in the query
(`?CMCD=br%3D3000%2Cbl%3D12000%2Csid%3D%22...%22`) and, where the server logs them, in
`CMCD-Request` / `CMCD-Object` / `CMCD-Status` / `CMCD-Session` headers appended as extra
quoted fields (`"CMCD-Session: sid=\\"...\\""` or just the dictionary).

CMCD v1 is request mode: one report per media request, not per playback event. What it can
support, per session (`sid`): bitrate (encoded `br` of the video requests, weighted by the
object duration `d` when sent), buffer starvation (`bs` flags), throughput (`mtp`), buffer
length (`bl`) and rendition switches (a change of `br` between consecutive video requests).
What it cannot tell is said, never invented: startup time, rebuffer duration, watch time,
pauses, seeks and errors are not in CMCD v1 requests (`CANNOT_TELL`).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from ingest.cmcd import CmcdError, CmcdReport, decode_report

CANNOT_TELL: Final = (
    "startup_ms",
    "rebuffer_ms",
    "watch_ms",
    "pauses",
    "seeks",
    "errors",
)
CANNOT_TELL_WHY: Final = (
    "CMCD v1 is sent with media requests only: it has no play, first-frame, stall-end, pause, "
    "seek or error report, so startup time, rebuffer duration, watch time, pauses, seeks and "
    "errors cannot be known from access logs."
)

# host ident user [time] "request" status bytes ["referer" "user-agent" ["extra"...]]
_COMBINED: Final = re.compile(
    r'^(?P<host>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r"(?P<status>\d{3}|-) (?P<bytes>\d+|-)(?P<rest>.*)$"
)
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_HEADER_PREFIX: Final = re.compile(r"^\s*CMCD-(?:Request|Object|Status|Session)\s*:\s*", re.I)
_VIDEO_TYPES: Final = frozenset({"v", "av"})
_BARE_KEYS: Final = re.compile(r"[a-z]+(?:,[a-z]+)*")  # e.g. a logged `CMCD-Status: bs`


@dataclass(frozen=True)
class LogRequest:
    """One logged request that carried CMCD."""

    line_no: int
    at: datetime
    status: int | None
    report: CmcdReport


@dataclass(frozen=True)
class LogProblem:
    """A line that could not be read, with why."""

    line_no: int
    reason: str
    detail: str


def read_log(lines: Iterable[str]) -> Iterator[LogRequest | LogProblem]:
    """The CMCD requests of an access log, and a problem for every unreadable line."""
    for line_no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        match = _COMBINED.match(line)
        if match is None:
            yield LogProblem(line_no, "not_combined_log_format", line[:200])
            continue
        try:
            at = datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            yield LogProblem(line_no, "bad_time", match["time"])
            continue
        parts = _cmcd_parts(match["request"], match["rest"])
        if not parts:
            continue  # a request without CMCD (a manifest, a favicon...)
        try:
            report = _merge(decode_report(p) for p in parts)
        except CmcdError as exc:
            yield LogProblem(line_no, exc.reason, exc.detail)
            continue
        status = int(match["status"]) if match["status"].isdigit() else None
        yield LogRequest(line_no, at, status, report)


def _cmcd_parts(request: str, rest: str) -> list[str]:
    parts: list[str] = []
    pieces = request.split(" ")
    target = pieces[1] if len(pieces) >= 2 else ""
    query = parse_qs(urlsplit(target).query, keep_blank_values=True)
    parts += [v for v in query.get("CMCD", []) if v]
    # Quoted fields after referer and user agent: logged CMCD headers, when configured.
    quoted = [q.replace('\\"', '"') for q in _QUOTED.findall(rest)]
    for field_text in quoted[2:]:
        text = _HEADER_PREFIX.sub("", field_text).strip()
        if text and text != "-" and ("=" in text or _BARE_KEYS.fullmatch(text)):
            parts.append(text)
    return parts


def _merge(reports: Iterable[CmcdReport]) -> CmcdReport:
    keys: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for report in reports:
        keys.update(report.keys)
        custom.update(report.custom)
    return CmcdReport(keys, custom)


@dataclass
class SessionFromLog:
    """What CMCD v1 requests tell about one session (`sid`)."""

    session_id: str
    content_id: str | None = None
    stream_format: str | None = None
    stream_type: str | None = None
    first_request_at: datetime | None = None
    last_request_at: datetime | None = None
    requests: int = 0
    video_requests: int = 0
    failed_requests: int = 0
    bitrate_samples: list[tuple[int, int]] = field(default_factory=list)  # (kbps, duration ms)
    throughputs: list[int] = field(default_factory=list)
    buffer_lengths: list[int] = field(default_factory=list)
    buffer_starvations: int = 0
    upshifts: int = 0
    downshifts: int = 0
    _last_kbps: int | None = None

    def add(self, request: LogRequest) -> None:
        """Fold one request in (requests in log order)."""
        r = request.report
        self.requests += 1
        self.first_request_at = min(self.first_request_at or request.at, request.at)
        self.last_request_at = max(self.last_request_at or request.at, request.at)
        self.content_id = r.get("cid") or self.content_id
        self.stream_format = r.get("sf") or self.stream_format
        self.stream_type = r.get("st") or self.stream_type
        if request.status is not None and request.status >= 400:
            self.failed_requests += 1
        if r.get("bs") is True:
            self.buffer_starvations += 1
        mtp, bl = r.int_of("mtp"), r.int_of("bl")
        if mtp is not None:
            self.throughputs.append(mtp)
        if bl is not None:
            self.buffer_lengths.append(bl)
        br = r.int_of("br")
        if br is None or (r.get("ot") is not None and r.get("ot") not in _VIDEO_TYPES):
            return
        self.video_requests += 1
        self.bitrate_samples.append((br, r.int_of("d") or 0))
        if self._last_kbps is not None and br != self._last_kbps:
            if br > self._last_kbps:
                self.upshifts += 1
            else:
                self.downshifts += 1
        self._last_kbps = br

    def summary(self) -> dict[str, Any]:
        """The session as JSON-ready facts, with what v1 cannot tell marked so."""
        weighted = sum(k * d for k, d in self.bitrate_samples)
        duration = sum(d for _, d in self.bitrate_samples)
        if duration > 0:
            avg: float | None = weighted / duration
            avg_basis = "object duration (d)"
        elif self.bitrate_samples:
            avg = statistics.fmean(k for k, _ in self.bitrate_samples)
            avg_basis = "per request (no d key)"
        else:
            avg, avg_basis = None, "no video bitrate"
        return {
            "session_id": self.session_id,
            "content_id": self.content_id,
            "stream_format": self.stream_format,
            "stream_type": self.stream_type,
            "first_request_at": _iso(self.first_request_at),
            "last_request_at": _iso(self.last_request_at),
            "requests": self.requests,
            "video_requests": self.video_requests,
            "failed_requests": self.failed_requests,
            "avg_bitrate_kbps": None if avg is None else round(avg, 1),
            "avg_bitrate_basis": avg_basis,
            "min_bitrate_kbps": min((k for k, _ in self.bitrate_samples), default=None),
            "max_bitrate_kbps": max((k for k, _ in self.bitrate_samples), default=None),
            "upshifts": self.upshifts,
            "downshifts": self.downshifts,
            "buffer_starvations": self.buffer_starvations,
            "min_buffer_ms": min(self.buffer_lengths, default=None),
            "median_throughput_kbps": (
                int(statistics.median(self.throughputs)) if self.throughputs else None
            ),
            "cannot_tell": list(CANNOT_TELL),
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass
class LogAnalysis:
    """Every session of a log, plus the lines that could not be read."""

    sessions: dict[str, SessionFromLog] = field(default_factory=dict)
    problems: list[LogProblem] = field(default_factory=list)
    requests_without_session: int = 0


def analyse_log(lines: Iterable[str]) -> LogAnalysis:
    """Fold an access log into per-session facts."""
    out = LogAnalysis()
    for item in read_log(lines):
        if isinstance(item, LogProblem):
            out.problems.append(item)
            continue
        sid = item.report.get("sid")
        if not sid:
            out.requests_without_session += 1
            continue
        session = out.sessions.get(sid)
        if session is None:
            session = out.sessions[sid] = SessionFromLog(sid)
        session.add(item)
    return out
