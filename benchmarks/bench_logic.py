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
The prepared events are moved out of the garbage collector's sight (`gc.freeze`) first.

    .venv/bin/python -m benchmarks.bench_logic --events 200000 [--repeat 3] [--before] [--profile]

`--before` also times the logic as it was before issue 10's speed-up (kept as a test oracle
in `tests/streams_reference`), same run, same events. Figures are CPU time per event
(`time.process_time`, steadier than wall time on a shared machine); wall time is printed too.

`--codecs` times, on the same events and the states the logic leaves open, what the worker
pays per event around the logic, each against the pydantic way it replaced (same bytes,
tested in `tests/test_streams_state_json.py` and `tests/test_streams_event_json.py`):
writing session states and, after every batch of events, the partition's current window
(`json_bytes`), enriching a parsed event, and writing the forwarded event; and parsing a
raw event (`contract.fast_parse.parse_event_json` against `EVENT_ADAPTER.validate_json`,
the same events, tested in `tests/test_contract_fast_parse.py`), as the stub writes it and
as the collector writes it.

The 1-minute load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import os
import pstats
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import TypeAdapter

from contract.fast_parse import parse_event_json
from ingest.events import EVENT_ADAPTER, Event
from platform_stub.generator import RunOptions, StubRun
from streams import partition, rollup
from streams.committed_state import Checkpoint
from streams.config import StreamsConfig
from streams.enrichment import Catalog
from streams.partition import Published
from streams.rollup import WindowState
from streams.sessionizer import SessionState
from streams.validate import dump_event


def stub_values(n: int, seed: int = 5) -> list[bytes]:
    """About `n` stub events' JSON in event-time order (the data `bench_worker` uses)."""
    run = StubRun(RunOptions(seed=seed, members=20_000, rate=1_000, duration_s=3_600, max_events=n))
    values: list[bytes] = []
    for b in run.batches():
        values += [v.encode() for v in b.lines]
    return values


def run_logic(events: list[Event], impl: ModuleType = partition) -> Published:
    """Everything one partition publishes for `events` (offsets 0..n-1), then a last scan
    far enough ahead in event time to close every session and window."""
    cfg = StreamsConfig()
    part = impl.PartitionState(0, Checkpoint(), cfg, impl.MemoryStore())
    out: Published = impl.Published()
    apply, done_with = part.apply, part.done_with
    for offset, event in enumerate(events):
        apply(event, offset, out)
        done_with(offset, out)
    part.cp.watermark_ms += cfg.session.inactivity_timeout_ms + 3 * 60_000
    part.scan(out)
    return out


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The least (wall, CPU) seconds of `repeat` runs (CPU time: the machine is shared)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    return wall, cpu


def bench_codecs(values: list[bytes], events: list[Event], repeat: int) -> None:
    """Per state or event: the fast writers against the pydantic ones (same bytes)."""
    session_json = TypeAdapter(SessionState)
    window_json = TypeAdapter(rollup._StoredWindow)

    def pydantic_window(w: WindowState) -> bytes:
        # Not `w.values`: handing the counts out turns the window's cache off.
        stored = rollup._StoredWindow(
            w.window_start_ms,
            w.partial,
            w._values,
            w.closed,
            w.revision,
            w.late_events,
            w.touched_since_close,
        )
        return window_json.dump_json(stored)

    # Windows as the worker writes them: the partition's current window after each batch
    # (80 events: a 500-record batch over 6 partitions), both writers at the same points.
    part = partition.PartitionState(0, Checkpoint(), StreamsConfig(), partition.MemoryStore())
    out = partition.Published()
    half = events[: len(events) // 2]
    w_old = w_new = 0.0
    writes = w_bytes = 0
    for offset, event in enumerate(half):  # mid-run: sessions open
        part.apply(event, offset, out)
        part.done_with(offset, out)
        if offset % 80 == 79 and (w := part.windows.get(part._own_key)) is not None:
            w._flush()  # the batch's increments, added to the counts (logic, not writing)
            c0 = time.process_time()
            new = w.json_bytes()
            c1 = time.process_time()
            old = pydantic_window(w)
            w_old += time.process_time() - c1
            w_new += c1 - c0
            if new != old:
                raise AssertionError("the window writers disagree")
            writes += 1
            w_bytes += len(new)
    sessions = list(part.sessions.values())
    catalog = Catalog()
    few = values[:20_000]
    n_bytes = sum(len(s.json_bytes()) for s in sessions) // max(1, len(sessions))
    # What the collector forwards: the same events re-written by pydantic (v2 fields set).
    collected = [EVENT_ADAPTER.dump_json(EVENT_ADAPTER.validate_json(v)) for v in values]
    pairs: list[tuple[str, list[Any], Callable[[Any], object], Callable[[Any], object]]] = [
        ("parse (stub event)", values, EVENT_ADAPTER.validate_json, parse_event_json),
        (
            "parse (collector-written event)",
            collected,
            EVENT_ADAPTER.validate_json,
            parse_event_json,
        ),
        (
            f"session state ({len(sessions)}, ~{n_bytes} B)",
            sessions,
            session_json.dump_json,
            SessionState.json_bytes,
        ),
        # Each run of enrich gets events freshly parsed (the in-place one changes them).
        ("enrich (parsed event)", few, lambda e: catalog.enrich(e), catalog.enrich_parsed),
        (
            "forwarded event JSON",
            events,
            lambda e: e.model_dump_json().encode(),
            dump_event,
        ),
    ]
    print(f"codecs load1={os.getloadavg()[0]:.2f} (CPU us per item, best of {repeat})")
    print(
        f"  {f'window state per batch ({writes}, ~{w_bytes // max(1, writes) // 1000} kB)':36}"
        f" pydantic {w_old / writes * 1e6:8.1f}  now {w_new / writes * 1e6:8.1f}"
        f"  ratio {w_old / w_new:5.2f}x  (one run)"
    )
    for name, items, old_fn, new_fn in pairs:
        if items is few:
            parsed = [[EVENT_ADAPTER.validate_json(v) for v in few] for _ in range(2 * repeat)]
            old_s = min(_cpu(old_fn, parsed[i]) for i in range(repeat))
            new_s = min(_cpu(new_fn, parsed[repeat + i]) for i in range(repeat))
        else:
            old_s = min(_cpu(old_fn, items) for _ in range(repeat))
            new_s = min(_cpu(new_fn, items) for _ in range(repeat))
        k = len(items)
        print(
            f"  {name:36} pydantic {old_s / k * 1e6:8.1f}  now {new_s / k * 1e6:8.1f}"
            f"  ratio {old_s / new_s:5.2f}x"
        )


def _cpu(fn: Callable[[Any], object], items: list[Any]) -> float:
    gc.collect()
    c0 = time.process_time()
    for item in items:
        fn(item)
    return time.process_time() - c0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; best is kept")
    parser.add_argument("--profile", action="store_true", help="cProfile one logic run")
    parser.add_argument(
        "--before", action="store_true", help="also time the logic before issue 10's speed-up"
    )
    parser.add_argument(
        "--codecs", action="store_true", help="time the state and event writers against pydantic"
    )
    args = parser.parse_args()
    values = stub_values(args.events)
    catalog = Catalog()
    events = [catalog.enrich(EVENT_ADAPTER.validate_json(v)) for v in values]
    n = len(events)
    # The prepared input is not the logic's memory: keep the collector from walking its
    # 100,000s of objects again and again (the worker holds one batch, not the whole run).
    gc.freeze()
    before: ModuleType = partition
    if args.before:
        # The slow logic kept as the equivalence tests' oracle (a checkout has `tests/`).
        before = importlib.import_module("tests.streams_reference.partition")
    if args.codecs:
        bench_codecs(values, events, args.repeat)
        return 0
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_logic, events)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0

    def parse() -> None:
        for v in values:
            EVENT_ADAPTER.validate_json(v)

    sides: list[tuple[str, Callable[[], object]]] = [("parse only (reference)", parse)]
    if args.before:
        sides.append(("logic before (tests/streams_reference)", lambda: run_logic(events, before)))
    sides.append(("pure logic", lambda: run_logic(events)))
    timed = [(name, *_best(fn, args.repeat)) for name, fn in sides]
    out = run_logic(events)
    print(
        f"logic events={n} ({sum(map(len, values)) / 1e6:.1f} MB of JSON)"
        f" summaries={len(out.summaries)} rollups={len(out.rollups)}"
        f" partials={len(out.partials)} load1={os.getloadavg()[0]:.2f}"
    )
    parse_cpu = timed[0][2]
    for name, wall, cpu in timed:
        print(
            f"  {name:40} {n / cpu:8.0f} ev per CPU-s  {cpu / n * 1e6:6.1f} us CPU/event"
            f"  (wall {n / wall:8.0f} ev/s)  ratio {parse_cpu / cpu:.2f}x parsing"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
