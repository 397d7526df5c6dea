"""The stub's control plane, pure: policies, spans, and what its faults do to a play."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

from contract.spans import Span, trace_id_of
from platform_stub.config import StubConfig
from platform_stub.control_plane.resilience import BreakerPolicy, CircuitBreaker, RetryPolicy
from platform_stub.control_plane.services import ControlPlaneConfig
from platform_stub.generator import RunOptions, StubRun, seed_epoch_ms
from platform_stub.startup import distant_oca_id
from streams.service_rollup import ServiceRoller


def _run(scenario: str, seed: int = 4, **config: object) -> tuple[StubRun, list[str], list[str]]:
    cfg = dataclasses.replace(StubConfig(), **config)  # type: ignore[arg-type]
    stub = StubRun(
        RunOptions(
            seed=seed, members=2_000, rate=300.0, duration_s=300.0, scenario=scenario,
            start_ms=seed_epoch_ms(seed) + 6 * 3600_000, config=cfg, drain=False,
        )
    )  # fmt: skip
    lines, spans = [], []
    for batch in stub.batches(5_000):
        lines += batch.lines
        spans += batch.spans
    return stub, lines, spans


def test_retry_policy_backs_off_exponentially() -> None:
    policy = RetryPolicy(3, backoff_ms=100, multiplier=2.0)
    assert [policy.delay_ms(a) for a in (1, 2, 3)] == [100, 200, 400]


def test_breaker_opens_on_failures_then_lets_a_trial_through() -> None:
    breaker = CircuitBreaker(
        BreakerPolicy(window=10, min_calls=5, failure_share=0.5, open_ms=1_000)
    )
    for t in range(4):
        breaker.record(t, ok=False)
    assert breaker.allows(10)  # fewer than min_calls
    breaker.record(5, ok=False)
    assert not breaker.allows(6) and not breaker.allows(1_004)
    assert breaker.allows(1_005)  # half-open: one trial
    for t in range(20):
        breaker.record(2_000 + t, ok=True)
    assert breaker.allows(2_100)


def test_every_span_is_a_valid_contract_span_and_a_play_shares_its_session_trace() -> None:
    _, _, spans = _run("normal")
    parsed = [Span.model_validate_json(s) for s in spans]
    assert len(parsed) > 5_000
    by_session = Counter(s.session_id for s in parsed if s.session_id is not None)
    for s in parsed:
        if s.session_id is not None:
            assert s.trace_id == trace_id_of(s.session_id)
        assert s.end_time >= s.start_time and s.duration_ms >= 0
    # Every play calls gateway /play, playback, both caches, steering and gateway /license.
    names = Counter(s.name for s in parsed)
    assert names["POST /play"] >= len(by_session) * 0.95
    assert names["POST /license/acquire"] > 0 and names["GET /discovery/browse"] > 0
    hits = [s.cache_hit for s in parsed if s.service == "cache" and s.cache_hit is not None]
    assert 0.8 < sum(hits) / len(hits) < 0.95


def test_the_control_plane_is_deterministic_per_seed() -> None:
    _, lines_a, spans_a = _run("license_5xx_region")
    _, lines_b, spans_b = _run("license_5xx_region")
    assert lines_a == lines_b and spans_a == spans_b


def test_off_the_control_plane_emits_nothing_and_startup_stays_comparable() -> None:
    on, _, spans_on = _run("normal")
    off, _, spans_off = _run("normal", control_plane=ControlPlaneConfig(enabled=False))
    assert spans_on and not spans_off
    med = {
        name: sorted(t.startup_ms for t in run.truths() if t.startup_ms is not None)
        for name, run in (("on", on), ("off", off))
    }
    p50_on, p50_off = (v[len(v) // 2] for v in (med["on"], med["off"]))
    assert 0.6 * p50_off < p50_on < 1.2 * p50_off, (p50_on, p50_off)


def test_a_license_outage_ends_plays_with_the_players_drm_error() -> None:
    stub, _, spans = _run("license_5xx_region")
    gt = stub.scenario_truth()
    truths = {t.session_id: t for t in stub.truths()}
    hit = [truths[s] for s in gt.affected_session_ids if s in truths]
    failed = [t for t in hit if t.fatal_code is not None]
    assert failed and all(t.region == gt.region for t in hit)
    assert str(Counter(t.fatal_code for t in failed).most_common(1)[0][0]).startswith("DRM-")
    errors = [Span.model_validate_json(s) for s in spans]
    license_errors = [s for s in errors if s.service == "license" and s.status_code == "error"]
    in_region = [s for s in license_errors if s.region == gt.region]
    assert len(in_region) > 0.95 * len(license_errors)  # the rest: background errors
    assert any(s.attempt == 3 for s in license_errors) and any(s.circuit_open for s in errors)


def test_broken_steering_sends_members_to_a_distant_oca() -> None:
    stub, _, spans = _run("steering_distant_oca")
    gt = stub.scenario_truth()
    assert gt.region is not None
    far = distant_oca_id(gt.region)
    on_far = [t for t in stub.truths() if t.oca_id == far and t.region == gt.region]
    assert on_far
    normal = [t for t in stub.truths() if t.region == gt.region and t.oca_id != far and t.watch_ms]
    far_rate = sum(t.avg_bitrate_kbps for t in on_far if t.watch_ms) / len(on_far)
    near_rate = sum(t.avg_bitrate_kbps for t in normal) / len(normal)
    assert far_rate < 0.8 * near_rate, (far_rate, near_rate)
    fallbacks = [Span.model_validate_json(s) for s in spans]
    assert any(s.service == "steering" and s.fallback_used for s in fallbacks)


def test_service_minutes_count_spans_and_take_late_ones_as_a_revision() -> None:
    _, _, spans = _run("normal")
    roller = ServiceRoller()
    parsed = [Span.model_validate_json(s) for s in spans]
    for s in parsed:
        roller.add(s)
    rows = roller.advance(roller.watermark_ms + roller.policy.grace_ms + 60_000)
    assert sum(r.requests for r in rows) == len(parsed)
    assert sum(r.errors for r in rows) == sum(s.status_code == "error" for s in parsed)
    row = max(rows, key=lambda r: r.requests)
    assert row.latency_p50_ms is not None and row.latency_p99_ms is not None
    assert row.latency_p50_ms <= row.latency_p99_ms
    assert sum(g.requests for g in row.instance_groups.values()) == row.requests
    last = max(parsed, key=lambda s: s.start_time)
    late = last.model_copy(update={"span_id": "f" * 16})
    roller.add(late)
    again = roller.advance()
    assert [(r.revision, r.service, r.endpoint) for r in again] == [
        (1, late.service, late.endpoint)
    ]
    minute = late.start_time.replace(second=0, microsecond=0).astimezone(UTC)
    first = [r for r in rows if (r.minute, r.service, r.endpoint, r.region) == (
        minute, late.service, late.endpoint, late.region)]  # fmt: skip
    assert again[0].requests == first[0].requests + 1
    assert isinstance(again[0].minute, datetime)
