"""CMCD v2 event-mode reports -> contract events (schema_version 2).

What the players send (hls.js 1.7 and dash.js 5 through the SVTA common-media-library
`CmcdReporter`): one report per line, each with the event type `e`, the time `ts`, the
session `sid`, a per-target sequence number `sn` and whatever keys the player knows then
(`sta` play state, `br` bitrate, `bl` buffer, `mtp` throughput, `pt` playhead, `ec` error
codes, `msd` media start delay, `cid` content id, custom `prefix-name` keys).

How a report becomes events:

| report | event(s) |
|---|---|
| `e=ps`, `sta=s` | play_requested |
| `e=ps`, `sta=p` | first_frame (first time), rebuffer_end (after `r`/`w`), resume (after `a`) |
| `e=ps`, `sta=r` after the first frame, `w` after `p` | rebuffer_start (before: startup) |
| `e=ps`, `sta=a` / `k` | pause / seek |
| `e=ps`, `sta=e` / `q` / `f` | playback_end (completed / user_exit / error); `f`: + fatal error |
| `e=e` | error per code in `ec` (fatal when `sta=f`, else severity unknown) |
| `e=bc` | bitrate_change |
| `e=t` | heartbeat (and bitrate_change when `br` moved and the player sends no `bc`) |
| others (`rr`, `pr`, `m`, `ce`...) | none (counted as ignored) |

A play-state report says only the new state; which transition it ends (startup, stall,
pause) is known from the session's previous state. The collector remembers the last state of
recent sessions (`CmcdSessions`, bounded LRU) and commits what a body taught it only after
Kafka acknowledged the body. What CMCD cannot tell stays null or `unknown` and is listed in
the event's `unknown_facts`; nothing is invented.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from contract.deadletter import CMCD_MISSING_KEY, CMCD_OUT_OF_ORDER
from ingest.cmcd import CmcdError, CmcdReport

UNKNOWN_ERROR_CODE: Final = "unknown"
# Event ids are a function of the report, so a report a player sends twice (after a 5xx or
# a lost answer) makes the same ids and is deduplicated downstream.
_ID_NAMESPACE: Final = uuid.UUID("5b0c6a55-7e0f-4c4e-9a43-4b9e1c2b6d11")
_END_REASONS: Final = {"e": "completed", "q": "user_exit", "f": "error"}
SN_WINDOW: Final = 64
_WINDOW_MASK: Final = (1 << SN_WINDOW) - 1


@dataclass(frozen=True)
class SeenSequence:
    """Which sequence numbers (`sn`) of a session arrived: the newest, and of the
    `SN_WINDOW` before it, which ones (bit i set: `newest - i` arrived).

    Players POST reports without waiting for answers, so an earlier report can arrive after
    a later one; only the numbers seen tell its first arrival from a retry.
    """

    newest: int = -1
    bits: int = 0

    def verdict(self, sn: int) -> Literal["new", "seen", "late"]:
        """`new` above the newest; `seen` for a retry (or too old to tell); `late` for an
        earlier report arriving for the first time after a later one."""
        if sn > self.newest:
            return "new"
        back = self.newest - sn
        if back >= SN_WINDOW or (self.bits >> back) & 1:
            return "seen"
        return "late"

    def add(self, sn: int) -> SeenSequence:
        """These numbers with the new `sn` (above the newest)."""
        gap = sn - self.newest
        # A player's `sn` is untrusted: shifting by a jump of 10**12 would build a huge int.
        bits = self.bits << gap if self.newest >= 0 and gap < SN_WINDOW else 0
        return SeenSequence(sn, (bits | 1) & _WINDOW_MASK)


@dataclass(frozen=True)
class SessionMemory:
    """What the collector remembers of one CMCD session between reports."""

    state: str | None = None
    state_ts: int | None = None
    started: bool = False
    bitrate_kbps: int | None = None
    sends_bitrate_changes: bool = False
    fatal_reported: bool = False
    sns: SeenSequence = SeenSequence()
    # Identity seen on an earlier report (players may send custom keys once).
    title_id: str | None = None
    member_id: str | None = None
    profile_id: str | None = None
    device_id: str | None = None
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CmcdIdentity:
    """Which CMCD custom keys carry the member, profile and device ids, and dimensions."""

    member_key: str | None = None
    profile_key: str | None = None
    device_key: str | None = None
    dimensions: tuple[str, ...] = ()


class CmcdSessions:
    """The last known state of recent sessions, least recently used forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._memory: OrderedDict[str, SessionMemory] = OrderedDict()

    def get(self, sid: str) -> SessionMemory:
        """The memory of `sid` (empty when unknown or forgotten)."""
        return self._memory.get(sid) or SessionMemory()

    def commit(self, updates: dict[str, SessionMemory]) -> None:
        """Keep what a body taught (call after Kafka acknowledged it)."""
        for sid, memory in updates.items():
            self._memory.pop(sid, None)
            self._memory[sid] = memory
        while len(self._memory) > self.capacity:
            self._memory.popitem(last=False)

    def __len__(self) -> int:
        return len(self._memory)


@dataclass
class Translation:
    """Events of one report, or why it was skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    duplicate: bool = False


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


class CmcdTranslator:
    """Turns the decoded reports of one body into events, reading and updating memories.

    One translator per request: `updates` holds the sessions' new memories for
    `CmcdSessions.commit` once the events are in Kafka.
    """

    def __init__(self, sessions: CmcdSessions, identity: CmcdIdentity) -> None:
        self.sessions = sessions
        self.identity = identity
        self.updates: dict[str, SessionMemory] = {}

    def _memory(self, sid: str) -> SessionMemory:
        return self.updates.get(sid) or self.sessions.get(sid)

    def translate(self, report: CmcdReport, line: str) -> Translation:
        """The events of one report; raises `CmcdError` for a report missing `e`/`sid`/`ts`."""
        sid = _session_id(report)
        memory = self._memory(sid)
        sn = report.get("sn")
        if isinstance(sn, int):
            verdict = memory.sns.verdict(sn)
            if verdict == "seen":
                return Translation(duplicate=True)
            if verdict == "late":
                raise CmcdError(
                    CMCD_OUT_OF_ORDER,
                    f"sn {sn} of session {sid!r} arrived after its sn {memory.sns.newest}, "
                    "too late to be put back in order: its state change cannot be applied "
                    "after the later ones (cmcd_reorder_wait_s)",
                )
            memory = replace(memory, sns=memory.sns.add(sn))
        memory = self._remember_identity(report, memory)
        out: list[tuple[str, dict[str, Any], list[str]]] = []
        memory = self._events_of(report, memory, out)
        self.updates[sid] = memory
        return Translation(
            [self._envelope(report, memory, line, i, *item) for i, item in enumerate(out)]
        )

    def _events_of(
        self,
        report: CmcdReport,
        memory: SessionMemory,
        out: list[tuple[str, dict[str, Any], list[str]]],
    ) -> SessionMemory:
        """Append the events one report stands for to `out`; the session's memory after it."""
        kind: str = report.get("e")
        ts: int = report.get("ts")
        br = report.int_of("br")
        sta = report.get("sta")
        if kind == "ps" and sta is not None:
            memory = self._play_state(report, memory, sta, ts, br, out)
        elif kind == "e":
            codes = report.get("ec") or [UNKNOWN_ERROR_CODE]
            fatal = sta == "f"
            for code in codes:
                out.append(self._error(code, fatal))
            memory = replace(memory, fatal_reported=memory.fatal_reported or fatal)
        elif kind == "bc" and br is not None:
            out.append(("bitrate_change", {"from_kbps": memory.bitrate_kbps, "to_kbps": br}, []))
            memory = replace(memory, bitrate_kbps=br, sends_bitrate_changes=True)
        if (
            kind != "bc"
            and br is not None
            and memory.bitrate_kbps is not None
            and br != memory.bitrate_kbps
            and not memory.sends_bitrate_changes
        ):
            # The player sends no `bc` (dash.js 5.2): the rendition change is seen here.
            out.append(("bitrate_change", {"from_kbps": memory.bitrate_kbps, "to_kbps": br}, []))
        if kind == "t":
            out.append(_heartbeat(report, br, sta))
        if br is not None and kind != "bc":
            memory = replace(memory, bitrate_kbps=br)
        return memory

    def _remember_identity(self, report: CmcdReport, memory: SessionMemory) -> SessionMemory:
        def custom(key: str | None) -> str | None:
            value = report.custom.get(key) if key else None
            return value[:128] if isinstance(value, str) and value else None

        cid = report.get("cid")
        dimensions = self._dimensions(report)
        return replace(
            memory,
            title_id=cid[:128] if cid else memory.title_id,
            member_id=custom(self.identity.member_key) or memory.member_id,
            profile_id=custom(self.identity.profile_key) or memory.profile_id,
            device_id=custom(self.identity.device_key) or memory.device_id,
            dimensions=(
                tuple(sorted({**dict(memory.dimensions), **dimensions}.items()))
                if dimensions
                else memory.dimensions
            ),
        )

    def _play_state(
        self,
        report: CmcdReport,
        memory: SessionMemory,
        sta: str,
        ts: int,
        br: int | None,
        out: list[tuple[str, dict[str, Any], list[str]]],
    ) -> SessionMemory:
        prev = memory.state
        pt = report.int_of("pt") or 0
        if sta == prev:
            return memory
        if sta == "s" and not memory.started:
            out.append(("play_requested", {"autoplay": False, "resume_position_ms": pt}, []))
        elif sta == "p":
            memory = self._playing(report, memory, ts, br, out)
        elif (sta == "r" and memory.started) or (sta == "w" and prev == "p"):
            # dash.js 5.2 reports a stall in playback as `w` (waiting), hls.js as `r`.
            out.append(("rebuffer_start", {"position_ms": pt}, []))
        elif sta == "a" and memory.started:
            out.append(("pause", {"position_ms": pt}, []))
        elif sta == "k" and memory.started:
            out.append(
                ("seek", {"from_ms": None, "to_ms": report.int_of("pt")}, ["payload.from_ms"])
            )
        elif sta in _END_REASONS:
            memory = self._ended(report, memory, sta, out)
        return replace(memory, state=sta, state_ts=ts)

    def _playing(
        self,
        report: CmcdReport,
        memory: SessionMemory,
        ts: int,
        br: int | None,
        out: list[tuple[str, dict[str, Any], list[str]]],
    ) -> SessionMemory:
        """Entering the playing state: the first frame, a stall's end or a resume."""
        prev = memory.state
        if not memory.started:
            msd = report.int_of("msd")
            unknown = ["payload.startup_ms"] if msd is None else []
            if br is None:
                unknown.append("payload.bitrate_kbps")
            out.append(("first_frame", {"startup_ms": msd, "bitrate_kbps": br}, unknown))
            return replace(memory, started=True)
        if prev == "r" or prev == "w":
            duration = ts - memory.state_ts if memory.state_ts is not None else None
            unknown = ["payload.duration_ms"] if duration is None else []
            out.append(("rebuffer_end", {"duration_ms": _clip(duration)}, unknown))
        elif prev == "a":
            paused = ts - memory.state_ts if memory.state_ts is not None else 0
            out.append(("resume", {"paused_ms": max(paused, 0)}, []))
        return memory

    def _ended(
        self,
        report: CmcdReport,
        memory: SessionMemory,
        sta: str,
        out: list[tuple[str, dict[str, Any], list[str]]],
    ) -> SessionMemory:
        """An end state: the playback end, after its fatal error when the player failed."""
        if sta == "f" and not memory.fatal_reported:
            # The failed state is itself the fatal error; its code only when sent here.
            codes = report.get("ec") or [UNKNOWN_ERROR_CODE]
            out.append(self._error(codes[0], True))
            memory = replace(memory, fatal_reported=True)
        out.append(
            (
                "playback_end",
                {"watched_ms": None, "exit_reason": _END_REASONS[sta]},
                ["payload.watched_ms"],
            )
        )
        return memory

    @staticmethod
    def _error(code: str, fatal: bool) -> tuple[str, dict[str, Any], list[str]]:
        payload = {
            "code": str(code)[:64] or UNKNOWN_ERROR_CODE,
            "category": "unknown",
            "severity": "fatal" if fatal else "warning",
            "message": "reported by the player over CMCD",
        }
        # CMCD says nothing of an error's severity unless the player is in the failed state.
        unknown = ["payload.category"] + ([] if fatal else ["payload.severity"])
        return "error", payload, unknown

    def _envelope(
        self,
        report: CmcdReport,
        memory: SessionMemory,
        line: str,
        position: int,
        event_type: str,
        payload: dict[str, Any],
        unknown_payload: list[str],
    ) -> dict[str, Any]:
        sid: str = report.get("sid")
        parts = (sid, report.get("sn"), report.get("e"), report.get("ts"), position, event_type)
        seed = "|".join(str(v) for v in parts)
        if report.get("sn") is None:
            seed += "|" + line  # without a sequence number the report's own text tells it apart
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid5(_ID_NAMESPACE, seed)),
            "event_type": event_type,
            "schema_version": 2,
            "event_time": _iso(report.get("ts")),
            "session_id": sid,
            "payload": payload,
            "extra": {"cmcd": {**report.keys, **report.custom}, "source_format": "cmcd"},
        }
        for name in ("title_id", "member_id", "profile_id"):
            value = getattr(memory, name)
            if value:
                event[name] = value
        if memory.device_id:
            event["device"] = {"device_id": memory.device_id}
        if memory.dimensions:
            event["dimensions"] = dict(memory.dimensions)
        for key, hint in (("cdn", "cdn"), ("h", "cdn_host")):
            value = report.get(key)
            if isinstance(value, str) and value:
                event["extra"][hint] = value
        if unknown_payload:
            event["unknown_facts"] = unknown_payload
        return event

    def _dimensions(self, report: CmcdReport) -> dict[str, str]:
        if not self.identity.dimensions:
            return {}
        wanted = set(self.identity.dimensions)
        out: dict[str, str] = {}
        for key, value in report.custom.items():
            name = key.rsplit("-", 1)[-1]
            if name in wanted and value is not None:
                out[name] = str(value)[:256]
        return out


def _clip(duration: int | None) -> int | None:
    if duration is None:
        return None
    return min(max(duration, 0), 3_600_000)


def _session_id(report: CmcdReport) -> str:
    """The report's session id; `CmcdError` when a key every event report needs is missing."""
    for key in ("e", "sid", "ts"):
        if report.get(key) is None:
            raise CmcdError(CMCD_MISSING_KEY, f"an event-mode report must carry {key!r}")
    sid: str = report.get("sid")
    if not sid:
        raise CmcdError(CMCD_MISSING_KEY, "sid is empty")
    return sid


def _heartbeat(
    report: CmcdReport, br: int | None, sta: str | None
) -> tuple[str, dict[str, Any], list[str]]:
    payload = {
        "bitrate_kbps": br,
        "buffer_ms": report.int_of("bl"),
        "throughput_kbps": report.int_of("mtp"),
        "position_ms": report.int_of("pt") or 0,
        "playing": None if sta is None else sta == "p",
    }
    unknown = [f"payload.{k}" for k, v in payload.items() if v is None]
    return ("heartbeat", payload, unknown)
