"""The player model: one playback session as a generator of (event time ms, event JSON).

A session walks the life cycle of DESIGN.md: play_requested -> manifest_loaded ->
license_acquired -> first_frame -> heartbeats, bitrate changes, rebuffers, pauses, seeks
and warnings -> playback_end; or it ends early with a fatal error (always followed by
playback_end with exit_reason "error") or an exit before video start ("abandoned_startup").

Playback advances in ticks (`PlayerConfig.tick_ms`). Each tick moves a throughput random
walk, fills the buffer at throughput / bitrate and drains it in real time while playing;
an empty buffer is a rebuffer, which lasts until one segment is buffered again. ABR picks
rungs from the title's ladder with hysteresis. Everything the session emits is also
accumulated in `SessionState`, from which the truth record is built, so the truth and the
events agree by construction.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import random
import statistics
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from platform_stub.config import PlayerConfig
from platform_stub.encoding import event_line, uuid4_from
from platform_stub.error_codes import ErrorTable, InjectedError, Phase
from platform_stub.population import CONNECTION_KBPS, Device, Member, Oca, Population, Title
from platform_stub.scenarios import Fault
from platform_stub.truth import SessionTruth

SessionEvents = Generator[tuple[int, str], None, None]

_PLAY, _STALL, _SEEK, _PAUSE = 0, 1, 2, 3
_STARTUP_PHASES: tuple[Phase, ...] = ("play", "manifest", "license", "segments", "first_frame")
_ORIGIN_THROUGHPUT = 0.6  # origin is farther away and shared: less throughput than an edge
# Standard normal quantiles, indexed by 12 random bits: per-tick noise without the cost of
# `random.gauss` (the walk needs a bell shape, not exact tails).
_NORMALS = tuple(statistics.NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096))


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


class SessionState:
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
        "plan",
        "rebuffer_count",
        "rebuffer_ms",
        "startup_ms",
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
        self.affected = False

    def truth(self, pending: str | None = None) -> SessionTruth:
        """The truth record of what has been emitted.

        `pending` is the session's next line when the run stopped before emitting it: the
        generator has already counted it, so its effect is taken back here and the record
        is marked incomplete.
        """
        if pending is not None:
            return self._without(pending)
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
            oca_id=p.oca.oca_id,
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

    def _without(self, pending: str) -> SessionTruth:
        event = json.loads(pending)
        kind, payload = event["event_type"], event["payload"]
        record = self.truth()
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


def _lognormal_ms(rng: random.Random, median_ms: float, sigma: float) -> int:
    return int(median_ms * math.exp(sigma * rng.gauss(0.0, 1.0)))


def play(plan: SessionPlan, world: PlayerWorld, state: SessionState) -> SessionEvents:  # noqa: C901, PLR0915  (s2-control splits it, issue 15)
    """Simulate one session, yielding (event_ms, event_json) in time order.

    The generator records everything in `state`; it returns when the session has ended.
    """
    cfg = world.config
    fault = world.fault
    rng = world.rng if world.rng is not None else random.Random(plan.seed)
    rand = rng.random
    gauss = rng.gauss
    member, device, title = plan.member, plan.device, plan.title
    family = device.family
    device_type = family.device_type
    ids_json = (
        f'"member_id":{json.dumps(member.member_id)},"profile_id":{json.dumps(plan.profile_id)},'
        f'"session_id":"{plan.session_id}","title_id":{json.dumps(title.title_id)},'
    )
    device_json = world.device_json(device)

    def envelope(oca: Oca) -> str:
        network = world.network_json(member, oca, plan.connection_type)
        return f'{ids_json}"device":{device_json},"network":{network}'

    env = envelope(plan.oca)

    def line(t: float, event_type: str, payload: str) -> str:
        state.events += 1
        state.ended_ms = int(t)
        return event_line(uuid4_from(rng), event_type, int(t), env, payload)

    def error(t: float, err: InjectedError) -> str:
        state.error_codes.append(err.code)
        if err.fatal:
            state.fatal_code = err.code
            if state.first_frame:
                state.fatal_after_start = True
            else:
                state.fatal_before_start = True
        return line(t, "error", err.payload_json())

    def end(t: float, reason: str) -> str:
        state.exit_reason = reason
        if reason == "abandoned_startup":
            state.exit_before_start = True
        watched = int(state.watch_ms)
        return line(
            t, "playback_end", f'{{"event_type":"playback_end","watched_ms":{watched},'
            f'"exit_reason":"{reason}"}}'
        )  # fmt: skip

    def startup_error(phase: Phase) -> InjectedError | None:
        for err in world.startup_errors[(phase, device_type)]:
            if rand() < err.rate:
                return err
        return None

    # ---- startup ------------------------------------------------------------------------
    t0 = plan.t0_ms
    patience = t0 + _lognormal_ms(rng, cfg.startup_patience_median_s * 1000, 0.6)
    if rand() < cfg.change_mind_p:
        patience = min(patience, t0 + rng.randint(300, 4_000))
    yield t0, line(
        t0, "play_requested", f'{{"event_type":"play_requested","autoplay":'
        f'{"true" if plan.autoplay else "false"},"resume_position_ms":{plan.resume_position_ms}}}'
    )  # fmt: skip

    crash_after_start_ms = -1
    err = startup_error("play")
    if (
        fault is not None
        and fault.kind == "bad_app_release"
        and device.app_version == fault.value
        and fault.active(t0)
        and rand() < fault.fail_p
    ):
        state.affected = True
        crash = world.errors.fault("bad_app_release", fatal=True)
        # Most crashes hit on play; some right after the first frames render.
        if rand() < 0.7:
            err = crash
        else:
            crash_after_start_ms = rng.randint(1_000, 45_000)
    if err is not None:
        t = t0 + rng.randint(80, 900)
        if patience > t:
            yield int(t), error(t, err)
            yield int(t), end(t, "error")
            return
        yield patience, end(patience, "abandoned_startup")
        return

    t = t0 + _lognormal_ms(rng, 260, 0.45)
    if patience <= t:
        yield patience, end(patience, "abandoned_startup")
        return
    err = startup_error("manifest")
    if err is not None:
        yield t, error(t, err)
        yield t, end(t, "error")
        return
    ladder = tuple(k for k in title.ladder_kbps if k <= min(member.max_kbps, family.max_kbps))
    yield t, line(
        t, "manifest_loaded",
        f'{{"event_type":"manifest_loaded","latency_ms":{t - t0},"renditions":{len(ladder)}}}',
    )  # fmt: skip

    t_license = t
    t += _lognormal_ms(rng, 300, 0.5)
    err = startup_error("license")
    if (
        fault is not None
        and fault.kind == "drm_license_outage"
        and family.os == fault.value
        and fault.active(t_license)
    ):
        state.affected = True
        if rand() < fault.fail_p:
            err = world.errors.fault("drm_license_outage", fatal=True)
            t += rng.randint(3_000, 9_000)  # the player times out and retries before giving up
        else:
            t += rng.randint(1_500, 5_000)  # a retry got through
    if patience <= t:
        yield patience, end(patience, "abandoned_startup")
        return
    if err is not None:
        yield t, error(t, err)
        yield t, end(t, "error")
        return
    yield t, line(
        t, "license_acquired",
        f'{{"event_type":"license_acquired","latency_ms":{t - t_license},"drm":"{family.drm}"}}',
    )  # fmt: skip

    # Throughput: per-session base level, then a mean-reverting walk in log space.
    base_kbps = (
        CONNECTION_KBPS[plan.connection_type] * member.isp.quality * rng.lognormvariate(0.0, 0.55)
    )
    if plan.oca.cdn_tier == "origin":
        base_kbps *= _ORIGIN_THROUGHPUT
    congested = (
        fault is not None and fault.kind == "isp_congestion" and member.isp.name == fault.value
    )
    level = 0.35 * gauss(0.0, 1.0)
    thr = base_kbps * math.exp(level)
    if congested and fault is not None and fault.active(t):
        state.affected = True
        thr *= fault.throughput_factor
    est = thr * rng.uniform(0.7, 1.1)
    br = ladder[
        max(0, bisect.bisect_right(ladder, min(cfg.startup_bitrate_cap_kbps, 0.5 * est)) - 1)
    ]

    err = startup_error("segments")
    if (
        fault is not None
        and fault.kind == "oca_outage"
        and plan.oca.oca_id == fault.value
        and fault.active(t)
    ):
        state.affected = True
        if rand() < fault.fail_p:
            err = world.errors.fault("oca_outage", fatal=True)
            t += rng.randint(3_000, 8_000)
        else:
            # Segment requests time out, then the player fails over to the origin.
            t += rng.randint(2_000, 5_000)
            if patience <= t:
                yield patience, end(patience, "abandoned_startup")
                return
            yield t, error(t, world.errors.fault("oca_outage_warning", fatal=False))
            origin = world.origins[member.region]
            env = envelope(origin)
            state.final_oca_id = origin.oca_id
            base_kbps *= _ORIGIN_THROUGHPUT
            thr *= _ORIGIN_THROUGHPUT
            est *= _ORIGIN_THROUGHPUT
            br = ladder[max(0, bisect.bisect_right(ladder, 0.5 * est) - 1)]
    if err is not None:
        if patience <= t:
            yield patience, end(patience, "abandoned_startup")
            return
        yield t, error(t, err)
        yield t, end(t, "error")
        return

    t += int(cfg.segment_ms * br / thr) + _lognormal_ms(rng, 60, 0.5) + _lognormal_ms(rng, 350, 0.4)
    if patience <= t:
        yield patience, end(patience, "abandoned_startup")
        return
    err = startup_error("first_frame")
    if err is not None:
        yield t, error(t, err)
        yield t, end(t, "error")
        return
    state.first_frame = True
    state.startup_ms = t - t0
    yield t, line(
        t, "first_frame",
        f'{{"event_type":"first_frame","startup_ms":{t - t0},"bitrate_kbps":{br}}}',
    )  # fmt: skip

    # ---- playback -----------------------------------------------------------------------
    tick = cfg.tick_ms
    runtime_left = max(1_000, title.runtime_ms - plan.resume_position_ms)
    want = min(runtime_left, _lognormal_ms(rng, cfg.watch_median_s * 1000, cfg.watch_sigma) + 1_000)
    completes = want >= runtime_left
    top_kbps = ladder[-1]
    lowest = ladder[0]
    err_rate_ms, err_entries, err_cum = world.playback_errors[device_type]
    p_err = err_rate_ms * tick
    p_pause = cfg.pause_per_hour * tick / 3_600_000
    p_seek = cfg.seek_per_hour * tick / 3_600_000
    stall_patience = _lognormal_ms(rng, cfg.stall_patience_median_s * 1000, 0.5)
    max_buffer = cfg.max_buffer_ms
    resume_buffer = cfg.resume_buffer_ms
    safety = cfg.abr_safety
    alpha = cfg.abr_ewma_alpha
    buffer = float(cfg.segment_ms)
    watch = 0.0
    kbps_ms = 0.0
    seek_offset = 0
    mode = _PLAY
    stall_start = 0.0
    pause_start = 0
    pause_end = 0
    since_switch = 0
    dip_ticks = 0
    # Log-throughput walk: correlation 0.9 per 2 s whatever the tick, stationary sd 0.5.
    rho = 0.9 ** (tick / 2_000)
    walk_sd = 0.5 * math.sqrt(1 - rho * rho)
    normals = _NORMALS
    bits = rng.getrandbits
    dip_depth = 1.0
    p_dip = cfg.dip_per_hour * tick / 3_600_000
    dip_median_ticks = cfg.dip_median_s * 1000 / tick
    next_hb = t + cfg.heartbeat_ms
    crash_at = t + crash_after_start_ms if crash_after_start_ms >= 0 else -1

    def switch(now: float, to_kbps: int) -> str:
        if to_kbps > br:
            state.upshifts += 1
        else:
            state.downshifts += 1
        return line(
            now, "bitrate_change",
            f'{{"event_type":"bitrate_change","from_kbps":{br},"to_kbps":{to_kbps}}}',
        )  # fmt: skip

    while True:
        t_end = t + tick
        # Throughput for this tick: the walk, short Wi-Fi/cell dips, and any congestion.
        level = rho * level + walk_sd * normals[bits(12)]
        thr = base_kbps * math.exp(level)
        if dip_ticks > 0:
            # Wi-Fi interference, a cell handover, a neighbour's upload: the link nearly stops.
            dip_ticks -= 1
            thr *= dip_depth
        elif rand() < p_dip:
            dip_ticks = 1 + _lognormal_ms(rng, dip_median_ticks, 0.8)
            dip_depth = rng.uniform(0.0, 2.0 * cfg.dip_factor)
        if congested and fault is not None and fault.active(t):
            state.affected = True
            thr *= fault.throughput_factor * rng.lognormvariate(0.0, 0.6)
        est += alpha * (thr - est)

        if mode == _PLAY:
            if crash_at >= 0 and t >= crash_at:
                state.watch_ms, state.kbps_ms = watch, kbps_ms
                yield t, error(t, world.errors.fault("bad_app_release", fatal=True))
                yield t, end(t, "error")
                return
            u = rand()
            if u < p_err:
                err = err_entries[bisect.bisect_left(err_cum, rand() * err_cum[-1])]
                state.watch_ms, state.kbps_ms = watch, kbps_ms
                yield t, error(t, err)
                if err.fatal:
                    yield t, end(t, "error")
                    return
            elif u < p_err + p_pause:
                mode = _PAUSE
                pause_start = t
                pause_end = t + min(900_000, _lognormal_ms(rng, cfg.pause_median_s * 1000, 1.0))
                position = plan.resume_position_ms + int(watch) + seek_offset
                yield t, line(t, "pause", f'{{"event_type":"pause","position_ms":{position}}}')
            elif u < p_err + p_pause + p_seek:
                position = plan.resume_position_ms + int(watch) + seek_offset
                target = max(
                    0, min(title.runtime_ms - 60_000, position + rng.randint(-600_000, 900_000))
                )
                seek_offset += target - position
                mode = _SEEK
                buffer = 0.0
                yield t, line(
                    t, "seek", f'{{"event_type":"seek","from_ms":{position},"to_ms":{target}}}'
                )  # fmt: skip

        now = float(t)
        while now < t_end:
            span = t_end - now
            fill = thr / br
            if mode == _PLAY:
                if buffer >= max_buffer and fill > 1.0:
                    fill = 1.0  # buffer full: the player only downloads what it plays
                drain = 1.0 - fill
                left = want - watch
                if drain <= 0.0 or buffer > drain * span:
                    run = min(span, left)
                    buffer = min(float(max_buffer), buffer - drain * run)
                    watch += run
                    kbps_ms += br * run
                    now += run
                else:
                    run = min(buffer / drain, left)
                    buffer = max(0.0, buffer - drain * run)
                    watch += run
                    kbps_ms += br * run
                    now += run
                    if watch < want:
                        mode = _STALL
                        stall_start = now
                        state.rebuffer_count += 1
                        position = plan.resume_position_ms + int(watch) + seek_offset
                        yield int(now), line(
                            now, "rebuffer_start",
                            f'{{"event_type":"rebuffer_start","position_ms":{position}}}',
                        )  # fmt: skip
                        if thr < lowest:
                            collapse = world.errors.fault("isp_congestion", fatal=False)
                            yield int(now), error(now, collapse)
                        # Emergency downshift: the buffer is empty, take what the link carries.
                        to = ladder[max(0, bisect.bisect_right(ladder, safety * est) - 1)]
                        if to < br:
                            yield int(now), switch(now, to)
                            br = to
                            since_switch = 0
                if watch >= want:
                    state.watch_ms, state.kbps_ms = watch, kbps_ms
                    yield int(now), end(now, "completed" if completes else "user_exit")
                    return
            elif mode in (_STALL, _SEEK):
                need = resume_buffer - buffer
                t_fill = need / fill
                if mode == _STALL and now + min(t_fill, span) - stall_start > stall_patience:
                    # The viewer gives up waiting.
                    quit_at = stall_start + stall_patience
                    if quit_at <= now + min(t_fill, span):
                        stalled = int(quit_at) - int(stall_start)
                        state.rebuffer_ms += stalled
                        state.watch_ms, state.kbps_ms = watch, kbps_ms
                        yield int(quit_at), line(
                            quit_at, "rebuffer_end",
                            f'{{"event_type":"rebuffer_end","duration_ms":{stalled}}}',
                        )  # fmt: skip
                        yield int(quit_at), end(quit_at, "user_exit")
                        return
                if t_fill <= span:
                    now += t_fill
                    buffer = float(resume_buffer)
                    if mode == _STALL:
                        stalled = int(now) - int(stall_start)
                        state.rebuffer_ms += stalled
                        yield int(now), line(
                            now, "rebuffer_end",
                            f'{{"event_type":"rebuffer_end","duration_ms":{stalled}}}',
                        )  # fmt: skip
                    mode = _PLAY
                else:
                    buffer += fill * span
                    now = t_end
            else:  # paused: the buffer tops up, nothing plays
                buffer = min(float(max_buffer), buffer + fill * span)
                if pause_end <= t_end:
                    now = float(pause_end)
                    mode = _PLAY
                    yield pause_end, line(
                        pause_end, "resume",
                        f'{{"event_type":"resume","paused_ms":{pause_end - pause_start}}}',
                    )  # fmt: skip
                else:
                    now = t_end

        # ABR decision at the end of the tick, with hysteresis.
        since_switch += 1
        if mode == _PLAY:
            to = ladder[max(0, bisect.bisect_right(ladder, safety * est) - 1)]
            if to > br:
                if buffer >= cfg.abr_upshift_buffer_ms and since_switch >= cfg.abr_hold_ticks:
                    to = min(to, top_kbps)
                    yield t_end, switch(t_end, to)
                    br = to
                    since_switch = 0
            elif to < br and (br > 0.95 * est or buffer < cfg.abr_panic_buffer_ms):
                yield t_end, switch(t_end, to)
                br = to
                since_switch = 0

        if t_end >= next_hb:
            next_hb += cfg.heartbeat_ms
            dropped = 0 if rand() < 0.8 else int(rng.expovariate(0.25))
            position = plan.resume_position_ms + int(watch) + seek_offset
            playing = "false" if mode == _PAUSE else "true"
            state.watch_ms, state.kbps_ms = watch, kbps_ms
            yield t_end, line(
                t_end, "heartbeat",
                f'{{"event_type":"heartbeat","bitrate_kbps":{br},"buffer_ms":{int(buffer)},'
                f'"throughput_kbps":{int(est)},"dropped_frames":{dropped},'
                f'"position_ms":{position},"playing":{playing}}}',
            )  # fmt: skip
        t = t_end
