"""Capacity: pure what-if arithmetic, and the page's egress/concurrency vs a direct
computation from the session summaries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dashboards import capacity, warehouse
from dashboards.filters import Filters
from dashboards.queries import overview
from dashboards.queries.capacity import concurrency_and_egress
from streams.sessionizer import to_ms
from streamwatch.settings import Settings
from testkit import sample_warehouse as sw


def test_project_scales_linearly() -> None:
    today = capacity.Behaviour(
        members=1_000,
        peak_concurrency=200,
        peak_egress_gbps=1.0,
        peak_events_per_s=50,
        telemetry_bytes_per_day=2e9,
        storage_bytes_per_day=1e9,
    )
    p = capacity.project(today, 250_000_000)
    assert p.peak_concurrency == pytest.approx(50_000_000)
    assert p.peak_egress_tbps == pytest.approx(250.0)
    assert p.peak_events_per_s == pytest.approx(12_500_000)
    assert p.telemetry_tb_per_day + p.storage_tb_per_day == pytest.approx(750.0)
    assert "250,000,000 members" in p.sentence()
    assert capacity.project(capacity.Behaviour(0, 0, 0, 0, 0, 0), 10).peak_concurrency == 0
    with pytest.raises(ValueError):
        capacity.project(today, -1)


def test_bits_and_spreading() -> None:
    assert capacity.egress_bits(5000, 60_000) == 5000 * 1000 * 60
    assert capacity.egress_bits(None, 60_000) == 0
    # Half the playing interval falls in the minute -> half the bits.
    assert capacity.spread_over_minute(100.0, 30_000, 90_000, 60_000) == pytest.approx(50.0)
    assert capacity.spread_over_minute(100.0, 0, 0, 0) == 0
    assert capacity.gbps(60e9) == pytest.approx(1.0)
    assert capacity.edge_share(3, 1) == pytest.approx(0.75)
    assert capacity.edge_share(0, 0) is None


def test_egress_and_concurrency_match_session_summaries(tmp_path: Path) -> None:
    run = sw.run(sw.Scenario(name="normal", members=600, rate=40.0, duration_s=600.0))
    sw.write_warehouse(tmp_path, run)
    con = warehouse.connect(Settings(warehouse_dir=tmp_path))
    page = concurrency_and_egress(con, Filters())
    # Direct computation from the SessionSummary objects, minute by minute.
    intervals = []
    for s in run.sessions:
        if s.first_frame_at is None:
            continue
        end = s.ended_at or s.last_event_at
        bits = capacity.egress_bits(s.avg_bitrate_kbps, s.watch_ms)
        intervals.append((to_ms(s.first_frame_at), to_ms(end), bits))
    peak_c, peak_bits = 0, 0.0
    for minute in page["minute"]:
        m0 = to_ms(minute.to_pydatetime())
        m1 = m0 + 60_000
        peak_c = max(peak_c, sum(1 for a, b, _ in intervals if a < m1 and b > m0))
        peak_bits = max(
            peak_bits, sum(capacity.spread_over_minute(x, a, b, m0) for a, b, x in intervals)
        )
    assert page["concurrent_viewers"].max() == pytest.approx(peak_c, rel=0.01)
    assert page["egress_gbps"].max() == pytest.approx(capacity.gbps(peak_bits), rel=0.01)
    assert peak_c > 0 and peak_bits > 0
    assert timedelta(minutes=1) == page["minute"].diff().dropna().min()


def test_overview_concurrency_equals_a_direct_count_every_minute(tmp_path: Path) -> None:
    # The overview counts viewers as a running sum of session starts and ends; this checks
    # it minute by minute against counting overlapping playing intervals directly.
    run = sw.run(sw.Scenario(name="normal", members=600, rate=40.0, duration_s=600.0))
    sw.write_warehouse(tmp_path, run)
    con = warehouse.connect(Settings(warehouse_dir=tmp_path))
    intervals = [
        (to_ms(s.first_frame_at), to_ms(s.ended_at or s.last_event_at))
        for s in run.sessions
        if s.first_frame_at is not None
    ]
    series = overview.per_minute(con, Filters())
    assert len(series) > 5
    for minute, got in zip(series["minute"], series["concurrent_viewers"], strict=True):
        m0 = to_ms(minute.to_pydatetime())
        want = sum(1 for a, b in intervals if a < m0 + 60_000 and b > m0)
        assert got == want, minute
    # A filtered population, two ways: the overview's running sum and capacity's join.
    later = Filters(start=run.sessions[len(run.sessions) // 2].first_event_at)
    joined = concurrency_and_egress(con, later)
    assert list(overview.per_minute(con, later)["concurrent_viewers"]) == list(
        joined["concurrent_viewers"]
    )
