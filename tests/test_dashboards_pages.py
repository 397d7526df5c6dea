"""Every SRE page under Streamlit's AppTest, on warehouse data from a real `isp_congestion` stub
run (replayed through streams, written by the warehouse writer), an empty warehouse and one
holding only dead letters: no exception, and each page's headline figures equal the same SQL
run directly against the warehouse. The congested ISP is the stub's ground truth."""

from __future__ import annotations

import typing
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from contract.records import IncidentMetric
from dashboards import warehouse
from dashboards.filters import Filters
from dashboards.queries import incidents, overview
from dashboards.ui import fmt
from indexers.warehouse_reader import connect_readonly
from streamwatch.settings import Settings
from testkit import sample_warehouse as sw

PAGES = Path(__file__).resolve().parent.parent / "dashboards" / "views"
PAGE_NAMES = ("overview", "incidents", "pipeline", "capacity")

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="module")
def congestion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sw.SampleRun]:
    root = tmp_path_factory.mktemp("wh-congestion")
    run = sw.run(sw.Scenario())
    sw.write_warehouse(root, run)
    return root, run


@pytest.fixture(scope="module")
def empty_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wh-empty")


@pytest.fixture(scope="module")
def deadletter_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wh-dead")
    sw.write_deadletters(root, 40)
    return root


@pytest.fixture()
def use_warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:  # type: ignore[valid-type]
    def _use(root: Path) -> Settings:
        monkeypatch.setenv("STREAMWATCH_WAREHOUSE_DIR", str(root))
        monkeypatch.setenv("STREAMWATCH_DASHBOARDS_DEFAULT_WINDOW_MIN", "100000")  # everything
        monkeypatch.setenv("STREAMWATCH_DASHBOARDS_REFRESH_S", "0")
        # A deployment of its own: capacity's storage growth also reads the Kafka topics
        # and search indices under this prefix, which hold nothing.
        monkeypatch.setenv("STREAMWATCH_TOPIC_PREFIX", f"pages-{uuid.uuid4().hex[:8]}.")
        return Settings()

    yield _use


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metrics_of(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_headline_equals_direct_sql(congestion, use_warehouse) -> None:  # type: ignore[no-untyped-def]
    root, _ = congestion
    settings = use_warehouse(root)
    shown = metrics_of(run_page("overview"))
    con = connect_readonly(settings)
    row = con.execute(
        """SELECT quantile_cont(startup_ms, 0.5), quantile_cont(startup_ms, 0.95),
             100.0 * sum(rebuffer_ms) / nullif(sum(watch_ms) + sum(rebuffer_ms), 0),
             100.0 * avg(CASE WHEN playback_failed THEN 1 ELSE 0 END),
             100.0 * avg(CASE WHEN start_outcome = 'exit_before_start' THEN 1 ELSE 0 END),
             sum(avg_bitrate_kbps * watch_ms) / nullif(sum(watch_ms), 0)
           FROM sessions"""
    ).fetchone()
    assert row is not None
    # Units sit in the labels so that no value is cut off in a narrow column.
    assert shown["Startup p50 (ms)"] == fmt(row[0], "", 0)
    assert shown["Startup p95 (ms)"] == fmt(row[1], "", 0)
    assert shown["Rebuffer %"] == fmt(row[2], "", 2)
    assert shown["Playback failure %"] == fmt(row[3], "", 2)
    assert shown["EBVS %"] == fmt(row[4], "", 2)
    assert shown["Avg bitrate (kbps)"] == fmt(row[5], "", 0)


def test_overview_breakdown_ranks_congested_isp_first(congestion, use_warehouse) -> None:  # type: ignore[no-untyped-def]
    root, run = congestion
    settings = use_warehouse(root)
    truth = run.ground_truth["fault"]
    from dashboards import warehouse

    con = warehouse.connect(settings)
    ranked = overview.breakdown(con, Filters(), "isp", "rebuffer_pct")
    assert ranked.iloc[0]["value"] == truth["value"]
    worst = overview.worst_offenders(con, Filters(), "rebuffer_pct")
    assert (worst.iloc[0]["dimension"], worst.iloc[0]["value"]) == ("isp", truth["value"])
    at = run_page("overview")
    table = at.dataframe[0].value
    assert (table.iloc[0]["Dimension"], table.iloc[0]["Value"]) == ("ISP", truth["value"])
    assert "metric_value" not in table.columns and "rest_value" not in table.columns


def test_incidents_page_shows_the_isp_incident(congestion, use_warehouse) -> None:  # type: ignore[no-untyped-def]
    root, run = congestion
    use_warehouse(root)
    truth = run.ground_truth["fault"]
    at = run_page("incidents")
    table = at.dataframe[0].value
    hit = table[table["Root cause"] == f"isp = {truth['value']}"]
    assert len(hit) == 1 and hit.iloc[0]["Metric"] == truth["metric"]
    shown = metrics_of(at)
    assert shown["Resolved incidents"] == str(int((table["Status"] == "resolved").sum()))
    # Pick the ISP incident and check its console link names the affected members.
    at.selectbox(key="incident_pick").select(hit.iloc[0]["Incident id"]).run()
    assert not at.exception
    link = at.get("link_button")[0]
    assert f"incident={hit.iloc[0]['Incident id']}" in link.proto.url
    assert "member=" in link.proto.url


def test_pipeline_page_freshness_equals_sql(congestion, use_warehouse) -> None:  # type: ignore[no-untyped-def]
    root, _ = congestion
    settings = use_warehouse(root)
    shown = metrics_of(run_page("pipeline"))
    con = connect_readonly(settings)
    p50, p99 = con.execute(
        """SELECT quantile_cont(s, 0.5), quantile_cont(s, 0.99) FROM (
             SELECT (epoch_ms(ingested_at) - epoch_ms(received_at)) / 1000.0 AS s FROM events)"""
    ).fetchone()  # type: ignore[misc]
    # From the collector's receipt, not the client's event time (the sample: 1.5 s).
    assert p50 == pytest.approx(1.5, abs=0.01)
    assert shown["Freshness p50 (s)"] == fmt(p50, "", 2)
    assert shown["Freshness p99 (s)"] == fmt(p99, "", 2)
    assert shown["Dead-letter rate (%)"] == fmt(0.0, "", 2)


@pytest.mark.parametrize("page", PAGE_NAMES)
def test_every_page_on_an_empty_warehouse(page: str, empty_root: Path, use_warehouse) -> None:  # type: ignore[no-untyped-def]
    use_warehouse(empty_root)
    at = run_page(page)
    for value in metrics_of(at).values():
        assert value in ("—", "0"), value  # no data is shown as no data, never a fake figure


@pytest.mark.parametrize("page", PAGE_NAMES)
def test_every_page_on_a_deadletter_only_warehouse(  # type: ignore[no-untyped-def]
    page: str, deadletter_root: Path, use_warehouse
) -> None:
    use_warehouse(deadletter_root)
    at = run_page(page)
    if page == "pipeline":
        assert metrics_of(at)["Dead-letter rate (%)"] == fmt(100.0, "", 2)
        reasons = at.dataframe[-1].value
        assert int(reasons["Dead letters"].sum()) == 40


SESSION_METRICS = [m for m in typing.get_args(IncidentMetric) if m in incidents.INCIDENT_METRIC_SQL]
SERVICE_METRICS = [m for m in typing.get_args(IncidentMetric) if m not in SESSION_METRICS]


def test_every_incident_metric_has_a_chart_query_and_a_unit() -> None:
    for metric in typing.get_args(IncidentMetric):
        assert metric in incidents.METRIC_UNITS
        assert (metric in incidents.INCIDENT_METRIC_SQL) != (metric in incidents.SERVICE_METRIC_SQL)


@pytest.mark.parametrize("metric", SERVICE_METRICS)
def test_a_service_incident_charts_its_service_against_the_others(metric: str) -> None:
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE service_minute (minute TIMESTAMPTZ, service VARCHAR, requests BIGINT,
        errors BIGINT, fallbacks BIGINT, latency_p50_ms DOUBLE)"""
    )
    t0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    rows = []
    for i in range(10):
        bad = 3 <= i < 6
        rows.append((t0 + timedelta(minutes=i), "license", 100, 40 if bad else 1, 20 if bad else 0,
                     900.0 if bad else 80.0))  # fmt: skip
        rows.append((t0 + timedelta(minutes=i), "manifest", 300, 3, 0, 40.0))
    con.executemany("INSERT INTO service_minute VALUES (?, ?, ?, ?, ?, ?)", rows)
    row = pd.Series(
        {"metric": metric, "dimension": "service", "value": "license",
         "started_at": pd.Timestamp(t0 + timedelta(minutes=3)),
         "resolved_at": pd.Timestamp(t0 + timedelta(minutes=6)), "last_anomalous_at": pd.NaT}
    )  # fmt: skip
    frame = incidents.metric_around(con, row, margin=timedelta(minutes=5))
    assert set(frame["cohort"]) == {"service=license", "rest"}
    mine = frame[frame["cohort"] == "service=license"].set_index("minute")["metric_value"]
    rest = frame[frame["cohort"] == "rest"]["metric_value"]
    assert mine.max() > rest.max()  # the failing service stands out against the others
    assert int(frame["requests"].sum()) == 10 * 100 + 10 * 300


def test_an_incident_charts_from_whole_rollup_minutes_with_the_rest_as_all_minus_it() -> None:
    """Rollup minutes count every active session (session summaries only the ended ones)."""
    con = duckdb.connect()
    cols = ", ".join(f"{c} BIGINT" for c in incidents.ROLLUP_ADDITIVE)
    con.execute(
        f"CREATE TABLE qoe_minute (window_start TIMESTAMPTZ, dimension VARCHAR, value VARCHAR, "
        f"partial VARCHAR, {cols})"
    )
    t0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    rows = []
    for i in range(6):
        bad = i >= 3
        for part in ("p0", "p1"):  # two partitions' partials of each minute
            # (active, ended, failed, start_failures, rebuffer_ms, watch_ms)
            oca = (10, 4, 0, 2 if bad else 0, 0, 60_000)
            everyone = (100, 20, 1, 5 if bad else 1, 500, 600_000)
            rows.append((t0 + timedelta(minutes=i), "oca_id", "oca-1", part, *oca))
            rows.append((t0 + timedelta(minutes=i), "all", "all", part, *everyone))
    con.executemany(f"INSERT INTO qoe_minute VALUES ({', '.join('?' * 10)})", rows)
    row = pd.Series(
        {"metric": "start_failure_pct", "dimension": "oca_id", "value": "oca-1",
         "started_at": pd.Timestamp(t0 + timedelta(minutes=3)), "resolved_at": pd.NaT,
         "last_anomalous_at": pd.Timestamp(t0 + timedelta(minutes=5))}
    )  # fmt: skip
    frame = incidents.metric_around(con, row, margin=timedelta(minutes=5))
    by = frame.set_index(["cohort", "minute"])["metric_value"]
    late = t0 + timedelta(minutes=4)
    assert by[("oca_id=oca-1", late)] == pytest.approx(100.0 * 4 / 8)
    # The rest: (5 - 2) start failures of (20 - 4) ended sessions per partition.
    assert by[("rest", late)] == pytest.approx(100.0 * 6 / 32)
    assert by[("rest", t0)] == pytest.approx(100.0 * 2 / 32)
    assert int(frame[frame["cohort"] == "rest"]["sessions"].iloc[0]) == 2 * 90


@pytest.mark.parametrize("metric", SESSION_METRICS)
def test_every_incident_metric_charts_around_the_incident(congestion, metric: str) -> None:  # type: ignore[no-untyped-def]
    root, run = congestion
    con = warehouse.connect(Settings(warehouse_dir=root))
    truth = run.ground_truth["fault"]
    row = incidents.list_incidents(con, Filters()).iloc[0].copy()
    row["metric"], row["dimension"], row["value"] = metric, "isp", truth["value"]
    frame = incidents.metric_around(con, row)
    assert metric in incidents.METRIC_UNITS
    assert set(frame["cohort"]) == {f"isp={truth['value']}", "rest"}
    assert frame["sessions"].sum() > 0
    if metric == "plays_share_pct":
        per_minute = frame.groupby("minute")["metric_value"].sum()
        assert per_minute.to_numpy() == pytest.approx(100.0)
