"""A session after its first frame: ticks of throughput, buffer, ABR and the viewer.

Playback advances in ticks (`PlayerConfig.tick_ms`). Each tick moves a throughput random
walk, fills the buffer at throughput / bitrate and drains it in real time while playing;
an empty buffer is a rebuffer, which lasts until one segment is buffered again. ABR picks
rungs from the title's ladder with hysteresis. The steps are methods that append the
events they emit to `out`; `run` yields them in order and stops once `done`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator

from platform_stub.encoding import NORMALS
from platform_stub.startup import Link, Session, lognormal_ms

_PLAY, _STALL, _SEEK, _PAUSE = 0, 1, 2, 3


class Playback:
    """The mutable state of one session's playback, and one step per method."""

    __slots__ = (
        "buffer",
        "completes",
        "crash_at",
        "dip_depth",
        "dip_ticks",
        "done",
        "kbps_ms",
        "link",
        "mode",
        "next_hb",
        "out",
        "p_any",
        "p_dip",
        "p_err",
        "p_pause",
        "pause_end",
        "pause_start",
        "rho",
        "s",
        "seek_offset",
        "since_switch",
        "stall_patience",
        "stall_start",
        "walk_sd",
        "want",
        "watch",
    )  # fmt: skip

    def __init__(self, s: Session, t: int, link: Link) -> None:
        cfg = s.cfg
        plan = s.plan
        self.s = s
        self.link = link
        runtime_left = max(1_000, plan.title.runtime_ms - plan.resume_position_ms)
        self.want = min(
            runtime_left, lognormal_ms(s.rng, cfg.watch_median_s * 1000, cfg.watch_sigma) + 1_000
        )
        self.completes = self.want >= runtime_left
        self.stall_patience = lognormal_ms(s.rng, cfg.stall_patience_median_s * 1000, 0.5)
        self.buffer = float(cfg.segment_ms)
        self.watch = 0.0
        self.kbps_ms = 0.0
        self.seek_offset = 0
        self.mode = _PLAY
        self.stall_start = 0.0
        self.pause_start = 0
        self.pause_end = 0
        self.since_switch = 0
        self.dip_ticks = 0
        self.dip_depth = 1.0
        # Log-throughput walk: correlation 0.9 per 2 s whatever the tick, stationary sd 0.5.
        self.rho = 0.9 ** (cfg.tick_ms / 2_000)
        self.walk_sd = 0.5 * math.sqrt(1 - self.rho * self.rho)
        # Per-tick probabilities, computed once (the same expressions the steps used inline).
        self.p_dip = cfg.dip_per_hour * cfg.tick_ms / 3_600_000
        self.p_err = s.world.playback_errors[s.device_type][0] * cfg.tick_ms
        self.p_pause = cfg.pause_per_hour * cfg.tick_ms / 3_600_000
        self.p_any = self.p_err + self.p_pause + cfg.seek_per_hour * cfg.tick_ms / 3_600_000
        self.next_hb = t + cfg.heartbeat_ms
        self.crash_at = t + s.crash_after_ms if s.crash_after_ms >= 0 else -1
        self.out: list[tuple[int, str]] = []
        s.state.unsent = self.out
        self.done = False

    # ---- helpers ------------------------------------------------------------------------

    def _position(self) -> int:
        return self.s.plan.resume_position_ms + int(self.watch) + self.seek_offset

    def _sync(self) -> None:
        self.s.state.watch_ms, self.s.state.kbps_ms = self.watch, self.kbps_ms

    def _finish(self, t: float, reason: str) -> None:
        self._sync()
        self.out.append((int(t), self.s.end(t, reason)))
        self.done = True

    def _switch(self, now: float, to_kbps: int) -> None:
        link, state = self.link, self.s.state
        if to_kbps > link.br:
            state.upshifts += 1
        else:
            state.downshifts += 1
        self.out.append((int(now), self.s.line(
            now, "bitrate_change",
            f'{{"event_type":"bitrate_change","from_kbps":{link.br},"to_kbps":{to_kbps}}}',
        )))  # fmt: skip
        link.br = to_kbps
        self.since_switch = 0

    # ---- one tick -----------------------------------------------------------------------

    def throughput(self, t: int) -> None:
        """This tick's throughput: the walk, short Wi-Fi/cell dips, and any congestion."""
        s, link = self.s, self.link
        rng = s.rng
        level = link.level = self.rho * link.level + self.walk_sd * NORMALS[rng.getrandbits(12)]
        thr = link.base_kbps * math.exp(level)
        if self.dip_ticks > 0:
            # Wi-Fi interference, a cell handover, a neighbour's upload: the link nearly stops.
            self.dip_ticks -= 1
            thr *= self.dip_depth
        elif rng.random() < self.p_dip:
            cfg = s.cfg
            self.dip_ticks = 1 + lognormal_ms(rng, cfg.dip_median_s * 1000 / cfg.tick_ms, 0.8)
            self.dip_depth = rng.uniform(0.0, 2.0 * cfg.dip_factor)
        if link.congested:
            fault = s.world.fault
            if fault is not None and fault.active(t):
                s.state.affected = True
                thr *= fault.throughput_factor * rng.lognormvariate(0.0, 0.6)
        link.thr = thr
        link.est += s.cfg.abr_ewma_alpha * (thr - link.est)

    def viewer(self, t: int) -> None:
        """While playing: a crash, an error, a pause or a seek may happen this tick."""
        s = self.s
        if self.crash_at >= 0 and t >= self.crash_at:
            self._sync()
            self.out.append((t, s.error(t, s.world.errors.fault("bad_app_release", fatal=True))))
            self._finish(t, "error")
            return
        rng = s.rng
        u = rng.random()
        if u >= self.p_any:
            return  # nearly every tick: nothing happens
        cfg = s.cfg
        _, err_entries, err_cum = s.world.playback_errors[s.device_type]
        p_err, p_pause = self.p_err, self.p_pause
        if u < p_err:
            err = err_entries[bisect.bisect_left(err_cum, rng.random() * err_cum[-1])]
            self._sync()
            self.out.append((t, s.error(t, err)))
            if err.fatal:
                self._finish(t, "error")
        elif u < p_err + p_pause:
            self.mode = _PAUSE
            self.pause_start = t
            self.pause_end = t + min(900_000, lognormal_ms(rng, cfg.pause_median_s * 1000, 1.0))
            payload = f'{{"event_type":"pause","position_ms":{self._position()}}}'
            self.out.append((t, s.line(t, "pause", payload)))
        else:
            self._seek(t)

    def _seek(self, t: int) -> None:
        s = self.s
        position = self._position()
        runtime = s.plan.title.runtime_ms
        target = max(0, min(runtime - 60_000, position + s.rng.randint(-600_000, 900_000)))
        self.seek_offset += target - position
        self.mode = _SEEK
        self.buffer = 0.0
        payload = f'{{"event_type":"seek","from_ms":{position},"to_ms":{target}}}'
        self.out.append((t, s.line(t, "seek", payload)))

    def advance(self, t: int, t_end: int) -> None:
        """Play, wait for the buffer or stay paused until the end of the tick."""
        now = float(t)
        while now < t_end and not self.done:
            if self.mode == _PLAY:
                now = self._play(now, t_end)
            elif self.mode == _PAUSE:
                now = self._paused(now, t_end)
            else:
                now = self._wait(now, t_end)

    def _play(self, now: float, t_end: int) -> float:
        """Play from `now`: drain the buffer; stall when it runs dry; end when watched."""
        link = self.link
        max_buffer = self.s.cfg.max_buffer_ms
        left_ms = t_end - now
        br = link.br
        fill = link.thr / br
        buffer = self.buffer
        if buffer >= max_buffer and fill > 1.0:
            fill = 1.0  # buffer full: the player only downloads what it plays
        drain = 1.0 - fill
        stalls = not (drain <= 0.0 or buffer > drain * left_ms)
        # min()/max() written as conditionals (same value, same tie order, no call): this
        # runs every tick.
        run = buffer / drain if stalls else left_ms
        rest = self.want - self.watch
        if rest < run:
            run = rest
        left = buffer - drain * run
        if stalls:
            self.buffer = left if left > 0.0 else 0.0
        else:
            self.buffer = left if left < max_buffer else float(max_buffer)
        watch = self.watch = self.watch + run
        self.kbps_ms += br * run
        now += run
        if stalls and watch < self.want:
            self._stall(now)
        if watch >= self.want:
            self._finish(now, "completed" if self.completes else "user_exit")
        return now

    def _stall(self, now: float) -> None:
        s, link = self.s, self.link
        self.mode = _STALL
        self.stall_start = now
        s.state.rebuffer_count += 1
        payload = f'{{"event_type":"rebuffer_start","position_ms":{self._position()}}}'
        self.out.append((int(now), s.line(now, "rebuffer_start", payload)))
        if link.thr < link.ladder[0]:
            self.out.append(
                (int(now), s.error(now, s.world.errors.fault("isp_congestion", fatal=False)))
            )
        # Emergency downshift: the buffer is empty, take what the link carries.
        to = link.rung(s.cfg.abr_safety * link.est)
        if to < link.br:
            self._switch(now, to)

    def _wait(self, now: float, t_end: int) -> float:
        """Stalled or seeking: fill the buffer until one segment is in (or the viewer quits)."""
        s = self.s
        resume_buffer = s.cfg.resume_buffer_ms
        fill = self.link.thr / self.link.br
        left_ms = t_end - now
        t_fill = (resume_buffer - self.buffer) / fill
        if (
            self.mode == _STALL
            and now + min(t_fill, left_ms) - self.stall_start > self.stall_patience
        ):
            # The viewer gives up waiting.
            quit_at = self.stall_start + self.stall_patience
            if quit_at <= now + min(t_fill, left_ms):
                self._end_stall(quit_at)
                self._finish(quit_at, "user_exit")
                return quit_at
        if t_fill > left_ms:
            self.buffer += fill * left_ms
            return float(t_end)
        now += t_fill
        self.buffer = float(resume_buffer)
        if self.mode == _STALL:
            self._end_stall(now)
        self.mode = _PLAY
        return now

    def _end_stall(self, now: float) -> None:
        s = self.s
        stalled = int(now) - int(self.stall_start)
        s.state.rebuffer_ms += stalled
        payload = f'{{"event_type":"rebuffer_end","duration_ms":{stalled}}}'
        self.out.append((int(now), s.line(now, "rebuffer_end", payload)))

    def _paused(self, now: float, t_end: int) -> float:
        """Paused: the buffer tops up, nothing plays, until the pause ends."""
        s = self.s
        fill = self.link.thr / self.link.br
        self.buffer = min(float(s.cfg.max_buffer_ms), self.buffer + fill * (t_end - now))
        if self.pause_end > t_end:
            return float(t_end)
        self.mode = _PLAY
        pause_end = self.pause_end
        payload = f'{{"event_type":"resume","paused_ms":{pause_end - self.pause_start}}}'
        self.out.append((pause_end, s.line(pause_end, "resume", payload)))
        return float(pause_end)

    def abr(self, t_end: int) -> None:
        """ABR decision at the end of the tick, with hysteresis."""
        cfg, link = self.s.cfg, self.link
        self.since_switch += 1
        if self.mode != _PLAY:
            return
        ladder = link.ladder
        rung = bisect.bisect_right(ladder, cfg.abr_safety * link.est) - 1  # link.rung(), inline
        to = ladder[rung if rung > 0 else 0]
        if to > link.br:
            if self.buffer >= cfg.abr_upshift_buffer_ms and self.since_switch >= cfg.abr_hold_ticks:
                self._switch(t_end, min(to, link.ladder[-1]))
        elif to < link.br and (link.br > 0.95 * link.est or self.buffer < cfg.abr_panic_buffer_ms):
            self._switch(t_end, to)

    def heartbeat(self, t_end: int) -> None:
        """A heartbeat every `heartbeat_ms`: bitrate, buffer, throughput, dropped frames."""
        s, link = self.s, self.link
        self.next_hb += s.cfg.heartbeat_ms
        rng = s.rng
        dropped = 0 if rng.random() < 0.8 else int(rng.expovariate(0.25))
        playing = "false" if self.mode == _PAUSE else "true"
        self._sync()
        self.out.append((t_end, s.line(
            t_end, "heartbeat",
            f'{{"event_type":"heartbeat","bitrate_kbps":{link.br},"buffer_ms":{int(self.buffer)},'
            f'"throughput_kbps":{int(link.est)},"dropped_frames":{dropped},'
            f'"position_ms":{self._position()},"playing":{playing}}}',
        )))  # fmt: skip

    def run(self, t: int) -> Generator[tuple[int, str], None, None]:
        """Tick until the session ends, yielding its events in time order."""
        tick = self.s.cfg.tick_ms
        out = self.out
        while True:
            t_end = t + tick
            self.throughput(t)
            if self.mode == _PLAY:
                self.viewer(t)
            if not self.done:
                self.advance(t, t_end)
            if not self.done:
                self.abr(t_end)
                if t_end >= self.next_hb:
                    self.heartbeat(t_end)
            while out:
                yield out.pop(0)
            if self.done:
                return
            t = t_end
