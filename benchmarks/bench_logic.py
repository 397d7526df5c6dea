"""Benchmark of the stream worker's pure logic, as a ratio against parsing in the same run.

Stub events, parsed and enriched beforehand (the worker's qoe agent receives them enriched
from the validate hop), are fed one by one through `streams.partition.PartitionState`
(`apply` + `done_with`, with log offsets as the worker passes them, and a final scan that
closes everything): sessionize, roll up, close sessions and windows, publish summaries,
rollups and the detector's partials. Nothing is serialized but what the logic itself
serializes (the partials); Kafka and state writes are the worker's side, not measured here.

The reference, timed in the same run over the same events' bytes: parsing alone
(`EVENT_ADAPTER.validate_json`, the pydantic decode every event pays once). The run is
repeated `--repeat` times and the best time of each side is kept (the machine is shared).

    .venv/bin/python -m benchmarks.bench_logic --events 200000 [--repeat 3] [--profile]

The 1-minute load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from collections.abc import Callable

from ingest.events import EVENT_ADAPTER, Event
from platform_stub.generator import RunOptions, StubRun
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streams.partition import MemoryStore, PartitionState, Published


def stub_values(n: int, seed: int = 5) -> list[bytes]:
    """About `n` stub events' JSON in event-time order (the data `bench_worker` uses)."""
    run = StubRun(RunOptions(seed=seed, members=20_000, rate=1_000, duration_s=3_600, max_events=n))
    values: list[bytes] = []
    for b in run.batches():
        values += [v.encode() for v in b.lines]
    return values


def run_logic(events: list[Event], config: StreamsConfig | None = None) -> Published:
    """Everything one partition publishes for `events` (offsets 0..n-1), then a last scan
    far enough ahead in event time to close every session and window."""
    cfg = config or StreamsConfig()
    part = PartitionState(0, Checkpoint(), cfg, MemoryStore())
    out = Published()
    apply, done_with = part.apply, part.done_with
    for offset, event in enumerate(events):
        apply(event, offset, out)
        done_with(offset, out)
    part.cp.watermark_ms += cfg.session.inactivity_timeout_ms + 3 * 60_000
    part.scan(out)
    return out


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; best is kept")
    parser.add_argument("--profile", action="store_true", help="cProfile one logic run")
    args = parser.parse_args()
    values = stub_values(args.events)
    catalog = Catalog()
    events = [catalog.enrich(EVENT_ADAPTER.validate_json(v)) for v in values]
    n = len(events)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_logic, events)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0

    def parse() -> None:
        for v in values:
            EVENT_ADAPTER.validate_json(v)

    parse_s = _best(parse, args.repeat)
    logic_s = _best(lambda: run_logic(events), args.repeat)
    out = run_logic(events)
    print(
        f"logic events={n} ({sum(map(len, values)) / 1e6:.1f} MB of JSON)"
        f" summaries={len(out.summaries)} rollups={len(out.rollups)}"
        f" partials={len(out.partials)} load1={os.getloadavg()[0]:.2f}"
    )
    print(
        f"  parse only (reference)   {n / parse_s:10.0f} ev/s   {parse_s / n * 1e6:6.1f} us/event"
    )
    print(
        f"  pure logic               {n / logic_s:10.0f} ev/s   {logic_s / n * 1e6:6.1f} us/event"
        f"   ratio {parse_s / logic_s:.2f}x parsing"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
