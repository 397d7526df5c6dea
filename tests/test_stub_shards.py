"""One world's traffic split over stub processes (`RunOptions.shards`): the shards share the
population and the fault, draw their own sessions, and together are one run of the rate."""

from __future__ import annotations

import dataclasses
import json

import pytest

from platform_stub.generator import RunOptions, StubRun
from platform_stub.scenarios import merge_scenario_truths

OPTIONS = RunOptions(seed=7, members=2_000, rate=150.0, duration_s=300.0, scenario="oca_outage")


def _run(options: RunOptions) -> tuple[StubRun, list[str], list[str]]:
    stub = StubRun(options)
    lines: list[str] = []
    keys: list[str] = []
    for batch in stub.batches(1_000):
        lines += batch.lines
        keys += batch.keys
    return stub, lines, keys


def test_shards_split_one_world_into_disjoint_sessions_with_one_ground_truth() -> None:
    whole, whole_lines, _ = _run(OPTIONS)
    shards = [_run(dataclasses.replace(OPTIONS, shard=i, shards=2)) for i in range(2)]

    # Each shard starts its share of the sessions; together about as many as one process.
    sessions = [set(keys) for _, _, keys in shards]
    assert sessions[0] and sessions[1] and not sessions[0] & sessions[1]
    events = sum(len(lines) for _, lines, _ in shards)
    assert 0.8 * len(whole_lines) < events < 1.2 * len(whole_lines)
    for _, lines, _ in shards:
        assert 0.3 * len(whole_lines) < len(lines) < 0.7 * len(whole_lines)
    ids = [json.loads(line)["event_id"] for _, lines, _ in shards for line in lines]
    assert len(set(ids)) == len(ids)

    # Same population and fault; the run's ground truth is the union of the shards'.
    truths = [stub.scenario_truth() for stub, _, _ in shards]
    merged = merge_scenario_truths(truths)
    single = whole.scenario_truth()
    assert (merged.kind, merged.value, merged.start_ms, merged.end_ms) == (
        single.kind, single.value, single.start_ms, single.end_ms,
    )  # fmt: skip
    assert all(t.affected_session_ids for t in truths)
    assert set(merged.affected_session_ids) == {s for t in truths for s in t.affected_session_ids}
    assert set(merged.affected_session_ids) <= sessions[0] | sessions[1]


def test_a_shard_is_deterministic_and_differs_from_the_other_shard() -> None:
    small = dataclasses.replace(OPTIONS, max_events=5_000, shards=3)
    first = _run(dataclasses.replace(small, shard=1))[1]
    assert first == _run(dataclasses.replace(small, shard=1))[1]
    assert first != _run(dataclasses.replace(small, shard=2))[1]
    assert first != _run(dataclasses.replace(OPTIONS, max_events=5_000))[1]


def test_shards_that_disagree_on_the_fault_are_refused() -> None:
    a = StubRun(dataclasses.replace(OPTIONS, max_events=100)).scenario_truth()
    b = dataclasses.replace(a, value="another-oca")
    with pytest.raises(ValueError, match="disagree"):
        merge_scenario_truths([a, b])


@pytest.mark.parametrize(("shard", "shards"), [(2, 2), (-1, 2), (0, 0)])
def test_a_shard_outside_its_count_is_refused(shard: int, shards: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        RunOptions(shard=shard, shards=shards)
