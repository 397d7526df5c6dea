"""`streamwatch stub run|scenarios`: simulated players for load, demos and ground truth."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.endpoints import events_url
from platform_stub.generator import RunOptions, seed_epoch_ms
from platform_stub.runner import PIPELINE_TARGETS, Pacing, RunSummary, SinkFactory, run
from platform_stub.scenarios import SCENARIOS
from platform_stub.shards import merge_shards, shard_dir
from platform_stub.sinks import (
    Delivered,
    FileSink,
    HttpSink,
    KafkaSink,
    MeteredSink,
    NullSink,
    Sink,
)
from streamwatch import topics
from streamwatch.errors import ConfigurationError
from streamwatch.service_metrics import stage_metrics, start_service_exporter
from streamwatch.settings import Settings, get_settings

TARGETS = ("kafka", "http", "file", "null")
_LIVE_TARGETS = PIPELINE_TARGETS


def resolve_start(value: str | None, target: str, seed: int, duration_s: float) -> int:
    """Simulated start (epoch ms) from --start: seed | now | backfill | an ISO-8601 time.

    Default: `now` for live targets (Kafka, HTTP: dashboards show the present) and `seed`
    for file and null (same seed, same bytes).
    """
    choice = value or ("now" if target in _LIVE_TARGETS else "seed")
    if choice == "seed":
        return seed_epoch_ms(seed)
    if choice == "now":
        return int(time.time() * 1000)
    if choice == "backfill":
        # The whole window ends now: an unpaced load lands in the recent past.
        return int(time.time() * 1000 - duration_s * 1000)
    try:
        parsed = datetime.fromisoformat(choice.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(
            f"--start: expected seed|now|backfill|ISO time, got {choice!r}"
        ) from exc
    if parsed.tzinfo is None:
        raise ConfigurationError("--start: give a timezone, e.g. 2026-03-02T19:00:00Z")
    return int(parsed.timestamp() * 1000)


def sink_factory(args: argparse.Namespace, settings: Settings) -> SinkFactory:
    """The sink for --target."""
    target: str = args.target
    metrics = stage_metrics("stub")

    def make(run_dir: Path, raw_delivered: Delivered) -> Sink:
        delivered = MeteredSink.counting(raw_delivered, metrics)
        return MeteredSink(destination(run_dir, delivered), metrics)

    def destination(run_dir: Path, delivered: Delivered) -> Sink:
        if target == "file":
            return FileSink(run_dir / "events.jsonl", delivered)
        if target == "null":
            return NullSink(delivered)
        if target == "kafka":
            return KafkaSink(
                settings.bootstrap_servers,
                settings.topic(topics.RAW),
                delivered,
                linger_ms=args.linger_ms,
                compression_type=args.compression,
            )
        base = args.collector_url or f"http://{settings.collector_host}:{settings.collector_port}"
        return HttpSink(events_url(base), delivered)

    return make


def span_sink_factory(args: argparse.Namespace, settings: Settings) -> SinkFactory:
    """Where the control plane's spans go: `spans.jsonl` for --target file, nowhere for
    null, else straight to `telemetry.spans.v1` (services export their own telemetry; the
    players' collector is not on their path)."""
    target: str = args.target

    def make(run_dir: Path, delivered: Delivered) -> Sink:
        if target == "file":
            return FileSink(run_dir / "spans.jsonl", delivered)
        if target == "null":
            return NullSink(delivered)
        return KafkaSink(
            settings.bootstrap_servers,
            settings.topic(topics.SPANS),
            delivered,
            linger_ms=args.linger_ms,
            compression_type=args.compression,
        )

    return make


def _cmd_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_service_exporter(settings, "stub")
    speed = args.speed if args.speed is not None else (1.0 if args.target in _LIVE_TARGETS else 0.0)
    if args.processes < 1 or (args.processes > 1 and speed > 0):
        raise ConfigurationError(
            "--processes: 1 or more, and more than 1 only unpaced (--speed 0): pacing and "
            "live faults follow one simulated clock in one process"
        )
    start_ms = resolve_start(args.start, args.target, args.seed, args.duration)
    options = RunOptions(
        seed=args.seed,
        members=args.members,
        rate=args.rate,
        duration_s=args.duration,
        scenario=args.scenario,
        start_ms=start_ms,
        max_events=args.max_events,
        drain=args.drain if args.drain is not None else speed == 0,
        warmup_s=args.warmup,
    )
    if not args.control_plane:
        plane = replace(options.config.control_plane, enabled=False)
        options = replace(options, config=replace(options.config, control_plane=plane))
    name = args.run_name or (
        f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{args.scenario}-seed{args.seed}"
    )
    run_dir = settings.data_dir / "stub" / name
    if args.target == "http" and args.max_batch > settings.max_batch_events:
        raise ConfigurationError(
            f"--max-batch {args.max_batch} exceeds the collector's limit "
            f"({settings.max_batch_events} events)"
        )
    options = _with_batch(options, args.max_batch)
    if speed > 0 and args.warmup == 0:
        print(
            "stub: the event rate builds up over the first minutes as sessions accumulate; "
            "use --warmup 1800 to start at the full rate",
            file=sys.stderr,
        )
    if args.processes > 1:
        summary = _run_processes(args, options, run_dir)
    else:
        summary = run(
            options,
            sink_factory(args, settings),
            run_dir,
            target=args.target,
            pacing=Pacing(speed=speed),
            truth=args.truth,
            span_sink_factory=span_sink_factory(args, settings) if args.control_plane else None,
        )
    spans_ok = summary.extra.get("spans_acknowledged") in (None, summary.extra.get("spans"))
    print(json.dumps({
        "run_dir": summary.run_dir,
        "events": summary.events,
        "acknowledged": summary.delivered,
        "sessions": summary.sessions_started,
        "events_per_s": summary.events_per_s,
        "events_by_type": summary.events_by_type,
        "scenario": summary.scenario_path,
        "truth": summary.truth_path,
        "ledger": summary.ledger_path,
        "spans": summary.extra.get("spans"),
        "spans_acknowledged": summary.extra.get("spans_acknowledged"),
        "spans_per_play": summary.extra.get("spans_per_play"),
    }, indent=2))  # fmt: skip
    return 0 if summary.delivered == summary.events and spans_ok else 1


def _run_shard(args: argparse.Namespace, options: RunOptions, run_dir: Path) -> RunSummary:
    """One shard of `--processes`, in a process of its own (sinks made here: they hold
    connections and cannot cross processes)."""
    settings = get_settings()
    return run(
        options,
        sink_factory(args, settings),
        run_dir,
        target=args.target,
        truth=args.truth,
        progress=None,
        span_sink_factory=span_sink_factory(args, settings) if args.control_plane else None,
    )


def _run_processes(args: argparse.Namespace, options: RunOptions, run_dir: Path) -> RunSummary:
    """`--processes N`: the run's N shards in N processes, merged into one run directory."""
    n = args.processes
    cap = options.max_events
    shards = [
        replace(
            options, shard=k, shards=n,
            max_events=None if cap is None else cap // n + (1 if k < cap % n else 0),
        )
        for k in range(n)
    ]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        futures = [
            pool.submit(_run_shard, args, shard, shard_dir(run_dir, k))
            for k, shard in enumerate(shards)
        ]
        summaries = [f.result() for f in futures]
    return merge_shards(run_dir, summaries)


def _with_batch(options: RunOptions, max_batch: int) -> RunOptions:
    return replace(options, config=replace(options.config, batch_events=max_batch))


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from platform_stub.population import build_population
    from platform_stub.scenarios import choose_fault

    population = build_population(args.seed, args.members)
    for name in SCENARIOS:
        fault = choose_fault(name, population, 0, 1)
        if fault is None:
            print(f"{name:20s} no fault")
        elif fault.service is not None:
            where = fault.instance_group or fault.region
            print(f"{name:22s} service {fault.service} {fault.endpoint or ''} in {where} "
                  f"moves {fault.metric}")  # fmt: skip
        else:
            print(f"{name:20s} {fault.dimension} = {fault.value!r} moves {fault.metric}")
    return 0


def register(sub: Any) -> None:
    """Add `stub` subcommands."""
    stub = sub.add_parser("stub", help="simulated players: events, faults and ground truth")
    ssub = stub.add_subparsers(dest="stub_command", required=True, metavar="ACTION")

    r = ssub.add_parser("run", help="generate playback events into Kafka, the collector or a file")
    r.add_argument("--members", type=int, default=10_000, help="population size")
    r.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="steady-state events per simulated second (reached once sessions accumulate; "
        "follows the regions' daily load curve from the start time)",
    )
    r.add_argument(
        "--duration", type=float, default=600.0, help="simulated seconds during which plays start"
    )
    r.add_argument("--scenario", choices=SCENARIOS, default="normal")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--target", choices=TARGETS, default="kafka")
    r.add_argument(
        "--collector-url",
        help="collector base URL (e.g. http://127.0.0.1:8088) or its /v1/events endpoint "
        "(default: settings' collector)",
    )
    r.add_argument(
        "--speed",
        type=float,
        help="simulated seconds per wall second; 0 = as fast as possible "
        "(default: 1 for kafka/http, 0 for file/null)",
    )
    r.add_argument("--max-events", type=int, help="stop after this many events")
    r.add_argument("--truth", action="store_true", help="write truth.jsonl (one line per session)")
    r.add_argument("--start", help="simulated start: seed | now | backfill | ISO-8601 time")
    r.add_argument(
        "--warmup", type=float, default=0.0, help="start sessions this many seconds early "
        "(sent unpaced) so a live run begins at full rate",
    )  # fmt: skip
    r.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let sessions finish after the window (default: yes when unpaced)",
    )
    r.add_argument("--run-name", help="output directory name under <data_dir>/stub/")
    r.add_argument("--max-batch", type=int, default=1_000, help="events per sink batch")
    r.add_argument("--linger-ms", type=int, default=20, help="Kafka producer linger")
    r.add_argument("--compression", choices=("gzip", "lz4", "zstd", "snappy"), default=None)
    r.add_argument(
        "--processes", type=int, default=1, help="generate in this many processes, the shards "
        "of one world (unpaced runs: generation is what limits one stub process)",
    )  # fmt: skip
    r.add_argument(
        "--control-plane",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="plays go through the simulated services, whose spans go to telemetry.spans.v1 "
        "(spans.jsonl for --target file)",
    )
    r.set_defaults(handler=_cmd_run)

    s = ssub.add_parser("scenarios", help="list fault scenarios and what each one hits")
    s.add_argument("--members", type=int, default=10_000)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(handler=_cmd_scenarios)
