"""The detector on simulated minutes: raise fast, localise, suppress, resolve, stay quiet."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from contract.records import Incident, MinuteCounts
from streams.detector import DetectorState, evaluate, incident_id
from streams.rollup import dimension_pairs
from testkit.synthetic_sessions import T0

REGIONS = ("us-east", "us-west", "eu-west", "ap-south")
OCAS = {r: [f"oca-{r}-{i}" for i in range(3)] for r in REGIONS}
ISPS = ("isp-a", "isp-b", "isp-c", "isp-d", "isp-e")
DEVICES = ("tv", "mobile", "web", "console")
APPS = ("7.1.0", "7.2.0", "7.3.0")


@dataclass
class Fault:
    """Multiplies a metric for sessions matching `where` during [start, end) minutes."""

    where: dict[str, str]
    start: int
    end: int = 10**9
    fail_p: float | None = None
    rebuffer_p: float | None = None
    startup_x: float | None = None

    def hits(self, minute: int, s: dict[str, str]) -> bool:
        return self.start <= minute < self.end and all(s[k] == v for k, v in self.where.items())


@dataclass
class Traffic:
    """Session-minutes with a realistic spread over the dimensions."""

    seed: int
    viewers: int = 3_000
    faults: list[Fault] = field(default_factory=list)
    tiny_oca_sessions: int = 0  # sessions pinned to a small, fully broken OCA

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sessions = [self._session() for _ in range(self.viewers)]
        self.sessions += [
            {**self._session(), "oca_id": "oca-tiny"} for _ in range(self.tiny_oca_sessions)
        ]

    def _session(self) -> dict[str, str]:
        rng = self.rng
        region = rng.choices(REGIONS, weights=(4, 3, 2, 1))[0]
        return {
            "region": region,
            "oca_id": rng.choice(OCAS[region]),
            "isp": rng.choices(ISPS, weights=(5, 4, 3, 2, 1))[0],
            "device_type": rng.choice(DEVICES),
            "app_version": rng.choices(APPS, weights=(1, 3, 6))[0],
            "title_id": f"t-{int(rng.paretovariate(1.2)) % 40}",
        }

    def minute(self, m: int) -> dict[tuple[str, str], MinuteCounts]:
        rng = self.rng
        values: dict[tuple[str, str], MinuteCounts] = {}
        sums: dict[tuple[str, str], list[Any]] = {}
        for s in self.sessions:
            fail_p, rb_p, startup_x = 0.005, 0.03, 1.0
            for f in self.faults:
                if f.hits(m, s):
                    fail_p = f.fail_p if f.fail_p is not None else fail_p
                    rb_p = f.rebuffer_p if f.rebuffer_p is not None else rb_p
                    startup_x = f.startup_x if f.startup_x is not None else startup_x
            if s["oca_id"] == "oca-tiny":
                fail_p = 1.0
            new_play = rng.random() < 0.1
            startup = rng.lognormvariate(7.2, 0.45) * startup_x if new_play else None
            failed = rng.random() < fail_p
            rebuffer = int(rng.expovariate(1 / 3_000)) if rng.random() < rb_p else 0
            watch = 0 if failed else 60_000 - rebuffer
            for dim in dimension_pairs(s):
                acc = sums.get(dim)
                if acc is None:
                    acc = sums[dim] = [0, 0, 0, 0, 0, 0, 0, []]
                acc[0] += 1
                acc[1] += new_play
                acc[2] += failed
                acc[3] += not failed
                acc[4] += watch
                acc[5] += rebuffer
                acc[6] += rebuffer > 0
                if startup is not None:
                    acc[7].append(startup)
        # Plain sums first: setting pydantic fields per session-minute is the slow part.
        for dim, (active, plays, failed_n, playing, watch_ms, rb_ms, rb_n, starts) in sums.items():
            c = values[dim] = MinuteCounts(
                active_sessions=active,
                plays=plays,
                failed_sessions=failed_n,
                concurrent_viewers=playing,
                watch_ms=watch_ms,
                rebuffer_ms=rb_ms,
                rebuffer_count=rb_n,
                rebuffering_sessions=rb_n,
            )
            c.startup.extend(starts)
        return values


def run(traffic: Traffic, minutes: int) -> list[tuple[int, Incident]]:
    state = DetectorState()
    out: list[tuple[int, Incident]] = []
    for m in range(minutes):
        for inc in evaluate(state, T0 + timedelta(minutes=m), traffic.minute(m)):
            out.append((m, inc))
    return out


def test_no_incident_on_normal_traffic() -> None:
    for seed in (1, 2, 3):
        assert run(Traffic(seed), 45) == []


def test_small_cohort_never_pages() -> None:
    # 15 sessions on one OCA fail every minute: real, but too few to page anyone.
    assert run(Traffic(4, tiny_oca_sessions=15), 20) == []


def test_oca_outage_present_from_the_start_is_raised_and_localised() -> None:
    bad = OCAS["us-east"][1]
    found = run(Traffic(5, faults=[Fault({"oca_id": bad}, start=0, fail_p=0.6)]), 8)
    opened = [(m, i) for m, i in found if i.status == "open"]
    assert len(opened) == 1, opened
    m, inc = opened[0]
    assert m <= 2
    assert (inc.metric, inc.dimension, inc.value) == ("playback_failure_pct", "oca_id", bad)
    assert inc.affected_sessions > 50 and inc.severity in ("major", "critical")


def test_incident_raised_suppressed_then_resolved() -> None:
    bad = OCAS["eu-west"][0]
    fault = Fault({"oca_id": bad}, start=15, end=25, fail_p=0.5)
    found = run(Traffic(6, faults=[fault]), 35)
    assert [(i.status, i.value) for _, i in found] == [("open", bad), ("resolved", bad)]
    (m_open, opened), (m_res, resolved) = found
    assert 15 <= m_open <= 17
    assert opened.started_at == T0 + timedelta(minutes=m_open)
    assert resolved.incident_id == opened.incident_id and resolved.revision == 1
    assert 25 <= m_res <= 25 + 4 and resolved.resolved_at is not None
    assert resolved.affected_sessions > opened.affected_sessions  # kept counting


def test_isp_congestion_is_a_rebuffer_incident_on_the_isp() -> None:
    fault = Fault({"isp": "isp-c"}, start=10, rebuffer_p=0.6)
    found = run(Traffic(7, faults=[fault]), 14)
    opened = [(m, i) for m, i in found if i.status == "open"]
    assert [(i.metric, i.dimension, i.value) for _, i in opened] == [
        ("rebuffer_pct", "isp", "isp-c")
    ]
    assert opened[0][0] <= 12


def test_bad_app_release_blames_the_app_version() -> None:
    fault = Fault({"app_version": "7.1.0"}, start=5, fail_p=0.4)
    found = run(Traffic(8, faults=[fault]), 9)
    opened = [(m, i) for m, i in found if i.status == "open"]
    assert [(i.metric, i.dimension, i.value) for _, i in opened] == [
        ("playback_failure_pct", "app_version", "7.1.0")
    ]
    assert opened[0][0] <= 7


def test_fault_on_an_intersection_blames_the_narrowest_full_explanation() -> None:
    # App 7.3.0 breaks on TVs only. Dimensions are single columns, so the slice itself is
    # not a candidate; device_type=tv (25 % of traffic) and app_version=7.3.0 (60 %) both
    # remove all the excess; the narrower one is reported, never an unrelated value.
    fault = Fault({"app_version": "7.3.0", "device_type": "tv"}, start=5, fail_p=0.4)
    found = run(Traffic(8, faults=[fault]), 9)
    opened = [i for _, i in found if i.status == "open"]
    assert [(i.metric, i.dimension, i.value) for i in opened] == [
        ("playback_failure_pct", "device_type", "tv")
    ]


def test_slow_startup_in_a_region_is_a_startup_incident() -> None:
    fault = Fault({"region": "us-west"}, start=3, startup_x=3.0)
    found = run(Traffic(9, faults=[fault]), 7)
    opened = [(m, i) for m, i in found if i.status == "open"]
    assert [(i.metric, i.dimension, i.value) for _, i in opened] == [
        ("startup_p95_ms", "region", "us-west")
    ]
    assert opened[0][0] <= 5


def test_global_fault_after_warm_up_is_raised_on_all() -> None:
    fault = Fault({}, start=12, fail_p=0.2)
    found = run(Traffic(10, faults=[fault]), 15)
    opened = [(m, i) for m, i in found if i.status == "open"]
    assert [(i.dimension, i.value) for _, i in opened] == [("all", "all")]
    assert opened[0][0] <= 14


def test_incident_id_is_deterministic() -> None:
    a = incident_id("rebuffer_pct", ("isp", "isp-c"), T0)
    assert a == incident_id("rebuffer_pct", ("isp", "isp-c"), T0)
    assert a != incident_id("rebuffer_pct", ("isp", "isp-d"), T0)


def test_detector_state_round_trips_as_json() -> None:
    state = DetectorState()
    traffic = Traffic(11, faults=[Fault({"isp": "isp-a"}, start=0, rebuffer_p=0.7)])
    evaluate(state, T0, traffic.minute(0))
    assert state.open and DetectorState.model_validate_json(state.model_dump_json()) == state


def _warm_then_outage(pending_cause: str | None) -> Incident:
    """Ten normal minutes, then an outage on one OCA at minute 10; before minute 10 is
    judged, minute 9 is made to look as the detector leaves a minute that was anomalous on
    `pending_cause` without paging (below `immediate_z`: it waits for a second minute)."""
    bad = OCAS["us-east"][0]
    traffic = Traffic(8, faults=[Fault({"oca_id": bad}, start=10, fail_p=0.6)])
    state = DetectorState()
    for m in range(10):
        assert evaluate(state, T0 + timedelta(minutes=m), traffic.minute(m)) == []
    if pending_cause is not None:
        nine = int((T0 + timedelta(minutes=9)).timestamp() * 1000)
        metric = "playback_failure_pct"
        state.pending, state.pending_streak = {metric: nine}, {metric: 1}
        state.pending_cause, state.pending_since = {metric: pending_cause}, {metric: nine}
    opened = evaluate(state, T0 + timedelta(minutes=10), traffic.minute(10))
    assert [(i.status, i.value) for i in opened] == [("open", bad)]
    return opened[0]


def test_an_incident_confirmed_on_its_second_minute_started_on_the_first() -> None:
    # The SRE's "Started" is when the fault began, not the minute that confirmed it.
    inc = _warm_then_outage(f"oca_id|{OCAS['us-east'][0]}")
    assert inc.started_at == T0 + timedelta(minutes=9)
    assert inc.detected_at == T0 + timedelta(minutes=11)
    assert inc.incident_id == incident_id(inc.metric, ("oca_id", inc.value), inc.started_at)


def test_a_previous_minute_on_another_cause_does_not_date_an_incident_back() -> None:
    assert _warm_then_outage("isp|isp-a").started_at == T0 + timedelta(minutes=10)
    assert _warm_then_outage(None).started_at == T0 + timedelta(minutes=10)
