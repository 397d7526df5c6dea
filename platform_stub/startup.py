"""A session's startup: play pressed -> manifest -> license -> first segments -> first frame.

Each phase is a small generator that yields the session's events and returns how it ended:
`None` when the session is over (a fatal error, or the viewer gave up), else the time the
next phase starts. With the control plane on, POST /play (gateway, playback, manifest,
steering) and POST /license are simulated service calls whose latency is the player's
wait and whose failure is the player's error; without it, the player draws those waits
itself (the original model, byte for byte).
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Generator
from typing import TYPE_CHECKING

from platform_stub.encoding import SECOND_PREFIXES, V4_CLEAR, V4_SET, second_prefix
from platform_stub.error_codes import InjectedError, Phase
from platform_stub.population import CONNECTION_KBPS, REGIONS, Oca

if TYPE_CHECKING:
    from platform_stub.control_plane.plane import ControlPlane, PlayStart
    from platform_stub.player import PlayerWorld, SessionPlan, SessionProgress

Lines = Generator[tuple[int, str], None, None]
_ORIGIN_THROUGHPUT = 0.6  # origin is farther away and shared: less throughput than an edge
# An OCA in another part of the world: long round trips cap TCP throughput.
_DISTANT_THROUGHPUT = 0.2


def lognormal_ms(rng: random.Random, median_ms: float, sigma: float) -> int:
    """A log-normal duration in ms around `median_ms`."""
    return int(median_ms * math.exp(sigma * rng.gauss(0.0, 1.0)))


def distant_oca_id(region: str) -> str:
    """The exchange OCA half the world away from `region` (where a broken steering sends
    members when it falls back to its static list)."""
    names = [r.name for r in REGIONS]
    far = names[(names.index(region) + len(names) // 2) % len(names)]
    return f"oca-ix-{far}-01"


class Link:
    """The session's network path at first frame: throughput walk state and bitrate."""

    __slots__ = ("base_kbps", "br", "congested", "est", "ladder", "level", "thr")

    def __init__(self, ladder: tuple[int, ...]) -> None:
        self.ladder = ladder
        self.base_kbps = 0.0
        self.level = 0.0
        self.thr = 0.0
        self.est = 0.0
        self.br = ladder[0]
        self.congested = False

    def rung(self, kbps: float) -> int:
        """The highest rung at or below `kbps` (the lowest if none)."""
        return self.ladder[max(0, bisect.bisect_right(self.ladder, kbps) - 1)]


class Session:
    """One session's fixed context and its event encoding (the startup's `self`)."""

    __slots__ = (
        "cfg", "crash_after_ms", "device_type", "env", "ids_json", "ladder", "oca", "patience",
        "plan", "rng", "start", "state", "world",
    )  # fmt: skip

    def __init__(self, plan: SessionPlan, world: PlayerWorld, state: SessionProgress) -> None:
        self.plan = plan
        self.world = world
        self.state = state
        self.cfg = world.config
        self.rng = world.rng if world.rng is not None else random.Random(plan.seed)
        self.device_type = plan.device.family.device_type
        self.ids_json = (
            f'"member_id":{json.dumps(plan.member.member_id)},'
            f'"profile_id":{json.dumps(plan.profile_id)},'
            f'"session_id":"{plan.session_id}","title_id":{json.dumps(plan.title.title_id)},'
        )
        self.oca = plan.oca
        self.start: PlayStart | None = None
        self.crash_after_ms = -1
        self.patience = 0
        self.ladder: tuple[int, ...] = ()
        self.env = self.envelope(plan.oca)

    def envelope(self, oca: Oca) -> str:
        """The ids, device and network part of every event of this session."""
        network = self.world.network_json(self.plan.member, oca, self.plan.connection_type)
        device = self.world.device_json(self.plan.device)
        return f'{self.ids_json}"device":{device},"network":{network}'

    def serve_from(self, oca: Oca) -> None:
        """From now on the session's segments (and events) come from `oca`."""
        self.oca = oca
        self.env = self.envelope(oca)

    def line(self, t: float, event_type: str, payload: str) -> str:
        """One event of this session (counted in the state)."""
        state = self.state
        if state.final_oca_id != self.oca.oca_id:
            # The first event from the OCA the session failed over to: from here on the
            # truth's final OCA is that one (unless this event is taken back, see truth()).
            state.switched_at = state.events
            state.final_oca_id = self.oca.oca_id
        state.events += 1
        ms = state.ended_ms = int(t)
        # `event_line(uuid4_from(rng), ...)` written out: one call per event instead of four.
        h = ((self.rng.getrandbits(128) & V4_CLEAR) | V4_SET).to_bytes(16, "big").hex()
        sec, milli = divmod(ms, 1000)
        prefix = SECOND_PREFIXES.get(sec)
        if prefix is None:
            prefix = second_prefix(sec)
        return (
            f'{{"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'
            f'"event_type":"{event_type}","schema_version":1,"event_time":"{prefix}{milli:03d}Z",'
            f'{self.env},"payload":{payload}}}'
        )

    def error(self, t: float, err: InjectedError) -> str:
        """An error event; a fatal one marks the session failed."""
        state = self.state
        state.error_codes.append(err.code)
        if err.fatal:
            state.fatal_code = err.code
            if state.first_frame:
                state.fatal_after_start = True
            else:
                state.fatal_before_start = True
        return self.line(t, "error", err.payload_json())

    def end(self, t: float, reason: str) -> str:
        """The playback_end event."""
        state = self.state
        state.exit_reason = reason
        if reason == "abandoned_startup":
            state.exit_before_start = True
        watched = int(state.watch_ms)
        return self.line(
            t, "playback_end", f'{{"event_type":"playback_end","watched_ms":{watched},'
            f'"exit_reason":"{reason}"}}'
        )  # fmt: skip

    def startup_error(self, phase: Phase) -> InjectedError | None:
        """A background error of this phase, if one strikes."""
        rand = self.rng.random
        for err in self.world.startup_errors[(phase, self.device_type)]:
            if rand() < err.rate:
                return err
        return None

    def fail(self, t: int, err: InjectedError | None) -> Lines:
        """End the startup: gave up waiting if patience ran out first, else the error."""
        if self.patience <= t:
            yield self.patience, self.end(self.patience, "abandoned_startup")
        elif err is not None:
            yield t, self.error(t, err)
            yield t, self.end(t, "error")


def _fault_kind(s: Session, kind: str, t: int) -> bool:
    fault = s.world.fault
    return fault is not None and fault.kind == kind and fault.active(t)


def press_play(s: Session) -> Generator[tuple[int, str], None, bool]:
    """play_requested, the control plane's POST /play, a crash on play: True to go on."""
    plan, rng, cfg = s.plan, s.rng, s.cfg
    t0 = plan.t0_ms
    s.patience = t0 + lognormal_ms(rng, cfg.startup_patience_median_s * 1000, 0.6)
    if rng.random() < cfg.change_mind_p:
        s.patience = min(s.patience, t0 + rng.randint(300, 4_000))
    control = s.world.control
    if control is not None:
        _call_play(s, control)
    yield t0, s.line(
        t0, "play_requested", f'{{"event_type":"play_requested","autoplay":'
        f'{"true" if plan.autoplay else "false"},"resume_position_ms":{plan.resume_position_ms}}}'
    )  # fmt: skip
    err = s.startup_error("play")
    fault = s.world.fault
    if (
        fault is not None
        and _fault_kind(s, "bad_app_release", t0)
        and plan.device.app_version == fault.value
        and rng.random() < fault.fail_p
    ):
        s.state.affected = True
        crash = s.world.errors.fault("bad_app_release", fatal=True)
        # Most crashes hit on play; some right after the first frames render.
        if rng.random() < 0.7:
            err = crash
        else:
            s.crash_after_ms = rng.randint(1_000, 45_000)
    if err is None:
        return True
    yield from s.fail(t0 + rng.randint(80, 900), err)
    return False


def _call_play(s: Session, control: ControlPlane) -> None:
    plan, member = s.plan, s.plan.member
    control.member_requests(member.member_id, member.region, member.country, plan.t0_ms)
    start = s.start = control.start_play(
        plan.session_id, member.member_id, member.region, member.country, plan.t0_ms
    )
    if control.struck:
        s.state.affected = True
    if start.steering_fallback:
        s.serve_from(s.world.population.ocas[distant_oca_id(member.region)])
        # The session's OCA from its first event on.
        s.state.oca_id = s.state.final_oca_id = s.oca.oca_id


def load_manifest(s: Session) -> Generator[tuple[int, str], None, int | None]:
    """manifest_loaded after the play call (or the player's own wait): its time, or None."""
    t0 = s.plan.t0_ms
    err = None
    if s.start is None:
        t = t0 + lognormal_ms(s.rng, 260, 0.45)
    else:
        t = s.start.ready_ms
        if not s.start.ok:
            errors = s.world.startup_errors[("manifest", s.device_type)]
            err = errors[0] if errors else None
    if s.patience <= t:
        yield from s.fail(t, None)
        return None
    err = err or s.startup_error("manifest")
    if err is not None:
        yield from s.fail(t, err)
        return None
    family, member = s.plan.device.family, s.plan.member
    ladder = tuple(
        k for k in s.plan.title.ladder_kbps if k <= min(member.max_kbps, family.max_kbps)
    )
    s.ladder = ladder
    yield t, s.line(
        t, "manifest_loaded",
        f'{{"event_type":"manifest_loaded","latency_ms":{t - t0},"renditions":{len(ladder)}}}',
    )  # fmt: skip
    return t


def acquire_license(s: Session, t: int) -> Generator[tuple[int, str], None, int | None]:
    """license_acquired (DRM) after POST /license or the player's own wait; or None."""
    rng = s.rng
    t_license = t
    control = s.world.control
    control_failed = False
    if control is None:
        t += lognormal_ms(rng, 300, 0.5)
    else:
        member = s.plan.member
        result = control.license(
            s.plan.session_id, member.member_id, member.region, member.country, t
        )
        if control.struck:
            s.state.affected = True
        t, control_failed = result.done_ms, not result.ok
    err = s.startup_error("license")
    fault = s.world.fault
    if (
        fault is not None
        and _fault_kind(s, "drm_license_outage", t_license)
        and s.plan.device.family.os == fault.value
    ):
        s.state.affected = True
        if rng.random() < fault.fail_p:
            err = s.world.errors.fault("drm_license_outage", fatal=True)
            t += rng.randint(3_000, 9_000)  # the player times out and retries before giving up
        else:
            t += rng.randint(1_500, 5_000)  # a retry got through
    if control_failed:
        err = s.world.errors.fault("drm_license_outage", fatal=True)
    if s.patience <= t or err is not None:
        yield from s.fail(t, err)
        return None
    drm = s.plan.device.family.drm
    yield t, s.line(
        t, "license_acquired",
        f'{{"event_type":"license_acquired","latency_ms":{t - t_license},"drm":"{drm}"}}',
    )  # fmt: skip
    return t


def open_link(s: Session, t: int) -> Link:
    """The throughput at first segment: the session's base level, then the walk's start."""
    rng, plan, fault = s.rng, s.plan, s.world.fault
    link = Link(s.ladder)
    member = plan.member
    base = (
        CONNECTION_KBPS[plan.connection_type] * member.isp.quality * rng.lognormvariate(0.0, 0.55)
    )
    if plan.oca.cdn_tier == "origin":
        base *= _ORIGIN_THROUGHPUT
    if s.oca is not plan.oca:  # steering sent the session to a distant OCA
        base *= _DISTANT_THROUGHPUT
    link.base_kbps = base
    link.congested = (
        fault is not None and fault.kind == "isp_congestion" and member.isp.name == fault.value
    )
    link.level = 0.35 * rng.gauss(0.0, 1.0)
    link.thr = base * math.exp(link.level)
    if link.congested and fault is not None and fault.active(t):
        s.state.affected = True
        link.thr *= fault.throughput_factor
    link.est = link.thr * rng.uniform(0.7, 1.1)
    link.br = link.rung(min(s.cfg.startup_bitrate_cap_kbps, 0.5 * link.est))
    return link


def first_segments(s: Session, t: int, link: Link) -> Generator[tuple[int, str], None, int | None]:
    """The first segments from the OCA (failing over to origin on an outage); or None."""
    rng = s.rng
    err = s.startup_error("segments")
    fault = s.world.fault
    if fault is not None and _fault_kind(s, "oca_outage", t) and s.oca.oca_id == fault.value:
        s.state.affected = True
        if rng.random() < fault.fail_p:
            err = s.world.errors.fault("oca_outage", fatal=True)
            t += rng.randint(3_000, 8_000)
        else:
            # Segment requests time out, then the player fails over to the origin.
            t += rng.randint(2_000, 5_000)
            if s.patience <= t:
                yield from s.fail(t, None)
                return None
            yield t, s.error(t, s.world.errors.fault("oca_outage_warning", fatal=False))
            s.serve_from(s.world.origins[s.plan.member.region])
            link.base_kbps *= _ORIGIN_THROUGHPUT
            link.thr *= _ORIGIN_THROUGHPUT
            link.est *= _ORIGIN_THROUGHPUT
            link.br = link.rung(0.5 * link.est)
    if err is not None:
        yield from s.fail(t, err)
        return None
    return t


def first_frame(s: Session, t: int, link: Link) -> Generator[tuple[int, str], None, int | None]:
    """first_frame once a segment is in and decoded; or None."""
    rng, cfg = s.rng, s.cfg
    t += (
        int(cfg.segment_ms * link.br / link.thr)
        + lognormal_ms(rng, 60, 0.5)
        + lognormal_ms(rng, 350, 0.4)
    )
    if s.patience <= t:
        yield from s.fail(t, None)
        return None
    err = s.startup_error("first_frame")
    if err is not None:
        yield from s.fail(t, err)
        return None
    t0 = s.plan.t0_ms
    s.state.first_frame = True
    s.state.startup_ms = t - t0
    yield t, s.line(
        t, "first_frame",
        f'{{"event_type":"first_frame","startup_ms":{t - t0},"bitrate_kbps":{link.br}}}',
    )  # fmt: skip
    return t


def startup(s: Session) -> Generator[tuple[int, str], None, tuple[int, Link] | None]:
    """Every startup phase in order: (first frame time, link), or None if the session ended."""
    if not (yield from press_play(s)):
        return None
    t = yield from load_manifest(s)
    if t is None:
        return None
    t = yield from acquire_license(s, t)
    if t is None:
        return None
    link = open_link(s, t)
    t = yield from first_segments(s, t, link)
    if t is None:
        return None
    t = yield from first_frame(s, t, link)
    return None if t is None else (t, link)
