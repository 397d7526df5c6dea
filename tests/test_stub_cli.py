"""`streamwatch stub run|scenarios` and wall-clock pacing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from platform_stub.generator import RunOptions
from platform_stub.runner import Pacing, run
from platform_stub.sinks import NullSink
from streamwatch.cli import main


def test_run_to_file_writes_the_run_directory(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "stub", "run", "--target", "file", "--members", "1000", "--rate", "50",
            "--duration", "300", "--scenario", "drm_license_outage", "--seed", "3",
            "--max-events", "5000", "--truth", "--run-name", "cli",
        ]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    run_dir = data_dir / "stub" / "cli"
    assert out["run_dir"] == str(run_dir) and out["events"] == out["acknowledged"] == 5_000
    for name in ("events.jsonl", "truth.jsonl", "scenario.json", "members.jsonl"):
        assert (run_dir / name).stat().st_size > 0, name
    scenario = json.loads((run_dir / "scenario.json").read_text())
    assert scenario["kind"] == "drm_license_outage" and scenario["dimension"] == "device.os"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sum(summary["events_by_type"].values()) == 5_000
    members = [json.loads(line) for line in (run_dir / "members.jsonl").open()]
    assert len(members) == 1_000 and all("@example." in m["email"] for m in members)
    # The support console's offline replay and member loader read a run directory as is.
    from support_console.directory import find_export
    from testkit.search_loader import read_events

    assert sum(1 for _ in read_events(run_dir)) == 5_000
    assert find_export(run_dir) == run_dir / "members.jsonl"


def test_scenarios_lists_every_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stub", "scenarios", "--members", "500"]) == 0
    out = capsys.readouterr().out
    for name in ("oca_outage", "isp_congestion", "drm_license_outage", "bad_app_release"):
        assert name in out


def test_speed_paces_simulated_time_in_wall_time(tmp_path: Path) -> None:
    # 90 simulated seconds at 30x take about 3 wall seconds; unpaced they take a fraction.
    options = RunOptions(seed=4, members=500, rate=40.0, duration_s=90.0, drain=False)
    started = time.perf_counter()
    summary = run(
        options,
        lambda _d, delivered: NullSink(delivered),
        tmp_path / "paced",
        target="null",
        pacing=Pacing(speed=30.0),
        progress=None,
    )
    wall = time.perf_counter() - started
    assert summary.events > 200  # the rate builds up as sessions accumulate (no warm-up)
    assert 2.5 <= wall <= 8.0, wall


def test_warmup_events_precede_the_start_and_are_not_paced(tmp_path: Path) -> None:
    start = 1_800_000_000_000
    options = RunOptions(
        seed=4, members=500, rate=40.0, duration_s=30.0, start_ms=start, warmup_s=600.0,
        drain=False,
    )  # fmt: skip
    summary = run(
        options,
        lambda _d, delivered: NullSink(delivered),
        tmp_path / "warm",
        target="null",
        pacing=Pacing(speed=30.0),
        progress=None,
    )
    assert summary.first_event_ms == start - 600_000
    assert summary.events > 1_000
