"""The CLI path an operator takes with a stub file run: replay, load members, look up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from streamwatch.settings import Settings
from tests.test_support_data import own_settings

REPO = Path(__file__).resolve().parents[1]


def _sw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_stub_file_run_replayed_and_looked_up(settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STREAMWATCH_DATA_DIR": str(tmp_path),
        "STREAMWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMWATCH_SEARCH_INDEX_PREFIX": str(own_settings(settings, "cli").search_index_prefix),
    }
    run = _sw(
        env, "stub", "run", "--target", "file", "--members", "300", "--rate", "30",
        "--duration", "300", "--scenario", "oca_outage", "--seed", "5", "--start", "backfill",
        "--run-name", "support-cli",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    run_dir = tmp_path / "stub" / "support-cli"
    replay = subprocess.run(
        [sys.executable, "-m", "testkit.search_loader", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr
    assert "sessions" in replay.stdout and "members" in replay.stdout
    again = _sw(env, "support", "load-members", str(run_dir))
    assert again.returncode == 0 and "indexed 300 members" in again.stdout
    member = json.loads((run_dir / "members.jsonl").read_text().splitlines()[0])
    agent = f"cli-{uuid.uuid4().hex[:6]}"
    by_email = _sw(env, "support", "lookup", member["email"], "--agent", agent, "--json")
    assert by_email.returncode == 0, by_email.stderr
    result = json.loads(by_email.stdout)
    assert result["member"]["member_id"] == member["member_id"]
    assert result["query_kind"] == "email"
    assert member["email"] not in by_email.stdout
    odd = _sw(env, "support", "lookup", "member_id:*", "--agent", agent)
    assert odd.returncode == 2 and "not an id or an email" in odd.stderr
    assert "Traceback" not in odd.stderr
