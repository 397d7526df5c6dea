"""`streamwatch stub run --processes N`: one run's shards in N processes, merged into one run
directory (ledger, truth, scenario ground truth, summary), against the real Kafka too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from streamwatch import topics
from streamwatch.cli import main
from streamwatch.settings import Settings, get_settings
from tests.test_stub_kafka import _ledger, _read_back

_RUN = ["stub", "run", "--members", "1000", "--rate", "60", "--duration", "300"]


def test_two_processes_write_one_run_directory(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_RUN, "--target", "file", "--scenario", "oca_outage", "--seed", "5", "--truth"]
    assert main([*argv, "--processes", "2", "--run-name", "two"]) == 0
    out = json.loads(capsys.readouterr().out)
    run_dir = data_dir / "stub" / "two"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "events.jsonl", "members.jsonl", "scenario.json", "spans.jsonl", "summary.json",
        "truth.jsonl",
    ]  # fmt: skip
    events = [json.loads(line) for line in (run_dir / "events.jsonl").open()]
    assert len(events) == out["events"] == out["acknowledged"] > 5_000
    assert len({e["event_id"] for e in events}) == len(events)
    sessions = {e["session_id"] for e in events}
    truths = [json.loads(line) for line in (run_dir / "truth.jsonl").open()]
    assert {t["session_id"] for t in truths} == sessions and len(truths) == out["sessions"]
    assert sum(t["events"] for t in truths) == len(events)
    # One fault for the run; the sessions it hit are the run's (both shards').
    scenario = json.loads((run_dir / "scenario.json").read_text())
    assert scenario["kind"] == "oca_outage" and scenario["affected_session_ids"]
    assert set(scenario["affected_session_ids"]) <= sessions
    assert {t["session_id"] for t in truths if t["fault_affected"]} <= set(
        scenario["affected_session_ids"]
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["extra"]["shards"] == 2
    assert sum(summary["events_by_type"].values()) == len(events)
    members = (run_dir / "members.jsonl").read_text().splitlines()
    assert len(members) == 1_000

    # The same command again writes the same bytes (each shard is deterministic).
    assert main([*argv, "--processes", "2", "--run-name", "again"]) == 0
    again = data_dir / "stub" / "again"
    for name in ("events.jsonl", "truth.jsonl", "scenario.json", "spans.jsonl"):
        assert (again / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_processes_refuse_a_paced_run(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_RUN, "--target", "null", "--speed", "1", "--processes", "2"]) != 0
    assert "unpaced" in capsys.readouterr().err
    assert not (data_dir / "stub").exists()


async def test_two_processes_to_kafka_leave_one_ledger_of_every_event(
    settings: Settings, data_dir: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("STREAMWATCH_TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    argv = [*_RUN, "--target", "kafka", "--speed", "0", "--start", "now", "--max-events", "3001"]
    code = await asyncio.to_thread(main, [*argv, "--processes", "2", "--run-name", "kafka2"])
    assert code == 0
    run_dir = data_dir / "stub" / "kafka2"
    # Reconciliation counts `<data_dir>/stub/*/ledger.txt`: one ledger, every event once.
    assert sorted(p.relative_to(data_dir) for p in data_dir.glob("stub/**/ledger.txt")) == [
        Path("stub/kafka2/ledger.txt")
    ]
    ids = _ledger(run_dir)
    assert len(ids) == len(set(ids)) == 3_001
    back = await _read_back(settings.bootstrap_servers, settings.topic(topics.RAW), set(ids), 120)
    assert len(back.seen) == 3_001 and set(back.seen.values()) == {1}
