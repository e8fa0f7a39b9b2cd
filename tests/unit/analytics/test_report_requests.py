"""A report as the API runs it (`ReportRequest.sql` + `report_rows`) over the export of `conftest.py`: the same rows
as `cdp results` computes (and as the hand-computed tables of `test_reports.py`), the lifecycle's stages and flows
from its one query, and Athena's text cells typed back into numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from cdp.analytics.athena import typed
from cdp.analytics.duckdb import WarehouseDuckDb
from cdp.analytics.models import Period
from cdp.analytics.reports import ReportName, ReportParameters, ReportRequest, report_lift, report_rows
from cdp_local.analytics import WarehouseAnalytics
from tests.unit.analytics.conftest import BRAND
from tests.unit.analytics.test_reports import CHANNELS, PERIOD, PROGRAMME


@pytest.fixture(scope="module")
def opened(warehouse: Path) -> Iterator[tuple[WarehouseDuckDb, WarehouseAnalytics]]:
    with WarehouseDuckDb(warehouse) as db, WarehouseAnalytics(warehouse) as local:
        yield db, local


def _run(db: WarehouseDuckDb, report: ReportName, period: Period = PERIOD, **parameters: object) -> tuple:
    request = ReportRequest(
        report=report, brand_id=BRAND, period=period, parameters=ReportParameters.model_validate(parameters)
    )
    return report_rows(report, db.table(request.sql("duckdb")))


def test_cohorts_as_the_api_runs_them_are_the_cli_rows(opened: tuple[WarehouseDuckDb, WarehouseAnalytics]) -> None:
    db, local = opened
    for by in ("month", "channel"):
        rows, flows = _run(db, "cohorts", by=by, max_offset=12)
        assert rows == local.cohorts(BRAND, PERIOD, by, 12) and flows is None  # type: ignore[arg-type]
    # the hand-computed 2026-01 cohort {A, B}: M0 both, M1 A, M2 nobody, M3 A
    rows, _ = _run(db, "cohorts", by="month", max_offset=12)
    assert [(r.month_offset, r.customers) for r in rows if r.cohort == "2026-01"] == [(0, 2), (1, 1), (2, 0), (3, 1)]


def test_the_repeat_curve_and_the_channels_are_the_cli_rows(opened: tuple[WarehouseDuckDb, WarehouseAnalytics]) -> None:
    db, local = opened
    rows, _ = _run(db, "repeat", max_orders=5)
    assert rows == local.repeat(BRAND, PERIOD, 5)
    assert [r.customers for r in rows] == [5, 3, 2, 0, 0] and rows[0].median_days_to_second == 23.0
    rows, _ = _run(db, "channels", by="channel", window_days=30)
    assert rows == local.channels(BRAND, PERIOD, "channel", 30)
    assert [(r.key, r.reached, r.acquired, r.activated, r.retained, r.converted, r.lost) for r in rows] == CHANNELS


def test_the_programme_is_the_cli_rows_and_its_lift(opened: tuple[WarehouseDuckDb, WarehouseAnalytics]) -> None:
    db, local = opened
    rows, flows = _run(db, "programme")
    assert rows == local.programme(BRAND, PERIOD) and flows is None
    names = ("group", "persons", "buyers", "orders", "revenue_minor", "revenue_squares")
    assert [tuple(getattr(r, n) for n in names) for r in rows] == PROGRAMME
    lift = report_lift("programme", rows)
    assert lift is not None and lift.incremental_revenue_minor == pytest.approx(33_333.33, abs=0.01)


@pytest.mark.parametrize(
    "period",
    [
        PERIOD,
        Period(start=date(2026, 1, 10), end=date(2026, 2, 28)),
        Period(start=date(2026, 5, 1), end=date(2026, 5, 1)),
    ],
)
def test_the_lifecycle_in_one_query_is_its_stages_and_its_flows(
    opened: tuple[WarehouseDuckDb, WarehouseAnalytics], period: Period
) -> None:
    db, local = opened
    # Given the stages and the flows computed by their own queries / Then the one query gives both, in that order
    stages, flows = _run(db, "lifecycle", period)
    assert (stages, flows) == local.lifecycle(BRAND, period)


def test_defaults_are_the_reports_own() -> None:
    # a request without parameters runs each report's defaults (cohorts by month, 12 offsets; 5 orders; 30 days)
    def sql(report: ReportName, **parameters: object) -> str:
        request = ReportRequest(
            report=report, brand_id=BRAND, period=PERIOD, parameters=ReportParameters.model_validate(parameters)
        )
        return request.sql("athena", "db")

    assert sql("cohorts") == sql("cohorts", by="month", max_offset=12)
    assert sql("repeat") == sql("repeat", max_orders=5)
    assert sql("channels") == sql("channels", by="channel", window_days=30)
    assert sql("cohorts", max_offset=0) != sql("cohorts")  # zero is a value, not "none given"


@pytest.mark.parametrize(
    ("text", "athena_type", "value"),
    [
        ("42", "bigint", 42),
        ("7", "integer", 7),
        ("0.3333333333333333", "double", 1 / 3),
        ("1.0E-4", "double", 0.0001),
        ("2026-01", "varchar", "2026-01"),
        ("", "varchar", ""),  # an empty string is text, not NULL
        (None, "bigint", None),  # no VarCharValue at all: NULL
        (None, "varchar", None),
        ("true", "boolean", True),
        ("12.50", "decimal(10,2)", 12.5),
    ],
)
def test_athena_cells_are_typed_back(text: str | None, athena_type: str, value: object) -> None:
    assert typed(text, athena_type) == value
