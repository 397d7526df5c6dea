"""A stub run spread over processes: one world's shards (`RunOptions.shards`), merged.

Generation costs more than producing, so one stub process is the limit of a bulk load; the
shards of one run share its population and fault and each starts its share of the sessions.
Each shard writes a run directory of its own under the run's (`shard-<k>/`); `merge_shards`
then writes the run's files as one process would have:

- `ledger.txt`, `truth.jsonl`, `events.jsonl`, `spans.jsonl`: the shards' files one after the
  other (each shard's part in time order);
- `scenario.json`: the one fault, hit sessions and members of every shard;
- `members.jsonl`: the population (the same in every shard);
- `summary.json`: counts summed, rate over the slowest shard's time.

Only the merged `ledger.txt` is where `streamwatch reconcile` counts produced events
(`<data_dir>/stub/*/ledger.txt`); the shards' own files are removed once merged.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from platform_stub.runner import RunSummary
from platform_stub.scenarios import ScenarioTruth, merge_scenario_truths

_CONCATENATED = ("ledger.txt", "truth.jsonl", "events.jsonl", "spans.jsonl")


def shard_dir(run_dir: Path, shard: int) -> Path:
    """Where shard `shard` of the run in `run_dir` writes its own files."""
    return run_dir / f"shard-{shard}"


def read_scenario_truth(path: Path) -> ScenarioTruth:
    """A `scenario.json` as written by `ScenarioTruth.write`."""
    record = json.loads(path.read_text(encoding="utf-8"))
    record["affected_member_ids"] = tuple(record["affected_member_ids"])
    record["affected_session_ids"] = tuple(record["affected_session_ids"])
    return ScenarioTruth(**record)


def merge_shards(run_dir: Path, summaries: Sequence[RunSummary]) -> RunSummary:
    """Write the run's files from its shards' (in shard order); returns the run's summary."""
    dirs = [Path(s.run_dir) for s in summaries]
    for name in _CONCATENATED:
        parts = [d / name for d in dirs if (d / name).exists()]
        if parts:
            with (run_dir / name).open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out)
    shutil.copyfile(dirs[0] / "members.jsonl", run_dir / "members.jsonl")
    scenario_path = run_dir / "scenario.json"
    merge_scenario_truths([read_scenario_truth(d / "scenario.json") for d in dirs]).write(
        scenario_path
    )
    first = summaries[0]
    by_type: Counter[str] = Counter()
    for s in summaries:
        by_type.update(s.events_by_type)
    events = sum(s.events for s in summaries)
    elapsed = max(s.elapsed_s for s in summaries)
    spans = [s.extra.get("spans_acknowledged") for s in summaries]
    summary = dataclasses.replace(
        first,
        run_dir=str(run_dir),
        events=events,
        delivered=sum(s.delivered for s in summaries),
        sessions_started=sum(s.sessions_started for s in summaries),
        sessions_finished=sum(s.sessions_finished for s in summaries),
        events_by_type=dict(by_type.most_common()),
        elapsed_s=elapsed,
        events_per_s=round(events / elapsed, 1) if elapsed > 0 else 0.0,
        stopped_early=any(s.stopped_early for s in summaries),
        ledger_path=str(run_dir / "ledger.txt") if first.ledger_path else None,
        scenario_path=str(scenario_path),
        truth_path=str(run_dir / "truth.jsonl") if first.truth_path else None,
        extra={
            "shards": len(summaries),
            "spans": sum(int(str(s.extra.get("spans", 0))) for s in summaries),
            "spans_acknowledged": (
                None if any(a is None for a in spans) else sum(int(str(a)) for a in spans)
            ),
            "spans_per_play": round(
                sum(int(str(s.extra.get("spans", 0))) for s in summaries)
                / max(1, sum(s.sessions_started for s in summaries)),
                2,
            ),
        },
    )
    summary.write(run_dir / "summary.json")
    for d in dirs:
        shutil.rmtree(d)
    return summary
