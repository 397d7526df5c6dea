"""The control-plane page (issue 15, acceptance 3) and the capacity page's control-plane
figures under Streamlit's AppTest: every figure equals the same question asked in SQL
directly of the warehouse (DuckDB over the Parquet files the sink's writer wrote)."""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from indexers.warehouse_reader import connect_readonly
from streamwatch.settings import Settings
from testkit.control_plane_warehouse import write_control_plane_warehouse

PAGES = Path(__file__).resolve().parent.parent / "dashboards" / "views"
warnings.filterwarnings("ignore", category=DeprecationWarning)

# The same questions, written out on their own (not imported from the page's queries).
WHOLE = """
SELECT sum(requests) / 60.0 / count(DISTINCT minute),
       100.0 * sum(errors) / sum(requests),
       100.0 * sum(fallbacks) / sum(requests),
       100.0 * sum(cache_hits) / sum(cache_lookups)
FROM service_minute"""
PER_ENDPOINT = """
SELECT service, endpoint, sum(requests),
       sum(requests) / 60.0 / (SELECT count(DISTINCT minute) FROM service_minute),
       100.0 * sum(errors) / sum(requests),
       max(latency_p99_ms)
FROM service_minute GROUP BY service, endpoint ORDER BY service, endpoint"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wh-control-plane")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    written = write_control_plane_warehouse(path, start)
    assert written["spans"] > 1000 and written["service_minute"] > 50
    return path


@pytest.fixture()
def use_warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Settings]]:
    def _use(path: Path) -> Settings:
        monkeypatch.setenv("STREAMWATCH_WAREHOUSE_DIR", str(path))
        monkeypatch.setenv("STREAMWATCH_DASHBOARDS_DEFAULT_WINDOW_MIN", "100000")  # everything
        monkeypatch.setenv("STREAMWATCH_DASHBOARDS_REFRESH_S", "0")
        monkeypatch.setenv("STREAMWATCH_TOPIC_PREFIX", f"pages-{uuid.uuid4().hex[:8]}.")
        return Settings()

    yield _use


def _run(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _shows(text: str, value: float, digits: int) -> bool:
    """Whether a metric's text is `value` to its shown precision. Not `fmt(value)` compared
    as text: the page computes its figure in a query of its own, and a value on a rounding
    boundary showed as 2.10 on the page and 2.09 from this SQL in one run."""
    return abs(float(text.replace(",", "")) - value) <= 0.5 * 10.0**-digits + 1e-9


def test_control_plane_page_equals_direct_sql(
    root: Path, use_warehouse: Callable[[Path], Settings]
) -> None:
    settings = use_warehouse(root)
    at = _run("control_plane")
    shown = {m.label: m.value for m in at.metric}
    con = connect_readonly(settings)
    rps, err, fallback, cache = con.execute(WHOLE).fetchone()  # type: ignore[misc]
    assert _shows(shown["Requests/s (mean)"], rps, 2)
    assert _shows(shown["Error rate (%)"], err, 2)
    assert _shows(shown["Fallback rate (%)"], fallback, 2)
    assert _shows(shown["Cache hit ratio (%)"], cache, 1)
    assert err > 0  # the licence outage's 503s are in the figures, not a vacuous zero
    table = at.dataframe[0].value.sort_values(["service", "endpoint"]).reset_index(drop=True)
    expected = con.execute(PER_ENDPOINT).fetchall()
    assert len(table) == len(expected) >= 6
    for row, (service, endpoint, requests, per_s, error_pct, p99) in zip(
        table.itertuples(), expected, strict=True
    ):
        assert (row.service, row.endpoint, row.requests) == (service, endpoint, requests)
        assert _close(row.requests_per_s, per_s) and _close(row.error_pct, error_pct)
        assert _close(row.latency_p99_ms, p99)
    licence = table[table["service"] == "license"].iloc[0]
    assert licence["error_pct"] > 0 and licence["error_pct"] == table["error_pct"].max()


def test_capacity_page_control_plane_load_and_cache_from_service_minutes(
    root: Path, use_warehouse: Callable[[Path], Settings]
) -> None:
    settings = use_warehouse(root)
    shown = {m.label: m.value for m in _run("capacity").metric}
    con = connect_readonly(settings)
    (peak,) = con.execute(  # type: ignore[misc]
        """SELECT max(rps) FROM (
             SELECT minute, sum(requests) / 60.0 AS rps FROM service_minute GROUP BY minute)
           WHERE minute IN (SELECT DISTINCT date_trunc('minute', event_time) FROM events)"""
    ).fetchone()
    (cache,) = con.execute(  # type: ignore[misc]
        "SELECT 100.0 * sum(cache_hits) / sum(cache_lookups) FROM service_minute"
    ).fetchone()
    assert _shows(shown["Peak control plane (req/s)"], peak, 2)
    assert _shows(shown["Cache hit ratio (%)"], cache, 1)


def test_control_plane_page_on_an_empty_warehouse(
    tmp_path: Path, use_warehouse: Callable[[Path], Settings]
) -> None:
    use_warehouse(tmp_path)
    at = _run("control_plane")
    assert any("No control-plane spans" in i.value for i in at.info)
