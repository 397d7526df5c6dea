"""The licence-outage world of the support tests, with the control plane's spans added.

Not a test module. The world (`tests.test_support_data`) holds the stub's events, sessions,
members and the scenario's ground-truth incident; here the same stub run is generated again
(same seed and options, so the same events) and `testkit.spans` derives the spans of the
plays the tests look at: every session of a member hit by the licence fault (their failed
plays get the licence service's 503s) and of a member who was not hit, plus one failed and
one good login of the hit member.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from indexers.search_factory import make_backend
from platform_stub.generator import RunOptions, StubRun
from streamwatch.settings import Settings
from testkit.span_index import index_spans
from testkit.spans import cloud_region, login_spans, sessions_of, spans_for_session
from tests.test_support_data import DURATION_S, MEMBERS, RATE, SEEDS, World, run_start

SCENARIO = "drm_license_outage"


@dataclass(frozen=True)
class TraceWorld:
    """The world, and who is who in it."""

    world: World
    hit_member: str
    hit_session: str
    hit_region: str
    clean_member: str
    spans: int

    @property
    def settings(self) -> Settings:
        """Settings of the world's indices."""
        return self.world.settings


def _events_by_session() -> dict[str, list[Mapping[str, Any]]]:
    run = StubRun(
        RunOptions(
            seed=SEEDS[SCENARIO], members=MEMBERS, rate=RATE, duration_s=DURATION_S,
            scenario=SCENARIO, start_ms=int(run_start().timestamp() * 1000),
        )
    )  # fmt: skip
    return sessions_of(json.loads(line) for b in run.batches(5000) for line in b.lines)


def _codes(events: list[Mapping[str, Any]]) -> set[str]:
    return {str(e["payload"].get("code")) for e in events if e["event_type"] == "error"}


_BUILT: dict[str, TraceWorld] = {}


def trace_world(world: World) -> TraceWorld:
    """Add the spans to `world`'s indices (once per test process)."""
    key = str(world.settings.search_index_prefix)
    if key in _BUILT:
        return _BUILT[key]
    by_session = _events_by_session()
    hit = next(t for t in world.failed_affected() if t.fatal_code == "DRM-2001")
    by_member: dict[str, list[list[Mapping[str, Any]]]] = {}
    for evs in by_session.values():
        by_member.setdefault(str(evs[0]["member_id"]), []).append(evs)
    affected = set(world.truth.affected_member_ids)
    clean = next(
        m
        for m, sessions in sorted(by_member.items())
        if m not in affected
        and len(sessions) >= 2
        and all(
            not _codes(s) and any(e["event_type"] == "first_frame" for e in s) for s in sessions
        )
    )
    spans = [
        sp for m in (hit.member_id, clean) for s in by_member[m] for sp in spans_for_session(s)
    ]
    login_at = run_start() + timedelta(minutes=3)
    region = cloud_region(hit.region)
    spans += login_spans(hit.member_id, login_at, region=region, failed=True)
    spans += login_spans(hit.member_id, login_at + timedelta(minutes=2), region=region)
    backend = make_backend(world.settings)
    try:
        count = index_spans(backend, world.settings, spans)
    finally:
        backend.close()
    built = TraceWorld(world, hit.member_id, hit.session_id, region, clean, count)
    _BUILT[key] = built
    return built
