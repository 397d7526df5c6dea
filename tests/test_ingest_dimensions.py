"""Custom dimensions: named in Settings, sent by players, carried into session summaries and
the warehouse's `dim_<name>` columns (real DuckDB over real Parquet files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from contract.events import EVENT_ADAPTER
from contract.tables import TABLE_BY_NAME
from indexers.arrow_rows import rows_to_table
from indexers.documents import flatten
from indexers.warehouse_reader import connect_readonly
from indexers.warehouse_writer import write_partitioned
from ingest.enrichment import ClientContext, Enricher
from streams.sessionizer import Sessionizer
from streamwatch.settings import Settings
from testkit.sample_events import sample_event


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


def test_dashboards_filter_sessions_by_a_custom_dimension(tmp_path: Path) -> None:
    from dashboards.filters import Filters
    from dashboards.queries.common import sessions_cte
    from dashboards.queries.overview import custom_dimension_values
    from dashboards.warehouse import connect

    settings = Settings(custom_dimensions=["experiment"], warehouse_dir=tmp_path / "warehouse")
    start = datetime.now(UTC) - timedelta(hours=2)
    sessionizer = Sessionizer()
    summaries = []
    for i, arm in enumerate(("a", "a", "b")):
        sid = f"s-{i}"
        for k, kind in enumerate(("play_requested", "first_frame", "playback_end")):
            wire = sample_event(
                kind, session_id=sid, event_time=start + timedelta(minutes=i, seconds=k)
            )
            wire.update(schema_version=2, dimensions={"experiment": arm})
            applied = sessionizer.feed(EVENT_ADAPTER.validate_python(wire))
            if applied.summary is not None:
                summaries.append(applied.summary)
    spec = TABLE_BY_NAME["sessions"]
    rows = []
    for i, summary in enumerate(summaries):
        row = flatten(json.loads(summary.model_dump_json()), spec)
        row.update(source_partition=0, source_offset=i, ingested_at=start.isoformat())
        rows.append(row)
    arrow, bad = rows_to_table(rows, spec.columns)
    assert not bad
    write_partitioned(tmp_path / "warehouse", spec, arrow)

    con = connect(settings)
    assert custom_dimension_values(con, "experiment") == ["a", "b"]
    for arm, expected in (("a", 2), ("b", 1)):
        cte, params = sessions_cte(Filters().with_custom(experiment=[arm]))
        assert con.execute(f"{cte} SELECT count(*) FROM s", params).fetchone() == (expected,)
    with pytest.raises(ValueError):
        Filters().with_custom(**{"x') OR true --": ["a"]})
