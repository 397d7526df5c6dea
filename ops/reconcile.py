"""`streamwatch reconcile`: count every stage of the pipeline and name the stage of any gap.

Sources (each count says where it came from; a source that does not exist is "unknown",
never invented):

- produced: the stub's ledgers (`<data_dir>/stub/<run>/ledger.txt`, one acknowledged id a line);
- collector accepted / rejected: the collector's Prometheus counters (since its start);
- raw, validated: messages in `telemetry.raw.v1` / `telemetry.events.v1` (offsets);
- streams seen / valid / dead-lettered / duplicates: the streams validator's per-partition
  reconciliation counters (carried in its `checkpoints` changelog topic);
- dead-lettered by stage and reason: the dead-letter topic itself;
- indexed: events in the search alias; warehoused: distinct events in the warehouse.

With --since/--until, topic counts use Kafka record timestamps and store counts use
`event_time`; sources that cannot be scoped to a time range are reported as unknown.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from indexers import naming
from indexers.search_factory import make_backend
from indexers.warehouse_reader import connect_readonly
from streamwatch import topics
from streamwatch.settings import Settings


@dataclass(frozen=True)
class Count:
    """One number and where it came from; `value` None means unknown."""

    value: int | None
    source: str
    note: str = ""


@dataclass(frozen=True)
class Gap:
    """Records missing between two stages."""

    stage: str
    missing: int
    detail: str


@dataclass
class ReconcileReport:
    """Every stage's count, dead-letters by stage and reason, and the gaps found."""

    counts: dict[str, Count] = field(default_factory=dict)
    deadletters: dict[str, dict[str, int]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "counts": {k: asdict(v) for k, v in self.counts.items()},
            "deadletters": self.deadletters,
            "gaps": [asdict(g) for g in self.gaps],
            "notes": self.notes,
            "ok": not self.gaps,
        }

    def value(self, name: str) -> int | None:
        """A count's value (None when unknown or absent)."""
        count = self.counts.get(name)
        return None if count is None else count.value


# --- sources --------------------------------------------------------------------------


def ledger_count(settings: Settings, run: str | None = None) -> Count:
    """Event ids acknowledged to the stub (every run, or one run)."""
    root = settings.data_dir / "stub"
    ledgers = [root / run / "ledger.txt"] if run else sorted(root.glob("*/ledger.txt"))
    ledgers = [p for p in ledgers if p.exists()]
    if not ledgers:
        return Count(None, f"{root}/*/ledger.txt", "no stub ledger found")
    ids: set[str] = set()
    lines = 0
    for path in ledgers:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    ids.add(line.strip())
                    lines += 1
    note = f"{len(ledgers)} run(s)" + (
        f", {lines - len(ids)} ids listed twice" if lines > len(ids) else ""
    )
    return Count(len(ids), "stub ledger", note)


def collector_counts(settings: Settings) -> tuple[Count, Count]:
    """Accepted and rejected events from the collector's /metrics (since its start)."""
    url = f"http://{settings.collector_host}:{settings.collector_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        unknown = Count(None, url, "collector not reachable")
        return unknown, unknown
    accepted = rejected = 0.0
    for line in text.splitlines():
        if line.startswith("streamwatch_collector_events_accepted_total"):
            accepted += float(line.rsplit(" ", 1)[1])
        elif line.startswith("streamwatch_collector_events_rejected_total"):
            rejected += float(line.rsplit(" ", 1)[1])
    note = "since the collector process started"
    return Count(int(accepted), "collector /metrics", note), Count(
        int(rejected), "collector /metrics", note
    )


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in described if d.get("error_code") == 0 for p in d["partitions"]]
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def topic_count(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    topic: str,
    since: datetime | None,
    until: datetime | None,
) -> Count:
    """Messages in `topic` (optionally with record timestamps in [since, until))."""
    parts = await _partitions(bootstrap, topic)
    if not parts:
        return Count(None, topic, "topic not found")
    begin = await consumer.beginning_offsets(parts)
    end = await consumer.end_offsets(parts)
    lo, hi = dict(begin), dict(end)
    if since is not None:
        found = await consumer.offsets_for_times(
            {tp: int(since.timestamp() * 1000) for tp in parts}
        )
        lo = {tp: (found[tp].offset if found[tp] else end[tp]) for tp in parts}
    if until is not None:
        found = await consumer.offsets_for_times(
            {tp: int(until.timestamp() * 1000) for tp in parts}
        )
        hi = {tp: (found[tp].offset if found[tp] else end[tp]) for tp in parts}
    note = "offsets; compacted/expired records are not counted"
    return Count(sum(max(0, hi[tp] - lo[tp]) for tp in parts), topic, note)


async def read_all(
    consumer: AIOKafkaConsumer, bootstrap: str, topic: str
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every message currently in `topic`."""
    parts = await _partitions(bootstrap, topic)
    if not parts:
        return []
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    end = await consumer.end_offsets(parts)
    out: list[tuple[bytes | None, bytes]] = []
    while True:
        positions = [await consumer.position(tp) for tp in parts]
        if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
            return out
        batch = await consumer.getmany(timeout_ms=500, max_records=10000)
        for records in batch.values():
            out.extend((r.key, r.value or b"") for r in records)


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer, letting only a cancellation of the calling task through."""
    # aiokafka 0.14: a group-less consumer whose internal task was cancelled before it first
    # ran re-raises that CancelledError from stop(); only ours may propagate.
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def _in_range(when: str | None, since: datetime | None, until: datetime | None) -> bool:
    if when is None or (since is None and until is None):
        return True
    at = datetime.fromisoformat(when)
    return (since is None or at >= since) and (until is None or at < until)


def search_count(settings: Settings, since: datetime | None, until: datetime | None) -> Count:
    """Events in the search alias (event_time in range)."""
    backend = make_backend(settings)
    alias = naming.events_alias(settings)
    try:
        backend.refresh(alias)
        query = None
        if since is not None or until is not None:
            bounds = {k: v.isoformat() for k, v in (("gte", since), ("lt", until)) if v}
            query = {"range": {"event_time": bounds}}
        return Count(backend.count(alias, query), f"{backend.name} {alias}")
    except Exception as exc:  # engine down: the count is unknown, the report still runs
        return Count(None, f"{backend.name} {alias}", f"unavailable: {exc}")
    finally:
        backend.close()


def warehouse_count(settings: Settings, since: datetime | None, until: datetime | None) -> Count:
    """Distinct events in the warehouse (event_time in range)."""
    con = connect_readonly(settings)
    try:
        where, params = ["true"], []
        if since is not None:
            where.append("event_time >= ?")
            params.append(since)
        if until is not None:
            where.append("event_time < ?")
            params.append(until)
        row = con.execute(f"SELECT count(*) FROM events WHERE {' AND '.join(where)}", params)
        value = row.fetchone()
        return Count(int(value[0]) if value else 0, f"warehouse {naming.warehouse_root(settings)}")
    finally:
        con.close()


# --- the report -----------------------------------------------------------------------


async def reconcile(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    run: str | None = None,
) -> ReconcileReport:
    """Collect every count and find the gaps."""
    report = ReconcileReport()
    ranged = since is not None or until is not None
    c = report.counts
    c["produced"] = (
        Count(None, "stub ledger", "ledger has no times: not scoped to a range")
        if ranged
        else ledger_count(settings, run)
    )
    accepted, rejected = collector_counts(settings)
    c["collector_accepted"] = accepted if not ranged else Count(None, accepted.source, "unscoped")
    c["collector_rejected"] = rejected if not ranged else Count(None, rejected.source, "unscoped")

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        c["raw"] = await topic_count(
            consumer, settings.bootstrap_servers, settings.topic(topics.RAW), since, until
        )
        c["validated"] = await topic_count(
            consumer, settings.bootstrap_servers, settings.topic(topics.EVENTS), since, until
        )
        stats_topic = settings.topic(topics.STREAMS_CHECKPOINTS_CHANGELOG)
        latest: dict[bytes | None, dict[str, int]] = {}
        for key, value in await read_all(consumer, settings.bootstrap_servers, stats_topic):
            if value:
                # Each raw partition's checkpoint carries its reconciliation counters.
                latest[key] = json.loads(value).get("stats", {})
        letters = await read_all(
            consumer, settings.bootstrap_servers, settings.topic(topics.DEADLETTER)
        )
    finally:
        await stop_quietly(consumer)

    if latest and not ranged:
        totals: Counter[str] = Counter()
        for partition_stats in latest.values():
            totals.update({k: int(v) for k, v in partition_stats.items() if k != "last_offset"})
        src = f"streams checkpoints ({stats_topic})"
        c["streams_seen"] = Count(totals["raw"], src)
        c["streams_valid"] = Count(totals["valid"], src)
        c["streams_dead_lettered"] = Count(totals["dead_lettered"], src)
        c["duplicates_dropped"] = Count(totals["duplicates"], src)
    else:
        why = "scoped to a time range" if ranged else "no streams counters found"
        for name in (
            "streams_seen",
            "streams_valid",
            "streams_dead_lettered",
            "duplicates_dropped",
        ):
            c[name] = Count(None, "streams checkpoints", why)

    by_stage: dict[str, Counter[str]] = {}
    sink_event_letters: Counter[str] = Counter()
    events_topic = settings.topic(topics.EVENTS)
    for _, value in letters:
        try:
            letter = json.loads(value)
        except ValueError:
            continue
        if not _in_range(letter.get("rejected_at"), since, until):
            continue
        stage = str(letter.get("source", "unknown"))
        by_stage.setdefault(stage, Counter())[str(letter.get("reason", "unknown"))] += 1
        if letter.get("source_topic") == events_topic:
            sink_event_letters[stage] += 1
    report.deadletters = {k: dict(v) for k, v in sorted(by_stage.items())}
    c["dead_lettered"] = Count(sum(sum(v.values()) for v in by_stage.values()), "dead-letter topic")

    c["indexed"] = await asyncio.to_thread(search_count, settings, since, until)
    c["warehoused"] = await asyncio.to_thread(warehouse_count, settings, since, until)
    _find_gaps(report, sink_event_letters)
    return report


def _find_gaps(report: ReconcileReport, sink_event_letters: Counter[str]) -> None:
    v = report.value
    produced, raw = v("produced"), v("raw")
    if produced is not None and raw is not None and raw < produced:
        report.gaps.append(Gap("ingest", produced - raw, "acknowledged to the stub, not in raw"))
    seen = v("streams_seen")
    if seen is not None and raw is not None and seen < raw:
        report.gaps.append(
            Gap("streams", raw - seen, "raw messages the validator has not accounted for (lag?)")
        )
    valid, dead, dups = v("streams_valid"), v("streams_dead_lettered"), v("duplicates_dropped")
    if None not in (seen, valid, dead, dups) and seen != (valid or 0) + (dead or 0) + (dups or 0):
        report.gaps.append(
            Gap(
                "streams",
                (seen or 0) - (valid or 0) - (dead or 0) - (dups or 0),
                "validator counters do not add up: raw != valid + dead + duplicates",
            )
        )
    # Distinct validated events: the validator's count when known, else the topic's.
    expected = valid if valid is not None else v("validated")
    if expected is None:
        report.notes.append("validated count unknown: sink gaps not checked")
        return
    sinks = (
        ("search sink", "indexed", "sink.search"),
        ("warehouse sink", "warehoused", "sink.warehouse"),
    )
    for stage, name, source in sinks:
        have = v(name)
        if have is None:
            report.notes.append(f"{name} unknown: {report.counts[name].note}")
            continue
        want = expected - sink_event_letters.get(source, 0)
        if have < want:
            report.gaps.append(Gap(stage, want - have, f"validated events not {name} (lag?)"))
        elif have > want:
            # The counts are taken at different moments while events flow (the validator
            # publishes its counters every few seconds): a sink ahead of them is not a gap.
            report.notes.append(
                f"{name} is {have - want:,} ahead of the validator's last published count: "
                "the counts are taken at different moments while events flow; run it again "
                "when the pipeline is idle for an exact comparison"
            )


def render_report(report: ReconcileReport) -> str:
    """Human-readable report."""
    lines = ["stage                     count  source"]
    for name, count in report.counts.items():
        shown = "unknown" if count.value is None else f"{count.value:,}"
        note = f"  ({count.note})" if count.note else ""
        lines.append(f"{name:22s} {shown:>8s}  {count.source}{note}")
    if report.deadletters:
        lines.append("")
        lines.append("dead-lettered by stage and reason:")
        for stage, reasons in report.deadletters.items():
            for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"  {stage:16s} {reason:40s} {n:,}")
    lines.append("")
    if report.gaps:
        for gap in report.gaps:
            lines.append(f"GAP at {gap.stage}: {gap.missing:,} missing — {gap.detail}")
    else:
        lines.append("no gap: every stage accounts for its input")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def stub_runs(settings: Settings) -> list[Path]:
    """Run directories under `<data_dir>/stub`."""
    return sorted(p.parent for p in (settings.data_dir / "stub").glob("*/ledger.txt"))
