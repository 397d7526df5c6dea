"""The warehouse: typed tables, dedupe on read, documented SQL, readers never locked out."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.deadletter import DeadLetter
from contract.records import Incident, MinuteCounts, MinuteRollup
from contract.tables import TABLE_BY_NAME, TABLES
from indexers.arrow_rows import rows_to_table
from indexers.documents import flatten
from indexers.services import run_warehouse_sink
from indexers.warehouse_reader import connect_readonly
from indexers.warehouse_writer import write_partitioned
from streams.sessionizer import Sessionizer
from streamwatch import topics
from streamwatch.settings import Settings
from testkit.event_json import events
from testkit.synthetic_sessions import T0, event, normal_session
from tests.test_indexers_support import (
    REPO,
    private_dir,
    produce,
    scoped,
    sink_env,
    wait_until,
)

DOC = REPO / "docs" / "warehouse.md"
NOW = datetime.now(UTC).replace(microsecond=0)


def _write(root: Path, table: str, objects: list[dict[str, Any]]) -> None:
    spec = TABLE_BY_NAME[table]
    rows = []
    for i, obj in enumerate(objects):
        row = flatten(obj, spec)
        row.update(source_partition=0, source_offset=i, ingested_at=NOW.isoformat())
        rows.append(row)
    arrow, bad = rows_to_table(rows, spec.columns)
    assert not bad, bad
    write_partitioned(root, spec, arrow)


def _sessions() -> list[dict[str, Any]]:
    """Real summaries from the streams sessionizer, placed in the last few hours."""
    offset = (NOW - timedelta(hours=3) - T0).total_seconds()
    sessionizer = Sessionizer()
    out: list[dict[str, Any]] = []
    envs: list[dict[str, Any]] = [
        {"network": {"isp": isp, "oca_id": oca}, "device": {"app_version": app}}
        for isp, oca, app in (
            ("isp-a", "oca-1", "1.0.0"),
            ("isp-b", "oca-2", "1.1.0"),
            ("isp-a", "oca-2", "1.1.0"),
        )
    ]
    evs = []
    for i in range(30):
        env = envs[i % 3]
        rebuffers = ((20.0, 2000),) if i % 2 else ()
        evs += normal_session(
            f"s-{i}", start_s=offset + i * 60, rebuffers=rebuffers, member_id=f"m-{i % 7}", **env
        )
    # A start failure: play requested, fatal error, no first frame.
    t = T0 + timedelta(seconds=offset + 10)
    evs.append(event("play_requested", t, "s-fail", member_id="m-1"))
    fatal = {"code": "DRM-3003", "category": "drm", "severity": "fatal"}
    evs.append(event("error", t + timedelta(seconds=2), "s-fail", fatal, member_id="m-1"))
    end = {"watched_ms": 0, "exit_reason": "error"}
    evs.append(event("playback_end", t + timedelta(seconds=3), "s-fail", end, member_id="m-1"))
    for ev in sorted(evs, key=lambda e: e.event_time):
        applied = sessionizer.feed(ev)
        if applied.summary is not None:
            out.append(applied.summary.model_dump(mode="json"))
    return out


def _minutes() -> list[dict[str, Any]]:
    out = []
    start = (NOW - timedelta(hours=1)).replace(second=0)
    for m in range(5):
        for dim, value in (("all", "all"), ("region", "us-east"), ("region", "eu-west")):
            for partial in ("p0", "p1"):
                for revision in (0, 1):
                    counts = MinuteCounts(
                        events=100, plays=10 + revision, active_sessions=50,
                        concurrent_viewers=40, ended_sessions=8, failed_sessions=1 + m % 2,
                        rebuffer_ms=1000 * (m + 1), watch_ms=600_000, bitrate_kbps_ms=3.0e9,
                        bitrate_ms=600_000, errors_by_code={"NW-1001": 2},
                    )  # fmt: skip
                    counts.startup.add(1500)
                    out.append(
                        MinuteRollup.of(
                            window_start=start + timedelta(minutes=m),
                            window_end=start + timedelta(minutes=m + 1),
                            dimension=dim,
                            value=value,
                            partial=partial,
                            counts=counts,
                            revision=revision,
                        ).model_dump(mode="json")
                    )
    return out


def _incidents() -> list[dict[str, Any]]:
    t0 = NOW - timedelta(hours=4)
    return [
        Incident(
            incident_id="inc-oca-2",
            status=status,  # type: ignore[arg-type]
            revision=rev,
            metric="rebuffer_pct",
            dimension="oca_id",
            value="oca-2",
            started_at=t0,
            detected_at=t0 + timedelta(minutes=1),
            last_anomalous_at=t0 + timedelta(hours=2),
            resolved_at=None if status == "open" else t0 + timedelta(hours=3),
            observed=7.5,
            expected=0.9,
            affected_sessions=20,
            severity="major",
            explanation="Rebuffering on oca-2",
        ).model_dump(mode="json")
        for rev, status in ((0, "open"), (1, "resolved"))
    ]


def _deadletters() -> list[dict[str, Any]]:
    return [
        DeadLetter.of(b"{not json", reason=r, source=src, detail="x").model_dump(mode="json")
        for r, src in (
            ("undecodable_json", "collector"),
            ("schema_invalid", "streams"),
            ("schema_invalid", "streams"),
        )
    ]


@pytest.fixture(scope="module")
def small() -> Settings:
    """A small warehouse written with the sink's own Arrow → Parquet path."""
    root = private_dir("small")
    s = Settings(warehouse_dir=root)
    evs = list(events(3000, seed=5, members=30, end=NOW))
    evs[0] = {**evs[0], "genre": "drama"}  # enrichment as streams may add it
    _write(root, "events", evs + evs[:100])  # 100 replayed deliveries
    _write(root, "sessions", _sessions())
    _write(root, "qoe_minute", _minutes())
    _write(root, "incidents", _incidents())
    _write(root, "deadletters", _deadletters())
    return s


def _examples() -> list[tuple[str, str]]:
    text = DOC.read_text()
    found = re.findall(r"^### (\d+\..*?)\n\n```sql\n(.*?)```", text, flags=re.S | re.M)
    return [(title.strip(), sql) for title, sql in found]


def test_docs_have_at_least_ten_examples() -> None:
    assert len(_examples()) >= 10


@pytest.mark.parametrize("title,sql", _examples(), ids=[t for t, _ in _examples()])
def test_documented_example_runs_and_answers(small: Settings, title: str, sql: str) -> None:
    con = connect_readonly(small)
    rows = con.execute(sql).fetchall()
    assert rows, f"{title}: no rows"


def test_docs_describe_every_table_and_column() -> None:
    text = DOC.read_text()
    for spec in TABLES:
        section = text.split(f"### `{spec.name}`", 1)
        assert len(section) == 2, f"table {spec.name} undocumented"
        body = section[1].split("\n### ", 1)[0]
        for column in spec.columns:
            assert f"| `{column.name}` | {column.duckdb_type} |" in body, (spec.name, column.name)
    assert "`errors`" in text


def test_views_are_typed_and_deduplicated(small: Settings) -> None:
    con = connect_readonly(small)
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    assert types["event_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["asn"] == "BIGINT" and types["startup_ms"] == "INTEGER"
    assert types["date"] == "DATE" and types["hour"] == "INTEGER"
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
        3000,
        3000,
    )
    assert con.execute("SELECT count(*) FROM events_all").fetchone() == (3100,)
    assert con.execute("SELECT count(*) FROM events WHERE genre = 'drama'").fetchone() == (1,)
    # Latest revision wins for summaries.
    assert con.execute("SELECT status, revision FROM incidents").fetchall() == [("resolved", 1)]
    assert con.execute("SELECT DISTINCT revision FROM qoe_minute").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM qoe_minute").fetchone() == (5 * 3 * 2,)
    failed = con.execute(
        "SELECT start_outcome, playback_failed, fatal_error_code FROM sessions "
        "WHERE session_id = 's-fail'"
    ).fetchall()
    assert failed == [("start_failure", True, "DRM-3003")]
    assert con.execute("SELECT count(*) FROM deadletters").fetchone() == (3,)


def test_empty_warehouse_has_typed_empty_views(tmp_path: Path) -> None:
    con = connect_readonly(Settings(warehouse_dir=tmp_path))
    for spec in TABLES:
        assert con.execute(f"SELECT count(*) FROM {spec.name}").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM errors").fetchone() == (0,)


def test_sql_command_formats(small: Settings) -> None:
    env = sink_env(small)
    query = "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"

    def run(*fmt: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "streamwatch.cli", "sql", query, *fmt],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    as_json = json.loads(run("--format", "json"))
    assert sum(r["n"] for r in as_json) == 3000
    csv_lines = run("--format", "csv").splitlines()
    assert csv_lines[0] == "event_type,n" and len(csv_lines) == len(as_json) + 1
    table = run()
    assert "event_type" in table and f"({len(as_json)} rows)" in table
    bad = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "sql", "SELECT * FROM nope"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "query failed" in bad.stderr


READER = """
import json, sys
from indexers.warehouse_reader import connect_readonly
from streamwatch.settings import Settings
settings = Settings()
counts, errors = [], []
con = connect_readonly(settings)
for i in range(1000):
    if i % 100 == 0:
        con.close()
        con = connect_readonly(settings)  # new readers keep arriving too
    try:
        counts.append(con.execute("SELECT count(*) FROM events").fetchone()[0])
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"counts": counts, "errors": errors}))
"""


@pytest.fixture
async def live(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    yield await scoped(settings, tmp_path, warehouse_flush_interval_s=0.5)


@pytest.mark.integration
async def test_thousand_queries_from_another_process_never_locked_while_sink_writes(
    live: Settings,
) -> None:
    stop = asyncio.Event()
    sink = asyncio.create_task(run_warehouse_sink(live, stop))
    await produce(
        live, topics.EVENTS, list(events(500, seed=51, span=timedelta(minutes=5))), "session_id"
    )
    root = live.warehouse_dir
    assert root is not None
    await wait_until(
        lambda: any((root / "events").glob("date=*/hour=*/*.parquet")), what="first file"
    )
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER, env=sink_env(live), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    produced = 500
    try:
        while reader.returncode is None:
            # Keep the sink writing for as long as the reader queries.
            # Events of the last few minutes: one new file per flush, as in steady state.
            wave = events(200, seed=uuid.uuid4().int % 10**6, span=timedelta(minutes=5))
            produced += await produce(live, topics.EVENTS, list(wave), "session_id")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.wait(), 0.3)
        out, err = await reader.communicate()
    finally:
        stop.set()
        stats = await sink
    assert reader.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["errors"] == []
    counts = result["counts"]
    assert len(counts) == 1000
    assert all(a <= b for a, b in itertools.pairwise(counts)), "counts went back"
    assert counts[-1] > counts[0], "the sink did not write while the reader read"
    assert stats.flushes >= 3


def test_compaction_merges_closed_hours_and_readers_see_the_same_rows() -> None:
    from indexers.warehouse_compact import compact

    root = private_dir("compact")
    s = Settings(warehouse_dir=root)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    old = list(events(600, seed=71, end=now - timedelta(hours=5), span=timedelta(minutes=50)))
    fresh = list(events(100, seed=72, end=now, span=timedelta(minutes=10)))
    for start in range(0, 600, 100):  # six flushes, one replayed slice
        _write(root, "events", old[start : start + 100])
    _write(root, "events", old[:50])
    _write(root, "events", fresh)
    _write(root, "events", fresh[:10])

    def files() -> int:
        return len(list((root / "events").glob("date=*/hour=*/*.parquet")))

    def counts() -> tuple[int, int]:
        con = connect_readonly(s)
        row = con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    before = files()
    assert counts() == (700, 700)
    first = compact(s, now=now)
    assert first.partitions_compacted >= 1 and first.files_deleted == 0
    assert files() == before + first.partitions_compacted  # retired files stay readable
    assert counts() == (700, 700)
    second = compact(s, now=now + timedelta(minutes=30))
    assert second.files_deleted == first.files_retired
    assert counts() == (700, 700)
    # The closed hour is one file now; the current hour (still being written) is untouched.
    old_hour = root / "events" / f"date={now.date()}" / "hour=06"
    assert len(list(old_hour.glob("*.parquet"))) == 1
    current = root / "events" / f"date={now.date()}" / f"hour={now.hour - 1:02d}"
    assert len(list(current.glob("*.parquet"))) >= 2 or not current.exists()


# --- `streamwatch sql` is read-only (issue 11) ------------------------------------------------


@pytest.mark.parametrize("title,sql", _examples(), ids=[t for t, _ in _examples()])
def test_documented_example_runs_through_read_only_sql(
    small: Settings, title: str, sql: str
) -> None:
    from indexers.sql_cli import run_query

    names, rows = run_query(small, sql)
    assert names and rows, f"{title}: no rows"


@pytest.mark.parametrize(
    "query,why",
    [
        ("COPY (SELECT 1) TO '{out}'", "COPY reads or writes files"),
        ("SELECT * FROM read_csv('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
        ("ATTACH '{out}.db' AS other", "ATTACH opens another database"),
        ("INSTALL httpfs", "INSTALL and LOAD add extensions"),
        ("SET threads = 1", "change the configuration, which is locked"),
        ("DROP VIEW events", "DROP changes the warehouse views or tables"),
        ("SELECT 1; DROP VIEW events", "DROP changes"),
        ("SELECT * FROM read_text('{readme}')", "Cannot access file"),
    ],
)
def test_sql_refuses_writes_files_and_settings(
    small: Settings, tmp_path: Path, query: str, why: str
) -> None:
    from indexers.sql_cli import QueryRefused, run_query

    out = tmp_path / "out.csv"
    readme = Path(__file__).resolve().parents[1] / "README.md"
    with pytest.raises(QueryRefused) as refused:
        run_query(small, query.format(out=out, readme=readme))
    message = str(refused.value)
    assert message.startswith("refused: ") and why in message
    assert "\n" not in message
    assert not list(tmp_path.iterdir()), "nothing may be written"


def test_sql_command_refusal_is_one_line_and_fails(small: Settings, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", "sql", "COPY (SELECT 1) TO 'out.csv'"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "STREAMWATCH_WAREHOUSE_DIR": str(small.warehouse_dir)},
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamwatch: error: refused: COPY")
    assert not (tmp_path / "out.csv").exists()
