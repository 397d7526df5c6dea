"""Custom dimensions: named in Settings, sent by players, carried into session summaries and
the warehouse's `dim_<name>` columns (real DuckDB over real Parquet files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from indexers.arrow_rows import rows_to_table
from indexers.documents import TABLE_BY_NAME, flatten
from indexers.warehouse_reader import connect_readonly
from indexers.warehouse_writer import write_partitioned
from ingest.enrichment import ClientContext, Enricher
from ingest.events import EVENT_ADAPTER
from ingest.samples import sample_event
from streams.sessionizer import Sessionizer
from streamwatch.settings import Settings


def test_names_are_checked_and_at_most_ten() -> None:
    Settings(custom_dimensions=["experiment", "variant", "player_version"])
    with pytest.raises(ValidationError):
        Settings(custom_dimensions=["Experiment; DROP"])
    with pytest.raises(ValidationError):
        Settings(custom_dimensions=[f"d{i}" for i in range(11)])


def test_dimensions_reach_the_summary_and_the_warehouse(tmp_path: Path) -> None:
    settings = Settings(
        custom_dimensions=["experiment", "variant"], warehouse_dir=tmp_path / "warehouse"
    )
    enricher = Enricher(settings)
    start = datetime.now(UTC) - timedelta(hours=1)
    wire = [
        sample_event("play_requested", session_id="s-dim", event_time=start),
        sample_event("first_frame", session_id="s-dim", event_time=start + timedelta(seconds=1)),
        sample_event("playback_end", session_id="s-dim", event_time=start + timedelta(minutes=5)),
    ]
    for w in wire:
        w["schema_version"] = 2
        w["dimensions"] = {"experiment": "abr-b", "variant": "2", "not_named": "x"}
        enricher.enrich(w, ClientContext(None, None))
    events = [EVENT_ADAPTER.validate_python(w) for w in wire]
    assert events[0].dimensions == {"experiment": "abr-b", "variant": "2"}
    assert events[0].extra["unconfigured_dimensions"] == {"not_named": "x"}

    sessionizer = Sessionizer()
    summaries = [s for e in events if (s := sessionizer.feed(e).summary) is not None]
    (summary,) = summaries
    assert summary.dimensions == {"experiment": "abr-b", "variant": "2"}

    for table, records in (
        ("sessions", [json.loads(summary.model_dump_json())]),
        ("events", [json.loads(e.model_dump_json()) for e in events]),
    ):
        spec = TABLE_BY_NAME[table]
        rows = []
        for i, rec in enumerate(records):
            row = flatten(rec, spec)
            row.update(source_partition=0, source_offset=i, ingested_at=start.isoformat())
            rows.append(row)
        arrow, bad = rows_to_table(rows, spec.columns)
        assert not bad
        write_partitioned(tmp_path / "warehouse", spec, arrow)

    con = connect_readonly(settings)
    assert con.execute("SELECT dim_experiment, dim_variant FROM sessions").fetchall() == [
        ("abr-b", "2")
    ]
    assert con.execute("SELECT count(*) FROM events WHERE dim_experiment = 'abr-b'").fetchone() == (
        3,
    )
