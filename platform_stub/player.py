"""The player model: one playback session as a generator of (event time ms, event JSON).

A session walks the life cycle of DESIGN.md: play_requested -> manifest_loaded ->
license_acquired -> first_frame -> heartbeats, bitrate changes, rebuffers, pauses, seeks
and warnings -> playback_end; or it ends early with a fatal error (always followed by
playback_end with exit_reason "error") or an exit before video start ("abandoned_startup").

This module holds the shared world, the plan and the state; `platform_stub.session_run`
runs one session through the startup phases (`platform_stub.startup`, with the control
plane's calls when it is on) and the tick-by-tick playback (`platform_stub.playback`).
Everything the session emits is also accumulated in
`SessionProgress`, from which the truth record is built, so the truth and the events agree by
construction.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any

from platform_stub.config import PlayerConfig
from platform_stub.control_plane.plane import ControlPlane
from platform_stub.error_codes import ErrorTable, InjectedError, Phase
from platform_stub.population import Device, Member, Oca, Population, Title
from platform_stub.scenarios import Fault
from platform_stub.truth import SessionTruth

_STARTUP_PHASES: tuple[Phase, ...] = ("play", "manifest", "license", "segments", "first_frame")


@dataclass(frozen=True)
class SessionPlan:
    """Who plays what, where and when: decided by the runner when the session arrives."""

    session_id: str
    member: Member
    profile_id: str
    device: Device
    title: Title
    connection_type: str
    oca: Oca
    t0_ms: int
    seed: int
    resume_position_ms: int
    autoplay: bool


class PlayerWorld:
    """Shared, read-only context of all sessions: population, errors, fault, constants."""

    def __init__(
        self,
        population: Population,
        errors: ErrorTable,
        fault: Fault | None,
        config: PlayerConfig,
    ) -> None:
        self.population = population
        self.errors = errors
        self.fault = fault
        self.config = config
        # The simulated control plane (None = the player draws its service waits itself).
        self.control: ControlPlane | None = None
        device_types = {
            f.device_type for m in population.members for d in m.devices for f in [d.family]
        }
        self.startup_errors: dict[tuple[str, str], tuple[InjectedError, ...]] = {
            (phase, dt): errors.phase(phase, dt) for phase in _STARTUP_PHASES for dt in device_types
        }
        # Playback errors: total rate per ms and cumulative weights to pick one.
        self.playback_errors: dict[str, tuple[float, tuple[InjectedError, ...], list[float]]] = {}
        for dt in device_types:
            entries = errors.phase("playback", dt)
            cum: list[float] = []
            total = 0.0
            for e in entries:
                total += e.rate
                cum.append(total)
            self.playback_errors[dt] = (total / 3_600_000.0, entries, cum)
        self.origins = {r: population.ocas[o] for r, o in population.origin_by_region.items()}
        # One generator shared by all sessions keeps the hot state small (interleaving
        # thousands of per-session Mersenne Twisters thrashes the CPU cache); the heap order
        # is deterministic, so the run still is. None = a private generator per session.
        self.rng: random.Random | None = None
        self._device_json: dict[str, str] = {}
        self._network_json: dict[tuple[str, str, str], str] = {}

    def device_json(self, device: Device) -> str:
        """The `device` object of a device's events, encoded once per device."""
        text = self._device_json.get(device.device_id)
        if text is None:
            family = device.family
            text = self._device_json[device.device_id] = _compact({
                "device_id": device.device_id,
                "device_type": family.device_type,
                "device_model": device.device_model,
                "os": family.os,
                "app_version": device.app_version,
            })  # fmt: skip
        return text

    def network_json(self, member: Member, oca: Oca, connection_type: str) -> str:
        """The `network` object for a member served by `oca`, encoded once per combination."""
        key = (member.member_id, oca.oca_id, connection_type)
        text = self._network_json.get(key)
        if text is None:
            text = self._network_json[key] = _compact(_network(oca, member, connection_type))
        return text


class SessionProgress:
    """What a session has done so far (mutable; the runner reads it for the truth record)."""

    __slots__ = (
        "affected",
        "downshifts",
        "ended_ms",
        "error_codes",
        "events",
        "exit_before_start",
        "exit_reason",
        "fatal_after_start",
        "fatal_before_start",
        "fatal_code",
        "final_oca_id",
        "first_frame",
        "kbps_ms",
        "oca_id",
        "plan",
        "rebuffer_count",
        "rebuffer_ms",
        "startup_ms",
        "switched_at",
        "unsent",
        "upshifts",
        "watch_ms",
    )

    def __init__(self, plan: SessionPlan) -> None:
        self.plan = plan
        self.events = 0
        self.ended_ms = plan.t0_ms
        self.first_frame = False
        self.startup_ms: int | None = None
        self.fatal_before_start = False
        self.fatal_after_start = False
        self.exit_before_start = False
        self.exit_reason: str | None = None
        self.watch_ms = 0.0
        self.kbps_ms = 0.0
        self.rebuffer_count = 0
        self.rebuffer_ms = 0
        self.upshifts = 0
        self.downshifts = 0
        self.error_codes: list[str] = []
        self.fatal_code: str | None = None
        self.final_oca_id = plan.oca.oca_id
        self.oca_id = plan.oca.oca_id
        self.switched_at: int | None = None  # events sent before the first from a new OCA
        self.affected = False
        # Events built (and counted) but not yielded yet: a tick builds its events first.
        self.unsent: list[tuple[int, str]] = []

    def truth(self, pending: str | None = None) -> SessionTruth:
        """The truth record of what has been emitted.

        `pending` is the session's next line when the run stopped before emitting it: the
        generator has already counted it, so its effect is taken back here and the record
        is marked incomplete.
        """
        if pending is not None:
            record = self.truth()
            # Latest first: an error's code is the last of `error_codes` when taken back.
            for line in (*(text for _, text in reversed(self.unsent)), pending):
                record = _without(record, line)
            if self.switched_at is not None and record.events <= self.switched_at:
                record = dataclasses.replace(record, final_oca_id=self.oca_id)
            return record
        p = self.plan
        fam = p.device.family
        watch = int(self.watch_ms)
        return SessionTruth(
            session_id=p.session_id,
            member_id=p.member.member_id,
            profile_id=p.profile_id,
            title_id=p.title.title_id,
            device_id=p.device.device_id,
            device_type=fam.device_type,
            device_model=p.device.device_model,
            os=fam.os,
            app_version=p.device.app_version,
            country=p.member.country,
            region=p.member.region,
            isp=p.member.isp.name,
            asn=p.member.isp.asn,
            oca_id=self.oca_id,
            cdn_tier=p.oca.cdn_tier,
            final_oca_id=self.final_oca_id,
            connection_type=p.connection_type,
            started_ms=p.t0_ms,
            ended_ms=self.ended_ms,
            events=self.events,
            complete=self.exit_reason is not None,
            first_frame=self.first_frame,
            startup_ms=self.startup_ms,
            fatal_before_start=self.fatal_before_start,
            fatal_after_start=self.fatal_after_start,
            exit_before_start=self.exit_before_start,
            exit_reason=self.exit_reason,
            watch_ms=watch,
            rebuffer_count=self.rebuffer_count,
            rebuffer_ms=self.rebuffer_ms,
            avg_bitrate_kbps=round(self.kbps_ms / self.watch_ms, 1) if watch > 0 else 0.0,
            upshifts=self.upshifts,
            downshifts=self.downshifts,
            error_codes=tuple(self.error_codes),
            fatal_code=self.fatal_code,
            fault_affected=self.affected,
        )


def _without(record: SessionTruth, pending: str) -> SessionTruth:
    """`record` with the effect of one built but unsent event taken back (incomplete)."""
    event = json.loads(pending)
    kind, payload = event["event_type"], event["payload"]
    changes: dict[str, Any] = {"events": record.events - 1, "complete": False}
    if kind == "playback_end":
        changes.update(exit_reason=None, exit_before_start=False)
    elif kind == "first_frame":
        changes.update(first_frame=False, startup_ms=None)
    elif kind == "error":
        changes["error_codes"] = record.error_codes[:-1]
        if payload["severity"] == "fatal":
            changes.update(fatal_code=None, fatal_before_start=False, fatal_after_start=False)
    elif kind == "rebuffer_start":
        changes["rebuffer_count"] = record.rebuffer_count - 1
    elif kind == "rebuffer_end":
        changes["rebuffer_ms"] = record.rebuffer_ms - payload["duration_ms"]
    elif kind == "bitrate_change":
        up = payload["to_kbps"] > payload["from_kbps"]
        changes["upshifts" if up else "downshifts"] = (
            record.upshifts - 1 if up else record.downshifts - 1
        )
    return dataclasses.replace(record, **changes)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _network(oca: Oca, member: Member, connection_type: str) -> dict[str, object]:
    return {
        "country": member.country,
        "region": member.region,
        "isp": member.isp.name,
        "asn": member.isp.asn,
        "oca_id": oca.oca_id,
        "cdn_tier": oca.cdn_tier,
        "connection_type": connection_type,
    }
