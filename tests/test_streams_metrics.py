"""The metric definitions: arithmetic and classification on hand-computed cases."""

from __future__ import annotations

import random

import pytest

from contract import metrics
from contract.sketch import LatencySketch, bucket_of


def test_rebuffer_pct_is_rebuffer_over_watch_plus_rebuffer() -> None:
    assert metrics.rebuffer_pct(1_000, 9_000) == pytest.approx(10.0)
    assert metrics.rebuffer_pct(0, 60_000) == 0.0
    assert metrics.rebuffer_pct(0, 0) is None  # no data is not 0 %


def test_rebuffer_pct_of_sums_is_not_the_mean_of_ratios() -> None:
    # Two sessions: 50 % and 0 %; by time the aggregate is 1 s in 2+99 s, not 25 %.
    rb, watch = 1_000 + 0, 1_000 + 99_000
    assert metrics.rebuffer_pct(rb, watch) == pytest.approx(100 * 1_000 / 101_000)


def test_rebuffer_frequency_per_minute_watched() -> None:
    assert metrics.rebuffer_per_minute(3, 120_000) == pytest.approx(1.5)
    assert metrics.rebuffer_per_minute(3, 0) is None


def test_start_outcomes_distinguish_vsf_ebvs_and_started() -> None:
    assert metrics.start_outcome(True, 1_500, None) == "started"
    assert metrics.start_outcome(True, None, 900) == "start_failure"
    assert metrics.start_outcome(True, 2_000, 900) == "start_failure"  # fatal before frame
    assert metrics.start_outcome(True, None, None) == "exit_before_start"
    assert metrics.start_outcome(True, 1_000, 5_000) == "started"  # failed later: VPF
    assert metrics.start_outcome(False, None, None) == "not_requested"


def test_playback_failure_includes_start_and_in_play_failures() -> None:
    assert metrics.playback_failed(900) and metrics.playback_failed(5_000)
    assert not metrics.playback_failed(None)
    assert metrics.in_play_failure(1_000, 5_000)
    assert not metrics.in_play_failure(2_000, 900)
    assert not metrics.in_play_failure(None, 900)


def test_startup_prefers_player_measurement() -> None:
    assert metrics.startup_ms(10_000, 12_000) == 2_000
    assert metrics.startup_ms(10_000, 12_000, reported_startup_ms=1_800) == 1_800
    assert metrics.startup_ms(None, 12_000) is None


def test_time_weighted_bitrate_weights_by_duration_and_sorts() -> None:
    # 3000 kbps for 10 s then 6000 for 30 s => 5250, whatever the arrival order.
    samples = [(10_000, 6_000), (0, 3_000)]
    assert metrics.time_weighted_bitrate(samples, 40_000) == pytest.approx(5_250)
    assert metrics.time_weighted_bitrate([], 40_000) is None
    assert metrics.time_weighted_bitrate([(5, 100), (5, 300)], 5) == pytest.approx(200)


def test_shift_counts() -> None:
    assert metrics.shift_counts([(1_000, 3_000), (3_000, 2_000), (2_000, 2_000)]) == (1, 1)


def test_concurrent_viewers_counts_overlap_with_window() -> None:
    playing = [(0, 30_000), (50_000, 70_000), (60_000, 90_000), (120_000, 130_000)]
    assert metrics.concurrent_viewers(playing, 60_000, 120_000) == 2


def test_scores_follow_documented_formulas() -> None:
    assert metrics.startup_score(1_000) == 100.0
    assert metrics.startup_score(5_500) == pytest.approx(50.0)
    assert metrics.startup_score(20_000) == 0.0
    assert metrics.startup_score(None) is None
    assert metrics.smoothness_score(0, 60_000, 0) == 100.0
    # 5 % rebuffer (half penalty), 1 per minute (quarter penalty) => 100 * 0.5 * 0.75
    assert metrics.smoothness_score(5_000, 95_000, 1 * 95_000 // 60_000) == pytest.approx(
        100 * 0.5 * (1 - (1 / (95_000 / 60_000)) / 4)
    )
    assert metrics.quality_score(4_000, "tv") == pytest.approx(50.0)
    assert metrics.quality_score(6_000, "mobile") == 100.0
    assert metrics.success_score("exit_before_start", False) == 50.0
    assert metrics.success_score("started", True) == 0.0
    s = metrics.session_scores(
        startup=None,
        rebuffer_ms=0,
        watch_ms=0,
        rebuffer_count=0,
        avg_kbps=None,
        device_type="tv",
        outcome="start_failure",
        failed=True,
    )
    assert (s.startup, s.smoothness, s.quality, s.success, s.aggregate) == (
        None,
        None,
        None,
        0.0,
        0.0,
    )


def test_sql_metrics_are_ratios_of_sums_over_known_columns() -> None:
    assert set(metrics.SQL_METRICS) >= {"rebuffer_pct", "playback_failure_pct", "ebvs_pct"}
    assert "nullif" in metrics.SQL_METRICS["rebuffer_pct"]
    assert metrics.METRICS_VERSION.count(".") == 2


def test_sketch_quantiles_are_within_bucket_error() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(7.3, 0.5) for _ in range(5_000)]
    sk = LatencySketch()
    sk.extend(values)
    values.sort()
    for q in (0.5, 0.95):
        exact = values[int(q * (len(values) - 1))]
        got = sk.quantile(q)
        assert got is not None and abs(got - exact) / exact < 0.03


def test_sketch_merge_equals_sketch_of_union_and_minus_inverts_it() -> None:
    a, b, both = LatencySketch(), LatencySketch(), LatencySketch()
    for i in range(1, 400):
        (a if i % 3 else b).add(i * 17.0)
        both.add(i * 17.0)
    merged = a.merge(b)
    assert merged.buckets == both.buckets and merged.count == both.count
    assert merged.quantile(0.95) == both.quantile(0.95)
    assert merged.minus(b).buckets == a.buckets
    restored = LatencySketch.model_validate_json(merged.model_dump_json())
    assert restored == merged


def test_sketch_edges() -> None:
    sk = LatencySketch()
    assert sk.quantile(0.5) is None and sk.mean is None
    sk.add(0.2)
    sk.add(10**12)
    assert bucket_of(0.2) == 0
    assert sk.quantile(0.0) == 0.2 and sk.quantile(1.0) == 10**12


def test_playing_intervals_treat_stall_and_pause_as_independent_flags() -> None:
    marks = [
        (0, 1, "start"),
        (10, 2, "buffering"),
        (12, 3, "resumed"),  # a heartbeat saying "not paused" during the stall
        (15, 4, "buffered"),
        (20, 5, "paused"),
        (30, 6, "resumed"),
        (40, 7, "end"),
    ]
    assert metrics.playing_intervals(marks, 50) == [(0, 10), (15, 20), (30, 40)]
    assert metrics.playing_intervals(list(reversed(marks)), 50) == [(0, 10), (15, 20), (30, 40)]
    assert metrics.playing_intervals([(5, 1, "start")], 65) == [(5, 65)]


def test_bitrate_weighted_over_playing_time_only() -> None:
    # 1000 kbps for 10 s playing, then a 10 s stall, then 3000 kbps for 10 s.
    samples = [(0, 1_000), (20, 3_000)]
    playing = [(0, 10), (20, 30)]
    assert metrics.time_weighted_bitrate(samples, 30, playing) == pytest.approx(2_000)


def test_seek_rebuffering_is_cut_from_playback_after_the_seek() -> None:
    # Played 0-60 s, sought at 60 s, the player refilled its buffer for 5 s (no event says
    # so) and played to 100 s: it reports 95 s watched.
    playing = [(0, 100_000)]
    assert metrics.trim_seek_buffering(playing, [60_000], 95_000) == [
        (0, 60_000),
        (65_000, 100_000),
    ]
    # Two seeks share the excess; nothing to cut without seeks or without an excess.
    two = metrics.trim_seek_buffering([(0, 50_000), (60_000, 100_000)], [20_000, 70_000], 86_000)
    assert two == [(0, 20_000), (22_000, 50_000), (60_000, 70_000), (72_000, 100_000)]
    assert metrics.trim_seek_buffering(playing, [], 95_000) == playing
    assert metrics.trim_seek_buffering(playing, [60_000], 100_000) == playing
    # The bitrate after the seek now weighs only what was played at it.
    samples = [(0, 1000), (60_000, 3000)]
    trimmed = metrics.trim_seek_buffering(playing, [60_000], 95_000)
    assert metrics.time_weighted_bitrate(samples, 100_000, trimmed) == pytest.approx(
        (1000 * 60 + 3000 * 35) / 95
    )
