"""Customer analytics over a local warehouse export, with DuckDB: the `cdp.analytics.sql` reports (the SQL Athena runs
on AWS, in its DuckDB dialect) over the Parquet files `cdp export warehouse` copies, laid out as in S3:

    {directory}/profiles/brand_id={brand}/part-{n}.parquet
    {directory}/events/brand_id={brand}/dt={YYYY-MM-DD}/part-{n}.parquet

The views over the files are the analytics API's DuckDB engine's (`cdp.analytics.duckdb.WarehouseDuckDb`); this
adds what a command line needs: which brands the export holds, and each brand's whole history as the default period.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cdp.analytics.duckdb import WarehouseDuckDb
from cdp.analytics.models import (
    ChannelBy,
    ChannelRow,
    CohortBy,
    CohortRow,
    LifecycleFlowRow,
    LifecycleStageRow,
    Period,
    ProgrammeRow,
    RepeatRow,
    TagValueRow,
)
from cdp.analytics.sql import AnalyticsQueries
from cdp.errors import InvalidInputError
from cdp.warehouse.schema import EVENTS, PROFILES


class WarehouseDataError(InvalidInputError):
    """The directory holds no warehouse export, or not the brand asked for."""


class WarehouseAnalytics(WarehouseDuckDb):
    """The reports over one export directory (an in-memory DuckDB; the files are only read)."""

    def __init__(self, directory: Path) -> None:
        if not (directory / PROFILES.name).is_dir() and not (directory / EVENTS.name).is_dir():
            raise WarehouseDataError(
                f"{directory} holds no warehouse export (profiles/, events/): run `cdp export warehouse` first",
                "warehouse",
            )
        super().__init__(directory)

    def __enter__(self) -> WarehouseAnalytics:
        return self

    # ---- what the directory holds -------------------------------------------------------------------------------

    def brands(self) -> list[str]:
        rows = self.execute(
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
        first_order, first_event, last_event = self.execute(
            "SELECT min(occurred_at) FILTER (WHERE event_type = 'order_placed'), min(occurred_at), max(occurred_at) "
            "FROM events WHERE brand_id = ?",
            [brand_id],
        ).fetchone() or (None, None, None)
        if last_event is None:
            raise WarehouseDataError(f"the export holds no event of brand {brand_id!r}", "brand")
        first = (first_order or first_event).date()
        return Period(start=date(first.year, first.month, 1), end=last_event.date())

    # ---- reports -------------------------------------------------------------------------------------------------

    def cohorts(self, brand_id: str, period: Period, by: CohortBy = "month", max_offset: int = 12) -> list[CohortRow]:
        return self.rows(AnalyticsQueries(brand_id, period).cohort_retention(by, max_offset), CohortRow)

    def repeat(self, brand_id: str, period: Period, max_orders: int = 5) -> list[RepeatRow]:
        return self.rows(AnalyticsQueries(brand_id, period).repeat_purchase(max_orders), RepeatRow)

    def lifecycle(self, brand_id: str, period: Period) -> tuple[list[LifecycleStageRow], list[LifecycleFlowRow]]:
        queries = AnalyticsQueries(brand_id, period)
        return (
            self.rows(queries.lifecycle_stages(), LifecycleStageRow),
            self.rows(queries.lifecycle_flows(), LifecycleFlowRow),
        )

    def channels(
        self, brand_id: str, period: Period, by: ChannelBy = "channel", window_days: int = 30
    ) -> list[ChannelRow]:
        return self.rows(AnalyticsQueries(brand_id, period).channel_outcomes(by, window_days), ChannelRow)

    def programme(self, brand_id: str, period: Period) -> list[ProgrammeRow]:
        return self.rows(AnalyticsQueries(brand_id, period).programme(), ProgrammeRow)

    def tag_values(self, brand_id: str, period: Period) -> list[TagValueRow]:
        return self.rows(AnalyticsQueries(brand_id, period).tag_values(), TagValueRow)
