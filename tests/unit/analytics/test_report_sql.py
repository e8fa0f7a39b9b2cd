"""The reports' SQL: the Athena text parses as Trino (sqlglot), reads only the Glue database's warehouse tables, each
read filtered to the brand's partition (and events to named days), with functions both engines have; the DuckDB
text is the same query over the local views. The DuckDB SQL is run by `test_reports.py`."""

from __future__ import annotations

from datetime import date

import pytest
import sqlglot
from sqlglot import exp

from cdp.analytics.models import CHURNED_DAYS, DORMANT_DAYS, MATURE_ORDERS, AnalyticsError, Period
from cdp.analytics.sql import AnalyticsQueries
from cdp.tags.catalog import bundled_catalog
from cdp.tags.rules import Compare
from cdp.warehouse.schema import brand_segment

DATABASE = "cdp_warehouse"
BRAND = "shop/cn#1"  # a brand id the export percent-encodes in its path
PERIODS = [
    Period(start=date(2026, 1, 1), end=date(2026, 4, 30)),
    Period(start=date(2025, 11, 15), end=date(2026, 2, 3)),  # mid-month at both ends, over a year's end
    Period(start=date(2026, 6, 1), end=date(2026, 6, 1)),  # one day
]
# Every function the reports call: each means the same in DuckDB and Trino (And, Case and If are sqlglot's nodes of
# AND, CASE and its WHEN branches)
FUNCTIONS = {
    "And",
    "Avg",
    "Case",
    "Cast",
    "Coalesce",
    "Count",
    "DateDiff",
    "If",
    "Lag",
    "Max",
    "Min",
    "RowNumber",
    "Sum",
}


def _all_sql(dialect: str, period: Period) -> dict[str, str]:
    queries = AnalyticsQueries(BRAND, period, dialect, DATABASE if dialect == "athena" else None)  # type: ignore[arg-type]
    return {
        **queries.reports(),
        "cohorts_by_month_3": queries.cohort_retention("month", max_offset=3),
        "cohorts_by_channel_0": queries.cohort_retention("channel", max_offset=0),
        "repeat_10": queries.repeat_purchase(max_orders=10),
        "campaigns_7": queries.channel_outcomes("campaign", window_days=7),
    }


CASES = [(name, period, sql) for period in PERIODS for name, sql in _all_sql("athena", period).items()]


@pytest.mark.parametrize(("name", "period", "sql"), CASES, ids=[f"{c[0]}-{c[1].start}" for c in CASES])
def test_the_athena_sql_parses_as_trino_and_reads_only_the_brands_glue_tables(
    name: str, period: Period, sql: str
) -> None:
    tree = sqlglot.parse_one(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
    # regenerating it as Trino meets nothing Trino lacks
    tree.sql(dialect="trino", unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert isinstance(tree, exp.Select | exp.Union)  # lifecycle: the stages and the flows in one query

    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    warehouse = [t for t in tree.find_all(exp.Table) if t.name not in ctes or t.db]
    assert warehouse, name
    for table in warehouse:
        # the Glue database's tables, nothing else (no catalog, no other database, no local view name)
        assert (table.catalog, table.db, table.name) in {("", DATABASE, t) for t in ("events", "profiles", "tags")}
        select = table.find_ancestor(exp.Select)
        assert select is not None and select.args.get("where") is not None, name
        where = select.args["where"]
        # the brand's partition, by its path segment (the injected projection's value)
        brand = [eq for eq in where.find_all(exp.EQ) if isinstance(eq.left, exp.Column) and eq.left.name == "brand_id"]
        assert [eq.right.this for eq in brand] == [brand_segment(BRAND)] == ["shop%2Fcn%231"], name
        if table.name == "events":  # the days read, so Athena prunes the day partitions
            days = [c for c in where.find_all(exp.Column) if c.name == "dt"]
            assert days, name
            for bound in where.find_all(exp.LTE, exp.GTE):
                if isinstance(bound.left, exp.Column) and bound.left.name == "dt":
                    date.fromisoformat(bound.right.this)

    functions = {type(f).__name__ for f in tree.find_all(exp.Func) if not isinstance(f, exp.Binary)}
    assert functions <= FUNCTIONS, functions - FUNCTIONS
    assert not list(tree.find_all(exp.Anonymous))  # every function is one sqlglot knows in Trino
    for division in tree.find_all(exp.Div):  # a DOUBLE numerator: never an integer division (Trino truncates it)
        assert isinstance(division.this, exp.Cast) and division.this.to.is_type("double"), division.sql("trino")


@pytest.mark.parametrize("period", PERIODS, ids=[str(p.start) for p in PERIODS])
def test_duckdb_runs_the_same_query_over_its_views(period: Period) -> None:
    athena, duckdb = _all_sql("athena", period), _all_sql("duckdb", period)
    for name, sql in athena.items():
        local = sql.replace(f'"{DATABASE}".', "").replace(f"'{brand_segment(BRAND)}'", f"'{BRAND}'")
        assert local == duckdb[name], name
        sqlglot.parse_one(duckdb[name], read="duckdb", error_level=sqlglot.ErrorLevel.RAISE)


def test_the_sql_quotes_what_it_is_given() -> None:
    period = PERIODS[0]
    sql = AnalyticsQueries("o'brien", period, "athena", 'db"x').lifecycle_flows()
    tree = sqlglot.parse_one(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
    assert {(t.db, t.name) for t in tree.find_all(exp.Table) if t.db} == {('db"x', "events"), ('db"x', "profiles")}
    assert "brand_id = 'o%27brien'" in sql  # Athena: the path segment
    assert "brand_id = 'o''brien'" in AnalyticsQueries("o'brien", period).lifecycle_flows()  # DuckDB: the id


def test_athena_needs_its_database_and_dialects_are_known() -> None:
    with pytest.raises(AnalyticsError, match="database"):
        AnalyticsQueries(BRAND, PERIODS[0], "athena")
    with pytest.raises(AnalyticsError, match="dialect"):
        AnalyticsQueries(BRAND, PERIODS[0], "postgres")  # type: ignore[arg-type]
    with pytest.raises(AnalyticsError, match="by month or by channel"):
        AnalyticsQueries(BRAND, PERIODS[0]).cohort_retention("week")  # type: ignore[arg-type]


def test_the_lifecycle_thresholds_are_the_bundled_lifecycle_tags() -> None:
    # the stages the reports derive mirror the tag: if the catalog's rule moves, move the constants with it
    rule = bundled_catalog().definitions["lifecycle"].rule
    assert rule.cases is not None and rule.else_ == "growth"
    cases = []
    for case in rule.cases:
        when = case.when
        assert isinstance(when, Compare)
        cases.append((when.attr or when.agg, tuple(when.event or ()), when.eq, when.gte, case.value))
    assert cases == [
        ("order_count", (), 0, None, "introduction"),
        ("days_since_last", ("order_placed",), None, CHURNED_DAYS, "churned"),
        ("days_since_last", ("order_placed",), None, DORMANT_DAYS, "dormant"),
        ("order_count", (), None, MATURE_ORDERS, "mature"),
    ]
