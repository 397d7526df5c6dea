"""The stream worker end to end on the real local Kafka, against the stub's ground truth.

A stub run (plus injected duplicates and malformed messages) goes to the raw topic; a real
worker process validates, sessionizes and rolls it up. Checked: the counts reconcile
exactly (raw = validated + dead-lettered + duplicates dropped), every dead letter carries
its source, every session summary equals the stub's truth, and state survives a restart.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_stub.generator import RunOptions, StubRun
from streams.progress import checkpoints, stats_totals
from streamwatch import topics
from streamwatch.settings import Settings
from streamwatch.topics_cli import create_topics
from tests import streams_helpers
from tests.streams_helpers import produce_raw, read_all, stop

pytestmark = pytest.mark.integration

DEADLINE_S = 600.0  # a deadline, not a speed assertion: the machine may be shared
BAD_MESSAGES = [b"{not json", b'{"event_id": "not-a-uuid", "event_type": "heartbeat"}', b""]


@pytest.fixture(scope="module")
def own_settings(settings: Settings) -> Settings:
    """The session's stack with a prefix of our own: no other test writes to our raw topic."""
    scoped = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}streams-{uuid.uuid4().hex[:6]}.",
            # Not pytest's tmp dir: concurrent pytest runs prune each other's old ones.
            "data_dir": Path(tempfile.mkdtemp(prefix="streamwatch-streams-test-")),
        }
    )
    asyncio.run(create_topics(scoped))
    return scoped


@pytest.fixture()
def start_worker(own_settings: Settings) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(tag: str) -> subprocess.Popen[bytes]:
        p = streams_helpers.start_worker(own_settings, tag, loglevel="WARNING")
        procs.append(p)
        return p

    yield start
    for p in procs:  # only the processes this test started
        if p.poll() is None:
            p.kill()
            p.wait()


async def stats(s: Settings) -> dict[str, int]:
    """Latest reconciliation counters of every raw partition (in its checkpoint), summed."""
    total = stats_totals(await checkpoints(s))
    return {k: total[k] for k in ("raw", "valid", "dead_lettered", "duplicates")}


async def wait_for(s: Settings, raw_total: int, proc: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        assert proc.poll() is None, "worker exited early"
        st = await stats(s)
        if st["raw"] >= raw_total:
            return st
        assert asyncio.get_running_loop().time() < deadline, f"worker stuck at {st}"
        await asyncio.sleep(1.0)


async def latest_summaries(s: Settings) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in await read_all(s, topics.SESSIONS):
        d = json.loads(m.value)
        if d["session_id"] not in out or d["revision"] >= out[d["session_id"]]["revision"]:
            out[d["session_id"]] = d
    return out


async def test_worker_reconciles_and_matches_stub_truth(
    own_settings: Settings, start_worker: Any
) -> None:
    s = own_settings
    # At least 100,000 events (issue #4, acceptance 2): 4,000 members at 840 events/s.
    run = StubRun(RunOptions(seed=11, members=4000, rate=840, duration_s=130))
    lines: list[tuple[bytes | None, bytes]] = []
    for batch in run.batches():
        lines += [(k.encode(), v.encode()) for k, v in zip(batch.keys, batch.lines, strict=True)]
    assert len(lines) >= 100_000
    truths = {t.session_id: t for t in run.truths()}
    # Re-sent by a retrying client, right after the original (replays long after are
    # tests/test_streams_replay_dedupe.py).
    resent = set(range(5, 40, 7))
    duplicates = [lines[i] for i in sorted(resent)]
    records = [r for i, line in enumerate(lines) for r in ([line, line] if i in resent else [line])]
    records += [(b"bad", v) for v in BAD_MESSAGES]
    await produce_raw(s, records)

    proc = start_worker("first")
    st = await wait_for(s, len(records), proc)
    # Summaries are written before the batch's offsets commit; wait for all of them.
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while len(summaries := await latest_summaries(s)) < len(truths):
        assert asyncio.get_running_loop().time() < deadline, (len(summaries), len(truths))
        await asyncio.sleep(1.0)
    assert stop(proc) == 0  # SIGTERM: a clean stop

    # Reconciliation: every raw message is accounted for exactly once.
    assert st == {
        "raw": len(records),
        "valid": len(lines),
        "dead_lettered": len(BAD_MESSAGES),
        "duplicates": len(duplicates),
    }
    events = await read_all(s, topics.EVENTS)
    assert len(events) == len(lines)
    assert len({json.loads(m.value)["event_id"] for m in events}) == len(lines)
    letters = [json.loads(m.value) for m in await read_all(s, topics.DEADLETTER)]
    assert sorted(base64_decode(d["original_b64"]) for d in letters) == sorted(BAD_MESSAGES)
    assert {d["source_topic"] for d in letters} == {s.topic(topics.RAW)}
    assert all(d["source_offset"] is not None and d["reason"] for d in letters)

    # Every session summary equals the stub's truth.
    assert set(summaries) == set(truths)
    for sid, t in truths.items():
        got = summaries[sid]
        assert got["ended_by"] == ("playback_end" if t.complete else "timeout"), sid
        assert got["event_count"] == t.events, sid
        assert got["startup_ms"] == t.startup_ms, sid
        assert (got["start_outcome"] == "start_failure") == t.fatal_before_start, sid
        assert (got["start_outcome"] == "exit_before_start") == t.exit_before_start, sid
        assert got["in_play_failure"] == t.fatal_after_start, sid
        assert got["exit_reason"] == t.exit_reason, sid
        assert got["watch_ms"] == t.watch_ms, sid
        assert (got["rebuffer_ms"], got["rebuffer_count"]) == (t.rebuffer_ms, t.rebuffer_count)
        assert [e["code"] for e in got["errors"]] == list(t.error_codes), sid
        assert got["fatal_error_code"] == t.fatal_code, sid
        assert (got["upshifts"], got["downshifts"]) == (t.upshifts, t.downshifts), sid
        for dim in ("member_id", "title_id", "device_type", "app_version", "region", "isp"):
            assert got[dim] == getattr(t, dim), (sid, dim)
        assert got["oca_id"] == t.oca_id, sid
        if t.watch_ms > 0:
            # No event ends a seek's re-buffering: it is estimated from the reported watch
            # time (exact for one seek, split evenly between several).
            assert got["avg_bitrate_kbps"] == pytest.approx(t.avg_bitrate_kbps, rel=0.01), sid

    # Minute rollups exist for closed minutes, all dimensions, from the same sessions.
    rollups = [json.loads(m.value) for m in await read_all(s, topics.MINUTE)]
    assert {r["dimension"] for r in rollups} >= {"all", "region", "isp", "oca_id"}
    plays = sum(r["counts"]["plays"] for r in rollups if r["dimension"] == "all")
    assert 0 < plays <= len(truths)

    # Restart: the seen-set and sessions come back from their changelogs.
    again = lines[-20:]
    await produce_raw(s, again)
    proc2 = start_worker("second")
    st2 = await wait_for(s, len(records) + len(again), proc2)
    assert stop(proc2) == 0
    assert st2["duplicates"] == len(duplicates) + len(again)
    assert st2["valid"] == len(lines)
    assert len(await read_all(s, topics.EVENTS)) == len(lines)


def base64_decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
