"""The stub's world looks like a streaming service's, and each fault moves its own metric.

Metrics are computed from the events alone (`platform_stub.eventstats`, DESIGN.md
definitions), never from the player's internal state.

- A `normal` run of >= 100,000 events: startup median 1-4 s, rebuffer % 0.1-2,
  playback failure % 0.1-2 (and a few more sanity ranges).
- Each fault scenario: its metric for its dimension value, over sessions that started in
  the fault window, is >= 5x the normal run's; the other values of that dimension, pooled,
  stay in the normal range; and no other value with enough sessions comes close to the
  faulty one (so the root-cause dimension value is unambiguous).

Scenario runs use shorter viewing sessions than the default (more sessions per event, so
every dimension value has enough sessions in a short test) and are compared against a
normal run with the same configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache

import pytest

from platform_stub.config import PlayerConfig, StubConfig
from platform_stub.eventstats import QoE, SessionStats, qoe, sessionize
from platform_stub.generator import RunOptions, StubRun
from platform_stub.scenarios import ScenarioTruth

_SHORT_SESSIONS = StubConfig(player=PlayerConfig(watch_median_s=90.0))
_HEARTBEAT = '"event_type":"heartbeat"'


@cache
def _normal_default() -> tuple[int, dict[str, SessionStats], list[int]]:
    stub = StubRun(RunOptions(seed=21, members=6_000, rate=30.0, duration_s=3_600.0))
    events = 0
    heartbeat_kbps: list[int] = []
    others = []
    for batch in stub.batches(5_000):
        events += len(batch.lines)
        for i, line in enumerate(batch.lines):
            if _HEARTBEAT in line:
                if i % 10 == 0:
                    heartbeat_kbps.append(json.loads(line)["payload"]["bitrate_kbps"])
            else:
                others.append(json.loads(line))
    return events, sessionize(others), heartbeat_kbps


@cache
def _scenario_run(scenario: str) -> tuple[dict[str, SessionStats], ScenarioTruth, int]:
    stub = StubRun(
        RunOptions(
            seed=22,
            members=8_000,
            rate=45.0,
            duration_s=2_400.0,
            scenario=scenario,
            config=_SHORT_SESSIONS,
        )
    )
    events = []
    n = 0
    for batch in stub.batches(5_000):
        n += len(batch.lines)
        # Heartbeats carry nothing these metrics need; skipping their parsing keeps it fast.
        events += [json.loads(line) for line in batch.lines if _HEARTBEAT not in line]
    return sessionize(events), stub.scenario_truth(), n


# ---- normal run -------------------------------------------------------------------------


def test_normal_run_is_large_enough() -> None:
    events, sessions, _ = _normal_default()
    assert events >= 100_000
    assert len(sessions) >= 1_000


def test_normal_startup_median_between_1_and_4_s() -> None:
    q = qoe(_normal_default()[1].values())
    assert q.startup_p50_ms is not None and q.startup_p95_ms is not None
    assert 1_000 <= q.startup_p50_ms <= 4_000
    assert q.startup_p50_ms < q.startup_p95_ms <= 10_000


def test_normal_rebuffer_pct_between_0_1_and_2() -> None:
    q = qoe(_normal_default()[1].values())
    assert 0.1 <= q.rebuffer_pct <= 2.0


def test_normal_playback_failure_pct_between_0_1_and_2() -> None:
    q = qoe(_normal_default()[1].values())
    assert 0.1 <= q.playback_failure_pct <= 2.0
    assert 0.0 < q.start_failure_pct <= q.playback_failure_pct


def test_normal_exits_before_start_and_bitrates_are_plausible() -> None:
    _, sessions, kbps = _normal_default()
    q = qoe(sessions.values())
    assert 0.1 <= q.exit_before_start_pct <= 5.0
    kbps.sort()
    median = kbps[len(kbps) // 2]
    assert 1_750 <= median <= 8_000
    assert kbps[0] >= 235 and kbps[-1] <= 16_000
    shifting = sum(1 for s in sessions.values() if s.upshifts or s.downshifts)
    assert shifting > len(sessions) / 2, "ABR adapts in most sessions"


def test_normal_run_has_no_fault() -> None:
    _, gt, _ = _scenario_run("normal")
    assert gt.kind == "normal" and gt.dimension is None and gt.affected_session_ids == ()


# ---- fault scenarios --------------------------------------------------------------------

_METRICS: dict[str, Callable[[QoE], float]] = {
    "start_failure_pct": lambda q: q.start_failure_pct,
    "playback_failure_pct": lambda q: q.playback_failure_pct,
    "rebuffer_pct": lambda q: q.rebuffer_pct,
}
_NORMAL_RANGE = {"start_failure_pct": 2.0, "playback_failure_pct": 2.0, "rebuffer_pct": 2.0}
_MIN_SESSIONS = 40  # per other value, for the "nobody else comes close" check


@pytest.mark.parametrize(
    ("scenario", "dimension", "metric"),
    [
        ("oca_outage", "network.oca_id", "start_failure_pct"),
        ("isp_congestion", "network.isp", "rebuffer_pct"),
        ("drm_license_outage", "device.os", "start_failure_pct"),
        ("bad_app_release", "device.app_version", "playback_failure_pct"),
    ],
)
def test_fault_moves_its_metric_for_its_value_only(
    scenario: str, dimension: str, metric: str
) -> None:
    sessions, gt, _ = _scenario_run(scenario)
    assert (gt.dimension, gt.metric) == (dimension, metric)
    assert gt.start_ms is not None and gt.end_ms is not None
    measure = _METRICS[metric]
    baseline = measure(qoe(_scenario_run("normal")[0].values()))
    assert 0 < baseline <= _NORMAL_RANGE[metric]

    in_window = [s for s in sessions.values() if s.dims and gt.start_ms <= s.started_ms < gt.end_ms]
    groups: dict[str, list[SessionStats]] = {}
    for s in in_window:
        groups.setdefault(s.dims[dimension], []).append(s)
    target = measure(qoe(groups[gt.value or ""]))
    assert target >= 5 * baseline, (gt.value, target, baseline)

    others = [s for value, group in groups.items() if value != gt.value for s in group]
    pooled = measure(qoe(others))
    assert pooled <= _NORMAL_RANGE[metric], pooled
    assert pooled <= 2 * baseline + 0.2, (pooled, baseline)
    for value, group in groups.items():
        if value != gt.value and len(group) >= _MIN_SESSIONS:
            assert measure(qoe(group)) < target / 2.5, (value, measure(qoe(group)), target)

    # Sessions of the faulty value that were over before the fault began were normal.
    before = [
        s
        for s in sessions.values()
        if s.dims
        and s.dims[dimension] == gt.value
        and s.ended_ms is not None
        and s.ended_ms < gt.start_ms
    ]
    assert measure(qoe(before)) < target / 2.5


def test_oca_outage_also_slows_startup_through_origin_failover() -> None:
    sessions, gt, _ = _scenario_run("oca_outage")
    assert gt.start_ms is not None and gt.end_ms is not None
    hit = [
        s
        for s in sessions.values()
        if s.dims
        and s.dims["network.oca_id"] == gt.value
        and gt.start_ms <= s.started_ms < gt.end_ms
    ]
    failed_over = [s for s in hit if s.final_oca_id.startswith("origin-")]
    assert failed_over, "sessions that survive the outage are served by the origin"
    q = qoe(hit)
    normal = qoe(_scenario_run("normal")[0].values())
    assert q.startup_p50_ms is not None and normal.startup_p50_ms is not None
    assert q.startup_p50_ms >= 2 * normal.startup_p50_ms


def test_flash_crowd_multiplies_starts_of_the_new_title() -> None:
    sessions, gt, _ = _scenario_run("flash_crowd")
    assert gt.dimension == "title_id" and gt.metric == "plays_per_minute"
    assert gt.start_ms is not None and gt.end_ms is not None
    start_ms, end_ms = gt.start_ms, gt.end_ms
    starts = [s for s in sessions.values() if s.dims]
    first = min(s.started_ms for s in starts)
    last = max(s.started_ms for s in starts)
    window_min = (end_ms - start_ms) / 60_000
    outside_min = (start_ms - first) / 60_000

    def per_minute(title: str | None, inside: bool) -> float:
        chosen = [
            s
            for s in starts
            if (title is None) != (s.dims["title_id"] == title)
            and (start_ms <= s.started_ms < end_ms) == inside
            and (inside or s.started_ms < start_ms)
        ]
        return len(chosen) / (window_min if inside else outside_min)

    assert last > end_ms, "the run goes on after the crowd"
    target_in, target_before = per_minute(gt.value, True), per_minute(gt.value, False)
    assert target_before > 0
    assert target_in >= 5 * target_before, (target_in, target_before)
    # The same title in the normal run, over the whole run, is the baseline too.
    normal = [s for s in _scenario_run("normal")[0].values() if s.dims]
    span_min = (max(s.started_ms for s in normal) - min(s.started_ms for s in normal)) / 60_000
    normal_rate = sum(1 for s in normal if s.dims["title_id"] == gt.value) / span_min
    assert target_in >= 5 * normal_rate
    # Every other title keeps its rate (pooled): no crowd there.
    others_in, others_before = per_minute(None, True), per_minute(None, False)
    assert 0.7 <= others_in / others_before <= 1.4, (others_in, others_before)
    assert len(gt.affected_session_ids) >= target_in * window_min * 0.9
