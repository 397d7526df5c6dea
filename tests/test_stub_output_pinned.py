"""The stub's output for a seed, pinned: events, keys, spans, truths and scenario truth.

The digests were computed by the stub before its hot path was rewritten for speed
(issue 10); any change to what a seed produces fails here. A deliberate change to the model
updates the digests in the same commit, saying why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from platform_stub.config import StubConfig
from platform_stub.generator import RunOptions, StubRun

_NO_CONTROL_PLANE = dataclasses.replace(
    StubConfig(), control_plane=dataclasses.replace(StubConfig().control_plane, enabled=False)
)

CASES = {
    "normal": RunOptions(seed=3, members=1_500, rate=60.0, duration_s=1_200.0, max_events=15_000),
    "oca_outage": RunOptions(
        seed=4, members=1_500, rate=80.0, duration_s=300.0, scenario="oca_outage"
    ),
    "isp_congestion": RunOptions(
        seed=8, members=3_000, rate=150.0, duration_s=200.0, warmup_s=300.0,
        scenario="isp_congestion",
    ),
    "cache_cluster_loss": RunOptions(
        seed=3, members=1_500, rate=80.0, duration_s=300.0, scenario="cache_cluster_loss",
    ),
    "login_outage": RunOptions(
        seed=4, members=1_500, rate=80.0, duration_s=300.0, scenario="login_outage", drain=False
    ),
    "no_control_plane": RunOptions(
        seed=5, members=2_000, rate=80.0, duration_s=300.0, config=_NO_CONTROL_PLANE,
        scenario="bad_app_release",
    ),
}  # fmt: skip


def output_digest(options: RunOptions, batch_events: int = 777) -> str:
    """sha256 over everything a run emits and reports, in order."""
    stub = StubRun(options)
    h = hashlib.sha256()
    for batch in stub.batches(batch_events):
        for line, key in zip(batch.lines, batch.keys, strict=True):
            h.update(f"{key}\t{line}\n".encode())
        for span, trace in zip(batch.spans, batch.span_keys, strict=True):
            h.update(f"{trace}\t{span}\n".encode())
        h.update(f"{batch.last_ms}\n".encode())
    for truth in stub.truths():
        h.update(truth.to_json().encode())
    scenario = dataclasses.asdict(stub.scenario_truth())
    h.update(json.dumps(scenario, sort_keys=True, default=sorted).encode())
    counts = [stub.events, stub.sessions_started, stub.sessions_finished, stub.spans]
    h.update(json.dumps([counts, sorted(stub.events_by_type.items())]).encode())
    return h.hexdigest()


PINNED = {
    "cache_cluster_loss": "71084536decdf94721a80c4d6f13241a52bfc05d01d885a86658e7f16b14979c",
    "isp_congestion": "7d6361ce8497c40563b127f154f9721f6b052bfb8d40b6dacbfc4711df80b86a",
    "login_outage": "42682c5cdd0ddff8039e9413cc5a2150a9beb97400301e85a2f39cd12fea9165",
    "no_control_plane": "6ecc50d3a6c323ac201e5a33036f473b9991b189f18919b0e79407dc8e8147ef",
    "normal": "8c10abfffc4e120b547045cc74668daaee3c9a6755394b8b86caa120cf6870b1",
    "oca_outage": "bb64d84a771247fd3373c175cc5aa391381bfc512ef67bd1e7aaf49a9ab651b9",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_seed_still_produces_the_same_output(case: str) -> None:
    assert output_digest(CASES[case]) == PINNED[case]
