"""Event generation across concurrent sessions, in event-time order.

Sessions arrive as a Poisson process whose intensity follows the regions' daily load
curves; each session is a `session_run.play` generator. A heap keyed by (next event time,
session number) interleaves them, so the output is globally ordered by event time and, for
one seed and options, byte-for-byte identical on every run.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from platform_stub.config import StubConfig
from platform_stub.control_plane.plane import ControlPlane
from platform_stub.encoding import uuid4_from
from platform_stub.error_codes import build_error_table
from platform_stub.player import PlayerWorld, SessionPlan, SessionProgress
from platform_stub.population import REGIONS, Population, build_population, region_load
from platform_stub.scenarios import Fault, ScenarioTruth, choose_fault, scenario_truth
from platform_stub.session_run import SessionEvents, play
from platform_stub.truth import SessionTruth

_EVENT_TYPE_AT = len('{"event_id":"') + 36 + len('","event_type":"')
_EPOCH_BASE = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # a Monday evening in Europe


def seed_epoch_ms(seed: int) -> int:
    """The fixed simulated start time for `seed` (same seed, same timestamps)."""
    return int(_EPOCH_BASE.timestamp() * 1000) + (seed % 28) * 86_400_000


@dataclass(frozen=True)
class RunOptions:
    """What to simulate: world size, load, length, scenario, seed."""

    seed: int = 1
    members: int = 10_000
    rate: float = 1_000.0  # steady-state events per simulated second (load curve at start)
    duration_s: float = 600.0  # simulated seconds during which new sessions start
    scenario: str = "normal"
    start_ms: int | None = None  # simulated start (epoch ms); None = derived from the seed
    max_events: int | None = None  # hard cap; sessions in flight are cut (truth: incomplete)
    drain: bool = True  # let sessions in flight at the end of the window finish
    # Sessions start this long before `start`, so a live run begins at its full rate instead
    # of ramping up; those events carry past timestamps and are sent without pacing.
    warmup_s: float = 0.0
    config: StubConfig = field(default_factory=StubConfig)
    # One world's traffic split over processes: shard `shard` of `shards` starts its share
    # of the sessions (rate / shards) from random streams of its own, in the same population
    # under the same fault. The union of the shards is the run; its ground truth is the union
    # of theirs. One shard (the default) is the single-process stub, byte for byte.
    shard: int = 0
    shards: int = 1

    def __post_init__(self) -> None:
        if self.shards < 1 or not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}: need 0 <= shard < shards")

    @property
    def stream(self) -> str:
        """Suffix of the random streams' names: empty for one shard (the seed's streams)."""
        return "" if self.shards == 1 else f":shard{self.shard}/{self.shards}"

    @property
    def start(self) -> int:
        """Simulated start time, epoch ms."""
        return self.start_ms if self.start_ms is not None else seed_epoch_ms(self.seed)

    @property
    def end(self) -> int:
        """End of the arrival window, epoch ms."""
        return self.start + int(self.duration_s * 1000)


@dataclass
class Batch:
    """Consecutive events: JSON lines, their Kafka keys (session ids), last event time;
    and the control plane's spans emitted meanwhile (keys: trace ids)."""

    lines: list[str]
    keys: list[str]
    last_ms: int
    spans: list[str] = field(default_factory=list)
    span_keys: list[str] = field(default_factory=list)


def expected_events_per_session(population: Population, config: StubConfig) -> float:
    """Mean events per session, estimated from watch times (sizes the arrival rate)."""
    rng = random.Random(0)
    cfg = config.player
    total_ms = 0.0
    samples = 4_000
    for _ in range(samples):
        title = population.pick_title(rng)
        left = title.runtime_ms * (1 - (rng.uniform(0, 0.8) if rng.random() < 0.3 else 0))
        want = cfg.watch_median_s * 1000 * math.exp(cfg.watch_sigma * rng.gauss(0, 1))
        total_ms += min(left, want)
    # Heartbeats plus startup events, bitrate changes, pauses and the end.
    return total_ms / samples / cfg.heartbeat_ms * 1.15 + 6.0


class StubRun:
    """One simulated run: iterate `batches()`, then read truths and the scenario truth."""

    def __init__(
        self,
        options: RunOptions,
        population: Population | None = None,
        *,
        keep_truths: bool = True,
        on_session_end: Callable[[SessionTruth], None] | None = None,
    ) -> None:
        """`keep_truths=False` keeps no per-session records in memory (long live runs);
        `on_session_end` receives each finished session's truth as it ends."""
        self.options = options
        self._keep_truths = keep_truths
        self._on_session_end = on_session_end
        cfg = options.config
        self.population = population or build_population(options.seed, options.members, cfg.titles)
        span = options.end - options.start
        self.fault: Fault | None = choose_fault(
            options.scenario,
            self.population,
            options.start + int(span * cfg.fault_start_frac),
            options.start + int(span * cfg.fault_end_frac),
        )
        self.errors = build_error_table()
        self.world = PlayerWorld(self.population, self.errors, self.fault, cfg.player)
        stream = options.stream
        self.world.rng = random.Random(f"players:{options.seed}:{options.scenario}{stream}")
        self.control: ControlPlane | None = None
        if cfg.control_plane.enabled:
            self.control = ControlPlane(options.seed, options.scenario, cfg.control_plane, stream)
            self.control.fault = self.fault
            self.world.control = self.control
        self.spans = 0
        self.events_by_type: dict[str, int] = {}
        self.events = 0
        self.sessions_started = 0
        self.finished: list[SessionTruth] = []  # only with keep_truths
        self.sessions_finished = 0
        self.affected: dict[str, str] = {}  # session id -> member id
        self.stopped_early = False
        self._heap: list[tuple[int, int, str, SessionEvents, SessionProgress]] = []
        self._rng = random.Random(f"arrivals:{options.seed}:{options.scenario}{stream}")
        self._sessions_per_ms = (
            options.rate / expected_events_per_session(self.population, cfg) / 1000.0
        )
        if options.shards > 1:
            self._sessions_per_ms /= options.shards
        self._load_minute = -1
        self._region_cum: list[float] = []
        self._load_start = self._total_load(options.start)
        weights = self.population.title_cum_weights
        self._premiere_share = (weights[2] - weights[1]) / weights[-1]
        self._rank = {t.title_id: i for i, t in enumerate(self.population.titles)}
        # Per device family: connection names and cumulative weights, built once (what
        # `random.choices` rebuilt on every play).
        self._connections: dict[str, tuple[tuple[str, ...], list[float], float]] = {}

    def set_fault(self, fault: Fault | None) -> None:
        """Replace the active fault (a live fault injected into a running stub); sessions
        that start from now on play under it."""
        self.fault = fault
        self.world.fault = fault
        if self.control is not None:
            self.control.fault = fault

    # ---- arrivals -----------------------------------------------------------------------

    @staticmethod
    def _total_load(t_ms: int) -> float:
        return sum(region_load(r, t_ms / 1000) for r in REGIONS)

    def _flash_extra(self, t_ms: int) -> float:
        fault = self.fault
        if fault is None or fault.kind != "flash_crowd" or not fault.active(t_ms):
            return 0.0
        return (fault.boost - 1.0) * self._premiere_share

    def _refresh_load(self, t_ms: int) -> None:
        minute = t_ms // 60_000
        if minute != self._load_minute:
            # Region mix and intensity change slowly: recompute them once a simulated minute.
            self._load_minute = minute
            loads = [region_load(r, t_ms / 1000) for r in REGIONS]
            self._region_cum = [sum(loads[: i + 1]) for i in range(len(loads))]

    def _next_gap(self, t_ms: int) -> int:
        self._refresh_load(t_ms)
        intensity = self._sessions_per_ms * self._region_cum[-1] / self._load_start
        intensity *= 1.0 + self._flash_extra(t_ms)
        return max(1, int(self._rng.expovariate(intensity)))

    def _plan(self, t_ms: int) -> SessionPlan:
        self._refresh_load(t_ms)
        rng = self._rng
        pop = self.population
        region = REGIONS[bisect.bisect_left(self._region_cum, rng.random() * self._region_cum[-1])]
        candidates = pop.members_by_region[region.name] or tuple(range(len(pop.members)))
        member = pop.members[candidates[rng.randrange(len(candidates))]]
        device = member.devices[rng.randrange(len(member.devices))]
        extra = self._flash_extra(t_ms)
        if extra and rng.random() < extra / (1.0 + extra):
            title = pop.premiere
        else:
            title = pop.pick_title(rng)
        connection = self._connection(device.family.key, device.family.connections)
        isp = member.isp
        # Long-tail titles miss the edge cache more often and come from the origin.
        origin_p = 0.08 if self._rank[title.title_id] >= 100 else 0.01
        if rng.random() < origin_p:
            oca = pop.ocas[pop.origin_by_region[member.region]]
        else:
            i = bisect.bisect_left(isp.oca_cum_weights, rng.random() * isp.oca_cum_weights[-1])
            oca = pop.ocas[isp.oca_ids[i]]
        resume = int(title.runtime_ms * rng.uniform(0, 0.8)) if rng.random() < 0.3 else 0
        return SessionPlan(
            session_id=uuid4_from(rng),
            member=member,
            profile_id=member.profiles[rng.randrange(len(member.profiles))],
            device=device,
            title=title,
            connection_type=connection,
            oca=oca,
            t0_ms=t_ms,
            seed=rng.getrandbits(64),
            resume_position_ms=resume,
            autoplay=rng.random() < 0.15,
        )

    def _connection(self, family: str, weighted: tuple[tuple[str, float], ...]) -> str:
        """`rng.choices(names, weights)[0]`, the same draw (one `random()`, the same bisect)
        on cumulative weights computed once per family."""
        table = self._connections.get(family)
        if table is None:
            cum = list(itertools.accumulate(w for _, w in weighted))
            table = self._connections[family] = (tuple(c for c, _ in weighted), cum, cum[-1] + 0.0)
        names, cum, total = table
        return names[bisect.bisect(cum, self._rng.random() * total, 0, len(names) - 1)]

    def _session_ended(self, state: SessionProgress) -> None:
        truth = state.truth()
        self.sessions_finished += 1
        if self._keep_truths:
            self.finished.append(truth)
        if self._on_session_end is not None:
            self._on_session_end(truth)
        if state.affected or self._flash_affected(truth):
            self.affected[truth.session_id] = truth.member_id

    def _flash_affected(self, truth: SessionTruth) -> bool:
        fault = self.fault
        return (
            fault is not None
            and fault.kind == "flash_crowd"
            and truth.title_id == fault.value
            and fault.active(truth.started_ms)
        )

    # ---- the event stream ---------------------------------------------------------------

    def batches(self, max_events: int = 1_000, max_span_ms: int | None = None) -> Iterator[Batch]:
        """Events in time order, in batches of at most `max_events` events.

        `max_span_ms` closes a batch once it spans that much simulated time (paced runs
        send small batches often instead of large ones in bursts).
        """
        opts = self.options
        heap = self._heap
        push, replace, pop = heapq.heappush, heapq.heapreplace, heapq.heappop
        by_type = self.events_by_type
        limit = opts.max_events if opts.max_events is not None else -1
        end = opts.end
        t_next = opts.start - int(opts.warmup_s * 1000)
        seq = self.sessions_started
        lines: list[str] = []
        keys: list[str] = []
        first_ms = -1
        events = self.events
        span = max_span_ms if max_span_ms is not None else 1 << 62
        stop_at = 1 << 62 if opts.drain else end
        while True:
            if t_next < end and (not heap or t_next <= heap[0][0]):
                plan = self._plan(t_next)
                state = SessionProgress(plan)
                gen = play(plan, self.world, state)
                t, line = next(gen)
                push(heap, (t, seq, line, gen, state))
                seq += 1
                t_next += self._next_gap(t_next)
                continue
            if not heap:
                break
            t, number, line, gen, state = heap[0]
            if t >= stop_at:
                self.stopped_early = True
                break
            lines.append(line)
            keys.append(state.plan.session_id)
            event_type = line[_EVENT_TYPE_AT : line.index('"', _EVENT_TYPE_AT)]
            by_type[event_type] = by_type.get(event_type, 0) + 1
            events += 1
            if first_ms < 0:
                first_ms = t
            try:
                t2, line2 = next(gen)
                replace(heap, (t2, number, line2, gen, state))
            except StopIteration:
                pop(heap)
                self._session_ended(state)
            if events == limit:
                self.stopped_early = True
                break
            if len(lines) >= max_events or t - first_ms >= span:
                self.events, self.sessions_started = events, seq
                yield self._batch(lines, keys, t)
                lines, keys, first_ms = [], [], -1
        self.events, self.sessions_started = events, seq
        if lines or (self.control is not None and self.control.spans):
            yield self._batch(lines, keys, t if lines else opts.start)

    def _batch(self, lines: list[str], keys: list[str], last_ms: int) -> Batch:
        if self.control is None:
            return Batch(lines, keys, last_ms)
        spans, span_keys = self.control.drain()
        self.spans += len(spans)
        return Batch(lines, keys, last_ms, spans, span_keys)

    # ---- results ------------------------------------------------------------------------

    @property
    def playing(self) -> int:
        """Sessions started and not yet ended."""
        return len(self._heap)

    def in_flight(self) -> list[SessionTruth]:
        """Truth records of sessions cut by `max_events` or the window end (incomplete)."""
        return [entry[4].truth(entry[2]) for entry in sorted(self._heap, key=lambda e: e[1])]

    def truths(self) -> list[SessionTruth]:
        """Every session started: finished ones first (in end order), then cut ones.

        Finished ones only with `keep_truths` (the default)."""
        return self.finished + self.in_flight()

    def scenario_truth(self) -> ScenarioTruth:
        """Ground truth of the scenario (affected members and sessions so far)."""
        affected = dict(self.affected)
        for entry in self._heap:
            state = entry[4]
            if state.affected or self._flash_affected(state.truth(entry[2])):
                affected[state.plan.session_id] = state.plan.member.member_id
        members = self.control.affected_members if self.control is not None else set()
        return scenario_truth(
            self.options.scenario, self.options.seed, self.fault, affected, members
        )
