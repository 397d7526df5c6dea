"""The one definition of every QoE metric (versioned).

Stream aggregates (`streams.sessionizer`, `streams.rollup`), the warehouse SQL views
(`SQL_METRICS`) and the dashboards all take their formulas from here, so a number on a
dashboard means the same thing as the number in the warehouse. Bump `METRICS_VERSION`
whenever a formula changes; records carry the version they were computed with.

Definitions (one session = one attempt to play):

- startup time: play_requested -> first_frame, in ms. The player's own measurement
  (`first_frame.startup_ms`) is preferred over the difference of event times because event
  times come from a client clock that the collector may clamp.
- video start failure (VSF): a fatal error before the first frame (or with no first frame).
- exit before video start (EBVS): play requested, no first frame, no fatal error.
- playback failure: the session ended in a fatal error, at any stage. This is a superset of
  VSF; `in_play_failure` (fatal after the first frame) is the industry's VPF.
- rebuffer %: rebuffer time / (watch time + rebuffer time) * 100.
- rebuffer frequency: rebuffers per minute watched.
- average bitrate: time-weighted over the bitrate samples (each sample holds until the next).
- up/down shifts: counted from bitrate changes (to > from is an upshift).
- concurrent viewers: sessions playing (not paused, not only buffering) within a window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

METRICS_VERSION = "1.0.0"

StartOutcome = Literal["started", "start_failure", "exit_before_start", "not_requested"]


# --- per-session building blocks -----------------------------------------------------------


def startup_ms(
    play_requested_ms: int | None,
    first_frame_ms: int | None,
    reported_startup_ms: int | None = None,
) -> int | None:
    """Startup time of a session in ms, or None when it never reached a first frame.

    `*_ms` are event times in epoch ms; the player's `reported_startup_ms` wins when present.
    """
    if reported_startup_ms is not None:
        return reported_startup_ms
    if play_requested_ms is None or first_frame_ms is None:
        return None
    return max(0, first_frame_ms - play_requested_ms)


def start_outcome(
    play_requested: bool,
    first_frame_ms: int | None,
    first_fatal_ms: int | None,
) -> StartOutcome:
    """Classify how a session's start went (VSF vs EBVS vs started)."""
    fatal_before_start = first_fatal_ms is not None and (
        first_frame_ms is None or first_fatal_ms < first_frame_ms
    )
    if fatal_before_start:
        return "start_failure"
    if first_frame_ms is not None:
        return "started"
    if play_requested:
        return "exit_before_start"
    return "not_requested"


def playback_failed(first_fatal_ms: int | None) -> bool:
    """A session ended in a fatal error (a fatal error always ends playback)."""
    return first_fatal_ms is not None


def in_play_failure(first_frame_ms: int | None, first_fatal_ms: int | None) -> bool:
    """Fatal error after the first frame (VPF)."""
    return (
        first_frame_ms is not None
        and first_fatal_ms is not None
        and first_fatal_ms >= first_frame_ms
    )


def ratio_pct(part: float, whole: float) -> float | None:
    """`100 * part / whole`, None when `whole` is 0 (no data is not 0 %)."""
    return None if whole <= 0 else 100.0 * part / whole


def rebuffer_pct(rebuffer_ms: float, watch_ms: float) -> float | None:
    """Rebuffer % = rebuffer time / (watch time + rebuffer time) * 100."""
    return ratio_pct(rebuffer_ms, watch_ms + rebuffer_ms)


def rebuffer_per_minute(rebuffer_count: int, watch_ms: float) -> float | None:
    """Rebuffers per minute watched; None when nothing was watched."""
    return None if watch_ms <= 0 else rebuffer_count / (watch_ms / 60_000.0)


# "seek" changes nothing in itself: it marks where unreported re-buffering starts.
Mark = Literal["start", "buffering", "buffered", "paused", "resumed", "end", "seek"]


def playing_intervals(marks: Iterable[tuple[int, int, str]], end_ms: int) -> list[tuple[int, int]]:
    """[start, end) intervals of playing time from (time, arrival seq, mark) marks.

    Playing = started (first frame), not buffering, not paused, not ended. Buffering and
    pausing are independent flags: a player may report "not paused" while it is stalled.
    Marks are sorted by time (arrival order breaks ties), so the result does not depend on
    the order the events arrived in; an open interval runs to `end_ms`.
    """
    out: list[tuple[int, int]] = []
    started = buffering = paused = ended = False
    since: int | None = None
    for t, _, mark in sorted(marks):
        if mark == "start":
            started = True
        elif mark == "buffering":
            buffering = True
        elif mark == "buffered":
            buffering = False
        elif mark == "paused":
            paused = True
        elif mark == "resumed":
            paused = False
        elif mark == "end":
            ended = True
        playing = started and not (buffering or paused or ended)
        if playing and since is None:
            since = t
        elif not playing and since is not None:
            if t > since:
                out.append((since, t))
            since = None
    if since is not None and end_ms > since:
        out.append((since, end_ms))
    return out


def trim_seek_buffering(
    playing: Sequence[tuple[int, int]], seeks: Sequence[int], watched_ms: int
) -> list[tuple[int, int]]:
    """Playing intervals without the re-buffering that follows seeks.

    After a seek the player fills its buffer again, but no event marks the end of that
    (rebuffer_start/end are for stalls), so the intervals count it as playing. When the
    player reports its watch time, the excess over it is that re-buffering: it is cut from
    the start of playback after each seek, in equal parts (exact with one seek).
    """
    excess = sum(e - s for s, e in playing) - watched_ms
    if excess <= 0 or not seeks:
        return list(playing)
    share = excess / len(seeks)
    out = list(playing)
    for seek in sorted(seeks):
        cut = share
        kept: list[tuple[int, int]] = []
        for s, e in out:
            if cut > 0 and e > seek:
                start = max(s, seek)
                take = min(cut, e - start)
                if start > s:
                    kept.append((s, start))
                if start + take < e:
                    kept.append((round(start + take), e))
                cut -= take
            else:
                kept.append((s, e))
        out = kept
    return out


def time_weighted_bitrate(
    samples: Iterable[tuple[int, int]],
    end_ms: int,
    playing: Sequence[tuple[int, int]] | None = None,
) -> float | None:
    """Average bitrate (kbps) weighted by how long each sample held.

    `samples` are (event time ms, kbps); each holds until the next sample or `end_ms`.
    With `playing` intervals, only playing time counts (bitrate integrated over watch
    time, divided by watch time). Out-of-order samples are sorted first.
    """
    ordered = sorted(samples)
    if not ordered:
        return None
    weighted = 0.0
    total = 0
    ends = [t for t, _ in ordered[1:]] + [max(end_ms, ordered[-1][0])]
    for (t, kbps), until in zip(ordered, ends, strict=True):
        if playing is None:
            held = until - t
        else:
            held = sum(max(0, min(until, e) - max(t, s)) for s, e in playing)
        weighted += kbps * held
        total += held
    if total == 0:
        # Every sample at the same instant: the plain mean is the only honest answer.
        return sum(k for _, k in ordered) / len(ordered)
    return weighted / total


def shift_counts(changes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """(upshifts, downshifts) from (from_kbps, to_kbps) bitrate changes."""
    up = down = 0
    for before, after in changes:
        if after > before:
            up += 1
        elif after < before:
            down += 1
    return up, down


def concurrent_viewers(
    playing: Iterable[tuple[int, int]], window_start: int, window_end: int
) -> int:
    """Sessions playing at some point of [window_start, window_end).

    `playing` holds one (start, end) playing interval per session (event time ms, end
    exclusive).
    """
    return sum(1 for s, e in playing if s < window_end and e > window_start)


# --- 0-100 session scores ------------------------------------------------------------------


@dataclass(frozen=True)
class ScorePolicy:
    """Knobs of the 0-100 scores, after the published viewer-experience scores.

    - startup: 100 at or below `startup_good_ms`, 0 at or above `startup_bad_ms`, linear in
      between; unscored (None) when there was no first frame (success covers that case).
    - smoothness: product of two penalties, rebuffer % (0 at `rebuffer_pct_zero`) and
      rebuffer frequency (0 at `rebuffers_per_min_zero`); unscored when nothing was watched.
    - quality: average bitrate relative to a device reference (a TV should get more than a
      phone), capped at 100; unscored when no bitrate was seen.
    - success: 100 played fine, 0 any fatal error, `ebvs_score` for an exit before start
      (the viewer may have left because start was slow, or for their own reasons).
    - aggregate: the mean of the components that are scored.
    """

    startup_good_ms: int = 1_000
    startup_bad_ms: int = 10_000
    rebuffer_pct_zero: float = 10.0
    rebuffers_per_min_zero: float = 4.0
    reference_kbps: tuple[tuple[str, int], ...] = (
        ("tv", 8_000),
        ("console", 8_000),
        ("web", 5_000),
        ("mobile", 3_000),
    )
    default_reference_kbps: int = 5_000
    ebvs_score: float = 50.0


DEFAULT_SCORES = ScorePolicy()


@dataclass(frozen=True)
class SessionScores:
    """The four component scores and their mean (None = not scored)."""

    startup: float | None
    smoothness: float | None
    quality: float | None
    success: float
    aggregate: float


def _clamp100(x: float) -> float:
    return max(0.0, min(100.0, x))


def startup_score(startup: int | None, policy: ScorePolicy = DEFAULT_SCORES) -> float | None:
    """0-100 startup score; None when the session never started."""
    if startup is None:
        return None
    span = policy.startup_bad_ms - policy.startup_good_ms
    return _clamp100(100.0 * (policy.startup_bad_ms - startup) / span)


def smoothness_score(
    rebuffer_ms: float, watch_ms: float, rebuffer_count: int, policy: ScorePolicy = DEFAULT_SCORES
) -> float | None:
    """0-100 smoothness score; None when nothing was watched."""
    pct = rebuffer_pct(rebuffer_ms, watch_ms)
    freq = rebuffer_per_minute(rebuffer_count, watch_ms)
    if pct is None or freq is None:
        return None
    by_time = max(0.0, 1.0 - pct / policy.rebuffer_pct_zero)
    by_count = max(0.0, 1.0 - freq / policy.rebuffers_per_min_zero)
    return _clamp100(100.0 * by_time * by_count)


def quality_score(
    avg_kbps: float | None, device_type: str, policy: ScorePolicy = DEFAULT_SCORES
) -> float | None:
    """0-100 quality score from the time-weighted bitrate and the device's reference."""
    if avg_kbps is None:
        return None
    ref = dict(policy.reference_kbps).get(device_type, policy.default_reference_kbps)
    return _clamp100(100.0 * avg_kbps / ref)


def success_score(
    outcome: StartOutcome, failed: bool, policy: ScorePolicy = DEFAULT_SCORES
) -> float:
    """0-100 success score."""
    if failed:
        return 0.0
    if outcome == "exit_before_start":
        return policy.ebvs_score
    return 100.0


def session_scores(
    *,
    startup: int | None,
    rebuffer_ms: float,
    watch_ms: float,
    rebuffer_count: int,
    avg_kbps: float | None,
    device_type: str,
    outcome: StartOutcome,
    failed: bool,
    policy: ScorePolicy = DEFAULT_SCORES,
) -> SessionScores:
    """All scores of one session; aggregate = mean of the scored components."""
    s = startup_score(startup, policy)
    m = smoothness_score(rebuffer_ms, watch_ms, rebuffer_count, policy)
    q = quality_score(avg_kbps, device_type, policy)
    ok = success_score(outcome, failed, policy)
    parts = [x for x in (s, m, q, ok) if x is not None]
    return SessionScores(s, m, q, ok, sum(parts) / len(parts))


# --- aggregates over many sessions or minutes -----------------------------------------------


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the scored values (None entries are unscored and ignored)."""
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


# SQL expressions over additive columns, for the warehouse views and Grafana panels. Each
# is a ratio of sums, so it is right at any grouping (minute, hour, region...). Columns
# follow `contract.records.MinuteRollup` (qoe_minute) and `SessionSummary` (qoe_sessions).
SQL_METRICS: dict[str, str] = {
    # qoe_minute (one row per minute x dimension value x partial)
    "plays": "sum(plays)",
    "concurrent_viewers": "sum(concurrent_viewers)",
    "rebuffer_pct": "100.0 * sum(rebuffer_ms) / nullif(sum(watch_ms) + sum(rebuffer_ms), 0)",
    "rebuffers_per_minute": "sum(rebuffer_count) / nullif(sum(watch_ms) / 60000.0, 0)",
    "playback_failure_pct": "100.0 * sum(failed_sessions) / nullif(sum(active_sessions), 0)",
    "start_failure_pct": "100.0 * sum(start_failures) / nullif(sum(ended_sessions), 0)",
    "failed_start_pct": "100.0 * sum(failed_starts) / nullif(sum(plays), 0)",
    "ebvs_pct": "100.0 * sum(exits_before_start) / nullif(sum(ended_sessions), 0)",
    "avg_bitrate_kbps": "sum(bitrate_kbps_ms) / nullif(sum(bitrate_ms), 0)",
    # qoe_sessions (one row per session, latest revision)
    "session_startup_p50_ms": "quantile_cont(startup_ms, 0.5)",
    "session_startup_p95_ms": "quantile_cont(startup_ms, 0.95)",
    "session_playback_failure_pct": "100.0 * avg(CASE WHEN playback_failed THEN 1 ELSE 0 END)",
    "session_start_failure_pct": (
        "100.0 * avg(CASE WHEN start_outcome = 'start_failure' THEN 1 ELSE 0 END)"
    ),
    "session_ebvs_pct": (
        "100.0 * avg(CASE WHEN start_outcome = 'exit_before_start' THEN 1 ELSE 0 END)"
    ),
    "session_rebuffer_pct": (
        "100.0 * sum(rebuffer_ms) / nullif(sum(watch_ms) + sum(rebuffer_ms), 0)"
    ),
    "session_avg_bitrate_kbps": "sum(avg_bitrate_kbps * watch_ms) / nullif(sum(watch_ms), 0)",
    "session_score": "avg(score_aggregate)",
}
