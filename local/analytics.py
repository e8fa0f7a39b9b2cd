"""Customer analytics over a local warehouse export, with DuckDB: the `cdp.analytics.sql` reports (the SQL Athena runs
on AWS, in its DuckDB dialect) over the Parquet files `cdp export warehouse` copies, laid out as in S3:

    {directory}/profiles/brand_id={brand}/part-{n}.parquet
    {directory}/events/brand_id={brand}/dt={YYYY-MM-DD}/part-{n}.parquet

Each table becomes a view over its files with the partition keys read from the paths as text (as the Glue tables
declare them); a table with no file yet is an empty table of the schema's columns, so a brand with no order gives
empty reports rather than an error.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
from pydantic import BaseModel

from cdp.analytics.models import (
    ChannelBy,
    ChannelRow,
    CohortBy,
    CohortRow,
    LifecycleFlowRow,
    LifecycleStageRow,
    Period,
    RepeatRow,
)
from cdp.analytics.sql import AnalyticsQueries
from cdp.errors import InvalidInputError
from cdp.warehouse.parquet import literal
from cdp.warehouse.schema import EVENTS, PROFILES, TABLES, WarehouseTable

Row = TypeVar("Row", bound=BaseModel)


class WarehouseDataError(InvalidInputError):
    """The directory holds no warehouse export, or not the brand asked for."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class WarehouseAnalytics:
    """The reports over one export directory (an in-memory DuckDB; the files are only read)."""

    def __init__(self, directory: Path) -> None:
        if not (directory / PROFILES.name).is_dir() and not (directory / EVENTS.name).is_dir():
            raise WarehouseDataError(
                f"{directory} holds no warehouse export (profiles/, events/): run `cdp export warehouse` first",
                "warehouse",
            )
        self.directory = directory
        self._con = duckdb.connect()
        for table in TABLES:
            self._con.execute(self._view(table))

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> WarehouseAnalytics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self, table: WarehouseTable) -> str:
        pattern = "/".join(["*"] * len(table.partition_keys)) + "/*.parquet"
        if any((self.directory / table.name).glob(pattern)):
            keys = ", ".join(f"{literal(k)}: VARCHAR" for k in table.partition_keys)
            files = literal(str(self.directory / table.name / pattern))
            return (
                f"CREATE VIEW {_ident(table.name)} AS SELECT * FROM read_parquet({files}, hive_partitioning = true, "  # noqa: S608
                f"hive_types = {{{keys}}}, union_by_name = true)"
            )
        columns = [f"{_ident(c.name)} {c.sql}" for c in table.columns]
        columns += [f"{_ident(k)} VARCHAR" for k in table.partition_keys]
        return f"CREATE TABLE {_ident(table.name)} ({', '.join(columns)})"

    # ---- what the directory holds -------------------------------------------------------------------------------

    def brands(self) -> list[str]:
        rows = self._con.execute(
            "SELECT brand_id FROM profiles UNION SELECT brand_id FROM events ORDER BY brand_id"
        ).fetchall()
        return [str(brand) for (brand,) in rows]

    def brand(self, brand_id: str | None) -> str:
        """The brand asked for, or the only one the export holds."""
        brands = self.brands()
        if brand_id is None:
            if len(brands) != 1:
                held = ", ".join(brands) or "none"
                raise WarehouseDataError(f"the export holds {len(brands)} brands ({held}): name one", "brand")
            return brands[0]
        if brand_id not in brands:
            raise WarehouseDataError(f"the export holds no brand {brand_id!r} ({', '.join(brands)})", "brand")
        return brand_id

    def default_period(self, brand_id: str) -> Period:
        """From the first day of the month of the brand's first order (else first event) through its last event."""
        first_order, first_event, last_event = self._con.execute(
            "SELECT min(occurred_at) FILTER (WHERE event_type = 'order_placed'), min(occurred_at), max(occurred_at) "
            "FROM events WHERE brand_id = ?",
            [brand_id],
        ).fetchone() or (None, None, None)
        if last_event is None:
            raise WarehouseDataError(f"the export holds no event of brand {brand_id!r}", "brand")
        first = (first_order or first_event).date()
        return Period(start=date(first.year, first.month, 1), end=last_event.date())

    # ---- reports -------------------------------------------------------------------------------------------------

    def _rows(self, sql: str, model: type[Row]) -> list[Row]:
        cursor = self._con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return [model.model_validate(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def cohorts(self, brand_id: str, period: Period, by: CohortBy = "month", max_offset: int = 12) -> list[CohortRow]:
        return self._rows(AnalyticsQueries(brand_id, period).cohort_retention(by, max_offset), CohortRow)

    def repeat(self, brand_id: str, period: Period, max_orders: int = 5) -> list[RepeatRow]:
        return self._rows(AnalyticsQueries(brand_id, period).repeat_purchase(max_orders), RepeatRow)

    def lifecycle(self, brand_id: str, period: Period) -> tuple[list[LifecycleStageRow], list[LifecycleFlowRow]]:
        queries = AnalyticsQueries(brand_id, period)
        return (
            self._rows(queries.lifecycle_stages(), LifecycleStageRow),
            self._rows(queries.lifecycle_flows(), LifecycleFlowRow),
        )

    def channels(
        self, brand_id: str, period: Period, by: ChannelBy = "channel", window_days: int = 30
    ) -> list[ChannelRow]:
        return self._rows(AnalyticsQueries(brand_id, period).channel_outcomes(by, window_days), ChannelRow)
