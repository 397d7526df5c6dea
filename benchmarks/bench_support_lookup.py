"""Support lookup latency: a full member lookup, p50/p99, at a given data size.

Run against the local stack (`streamwatch infra up` first):

    .venv/bin/python -m benchmarks.bench_support_lookup --events 5000000

Loads `--events` stub events (platform_stub, fixed seed) into daily event indices of their
own prefix, a session document per stub session and the member directory, then times, for
random members that have sessions:

- full lookup: `SupportService.lookup` (validate, directory, sessions, incidents, correlate,
  summary, case note, one audit write) plus the drill-down of the newest session (its events
  from the daily indices, audited) - what an agent waits for;
- reference: one bare `term` search for the member's sessions on the same index through the
  same client - the engine's floor for this question.

and prints both and their ratio. Not part of the test suite.

Loading shortcut (benchmark only): session documents are built from the stub's per-session
truth records with the search sink's column names, instead of running the sessionizer over
every event (pydantic-validating 5 M events alone takes longer than the whole load).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from contract.tables import TABLE_BY_NAME
from indexers import naming
from indexers.documents import flatten
from indexers.search_backend import BulkOp, SearchBackend
from indexers.search_factory import make_backend
from indexers.search_setup import ensure_search_ready
from ingest.error_catalog import load_catalog
from platform_stub.generator import RunOptions, StubRun
from platform_stub.population import member_record
from platform_stub.truth import SessionTruth
from streamwatch.settings import Settings
from support_console.directory import load_members
from support_console.identity import AgentIdentity
from support_console.service import LookupRequest, SupportService

BULK = 5_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def session_document(t: SessionTruth) -> dict[str, Any]:
    """A sessions-index document (search sink columns) from a stub truth record."""
    started = "started" if t.first_frame else ("start_failure" if t.fatal_before_start else (
        "exit_before_start"))  # fmt: skip
    catalog = load_catalog()

    def category(code: str) -> str:
        entry = catalog.get(code)
        return entry.category if entry else "unknown"

    errors = [
        {"code": c, "category": category(c), "severity": "warning", "at": _iso(t.ended_ms)}
        for c in t.error_codes
        if c != t.fatal_code
    ]
    if t.fatal_code:
        errors.append(
            {
                "code": t.fatal_code,
                "category": category(t.fatal_code),
                "severity": "fatal",
                "at": _iso(t.ended_ms),
            }
        )
    doc = {k: v for k, v in asdict(t).items() if k in TABLE_BY_NAME["sessions"].column_names}
    doc.update(
        first_event_at=_iso(t.started_ms),
        play_requested_at=_iso(t.started_ms),
        last_event_at=_iso(t.ended_ms),
        ended_at=_iso(t.ended_ms),
        start_outcome=started,
        playback_failed=t.ended_in_fatal,
        fatal_error_code=t.fatal_code,
        session_errors=errors,
    )
    return doc


def _send(backend: SearchBackend, ops: list[BulkOp]) -> None:
    bad = [r for r in backend.bulk(ops) if not (r.ok or r.already_done)]
    if bad:
        raise SystemExit(f"{len(bad)} documents rejected: {bad[0].error_reason}")


def load(settings: Settings, events: int, members: int, seed: int) -> list[str]:
    """Index everything; returns member ids that have sessions."""
    backend = make_backend(settings)
    ensure_search_ready(backend, settings)
    rate = 2_000.0
    run = StubRun(
        RunOptions(
            seed=seed,
            members=members,
            rate=rate,
            duration_s=events / rate * 2,
            max_events=events,
            start_ms=int((datetime.now(UTC) - timedelta(days=1)).timestamp() * 1000),
        )
    )
    table = TABLE_BY_NAME["events"]
    made: set[str] = set()
    t0 = time.perf_counter()
    n = 0
    for batch in run.batches(BULK):
        ops = []
        for line in batch.lines:
            doc = flatten(json.loads(line), table)
            day = datetime.fromisoformat(str(doc["event_time"]).replace("Z", "+00:00")).date()
            index = naming.events_index(settings, day)
            if index not in made:
                backend.create_index(index)
                made.add(index)
            ops.append(BulkOp("index", index, str(doc["event_id"]), doc))
        _send(backend, ops)
        n += len(ops)
        if n % 500_000 < BULK:
            print(f"  {n:,} events indexed ({n / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    sessions_index = naming.sessions_index(settings)
    docs = [session_document(t) for t in run.truths()]
    for i in range(0, len(docs), BULK):
        chunk = docs[i : i + BULK]
        _send(backend, [BulkOp("index", sessions_index, d["session_id"], d) for d in chunk])
    load_members(backend, settings, (member_record(m) for m in run.population.members))
    backend.refresh(naming.events_alias(settings))
    backend.refresh(sessions_index)
    print(f"loaded {n:,} events, {len(docs):,} sessions in {time.perf_counter() - t0:,.0f} s")
    return sorted({d["member_id"] for d in docs})


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(settings: Settings, member_ids: list[str], lookups: int, seed: int) -> None:
    """Time full lookups and the bare reference search; print p50/p99 and ratios."""
    service = SupportService.open(settings)
    agent = AgentIdentity("bench", "cli")
    rng = random.Random(seed)
    sample = [rng.choice(member_ids) for _ in range(lookups + 20)]
    full: list[float] = []
    ref: list[float] = []
    sessions_index = naming.sessions_index(settings)
    for i, member_id in enumerate(sample):
        t = time.perf_counter()
        result = service.lookup(agent, LookupRequest(member_id, period=timedelta(days=7)))
        if result.sessions:
            service.session_timeline(agent, result.sessions[0])
        elapsed = time.perf_counter() - t
        body = {"size": 500, "query": {"bool": {"filter": [{"term": {"member_id": member_id}}]}}}
        t = time.perf_counter()
        service.backend.search(sessions_index, body)
        ref_elapsed = time.perf_counter() - t
        if i >= 20:  # warm-up excluded
            full.append(elapsed * 1000)
            ref.append(ref_elapsed * 1000)
    p50, p99 = _pct(full, 0.5), _pct(full, 0.99)
    r50, r99 = _pct(ref, 0.5), _pct(ref, 0.99)
    print(f"full member lookup (+ drill-down): p50 {p50:.1f} ms  p99 {p99:.1f} ms  (n={len(full)})")
    print(f"reference term search:             p50 {r50:.1f} ms  p99 {r99:.1f} ms")
    print(f"ratio full / reference:            p50 {p50 / r50:.1f}x  p99 {p99 / r99:.1f}x")
    print(f"mean full lookup {statistics.mean(full):.1f} ms")


def _events_in(settings: Settings) -> int:
    return make_backend(settings).count(naming.events_alias(settings))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load (unless already loaded), measure, clean up."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=5_000_000, help="events to load (5,000,000)")
    p.add_argument("--members", type=int, default=0, help="members (default: events / 250)")
    p.add_argument("--lookups", type=int, default=200, help="timed lookups")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the indices for a re-run")
    args = p.parse_args(argv)
    members = args.members or max(500, args.events // 250)
    prefix = f"streamwatch-bench-support-{args.events}-"
    settings = Settings().model_copy(update={"search_index_prefix": prefix})
    print(f"data: {args.events:,} events, {members:,} members, index prefix {prefix}")
    existing = _events_in(settings)
    if existing >= args.events:
        print(f"reusing {existing:,} indexed events")
        backend = make_backend(settings)
        answer = backend.search(
            naming.sessions_index(settings),
            {"size": 0, "aggs": {"m": {"terms": {"field": "member_id", "size": 65_000}}}},
        )
        member_ids = [b["key"] for b in answer["aggregations"]["m"]["buckets"]]
    else:
        member_ids = load(settings, args.events, members, args.seed)
    measure(settings, member_ids, args.lookups, args.seed)
    if not args.keep:
        backend = make_backend(settings)
        for index in backend.list_indices(f"{prefix}*"):
            backend.delete_index(index)
        print(f"deleted the {prefix}* indices (use --keep to reuse them)")


if __name__ == "__main__":
    main()
