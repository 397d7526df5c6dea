"""A warehouse holding a stub run's events with the control plane's spans and service minutes.

The stub's control plane does not emit spans yet: `testkit.spans` derives them from the
players' events (a licence outage run by default), and `minutes_of` rolls them up as the
streams' service-minute rollup would. Written with the warehouse sink's own writer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract.tables import TABLE_BY_NAME
from indexers.arrow_rows import rows_to_table
from indexers.documents import flatten
from indexers.warehouse_writer import write_partitioned
from platform_stub.generator import RunOptions, StubRun
from testkit.spans import minutes_of, sessions_of, spans_for_session


def write_table(root: Path, table: str, objects: Sequence[Mapping[str, Any]]) -> int:
    """Write records as the warehouse sink would (one batch); returns the rows written."""
    spec = TABLE_BY_NAME[table]
    now = datetime.now(UTC).isoformat()
    rows = []
    for i, obj in enumerate(objects):
        row = flatten(obj, spec)
        row.update(source_partition=0, source_offset=i, ingested_at=now)
        rows.append(row)
    arrow, bad = rows_to_table(rows, spec.columns)
    if bad:
        raise ValueError(f"{table}: rows that do not fit: {bad}")
    write_partitioned(root, spec, arrow)
    return int(arrow.num_rows)


def write_control_plane_warehouse(
    root: Path, start: datetime, *, scenario: str = "drm_license_outage", seed: int = 11
) -> dict[str, int]:
    """Events, spans and service minutes of a small stub run starting at `start`."""
    run = StubRun(
        RunOptions(
            seed=seed, members=150, rate=30, duration_s=600, scenario=scenario,
            start_ms=int(start.timestamp() * 1000),
        )
    )  # fmt: skip
    events = [json.loads(line) for b in run.batches(5000) for line in b.lines]
    spans = [s for evs in sessions_of(events).values() for s in spans_for_session(evs)]
    minutes = [m.model_dump(mode="json") for m in minutes_of(spans)]
    # An older revision of one minute, which the view must hide.
    stale = {**minutes[0], "requests": minutes[0]["requests"] * 100, "revision": -1}
    return {
        "events": write_table(root, "events", events),
        "spans": write_table(root, "spans", [s.model_dump(mode="json") for s in spans]),
        "service_minute": write_table(root, "service_minute", [stale, *minutes]),
    }
