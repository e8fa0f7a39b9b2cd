"""`cdp results`: customer analytics over a warehouse export (`cdp export warehouse`), computed with DuckDB by the
SQL Athena runs on AWS (`cdp.analytics.sql`): cohort retention by first-order month or acquisition channel, the
repeat-purchase curve, lifecycle stages and flows month over month, what each message channel or campaign
acquired, activated, retained, converted and lost, and the whole marketing programme against the brand's global
control group. The definitions are in `cdp.analytics.models` (and the README).

No server is needed: the commands read the Parquet files under `--warehouse` (default: where `cdp export warehouse`
copies them). The period defaults to the brand's whole history in the export: from the first day of the month of
its first order through the day of its last event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdp.analytics.models import (
    STAGES,
    ChannelRow,
    CohortRow,
    LifecycleFlowRow,
    LifecycleStageRow,
    Period,
    ProgrammeRow,
    RepeatRow,
)
from cdp.analytics.programme import ProgrammeLift, programme_lift
from cdp.errors import InvalidInputError
from cdp_local.cli_profile import JsonOption, dump

if TYPE_CHECKING:
    from cdp_local.analytics import WarehouseAnalytics

results_app = typer.Typer(
    help="Customer analytics over a warehouse export (DuckDB): cohorts, repeat purchases, lifecycle flows, channels, "
    "the programme against the global control group.",
    no_args_is_help=True,
)
console = Console()
DEFAULT_WAREHOUSE = Path("warehouse-output")  # the `--output` default of `cdp export warehouse`


class CohortBy(StrEnum):
    MONTH = "month"
    CHANNEL = "channel"


class ChannelBy(StrEnum):
    CHANNEL = "channel"
    CAMPAIGN = "campaign"


WarehouseOption = typer.Option(
    DEFAULT_WAREHOUSE, "--warehouse", help="the export directory (`cdp export warehouse --output`)"
)
BrandOption = typer.Option(None, "--brand", help="the brand (default: the only one the export holds)")
StartOption = typer.Option(
    None, "--start", help="the first day, YYYY-MM-DD (default: the first of the month of the brand's first order)"
)
EndOption = typer.Option(None, "--end", help="the last day, YYYY-MM-DD, included (default: the brand's last event)")


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from exc


@contextmanager
def _opened(
    warehouse: Path, brand: str | None, start: str | None, end: str | None
) -> Iterator[tuple[WarehouseAnalytics, str, Period]]:
    """The export opened, the brand named (or the only one) and the period (its defaults from the data)."""
    from cdp_local.analytics import WarehouseAnalytics

    first, last = _day(start, "--start"), _day(end, "--end")
    try:
        with WarehouseAnalytics(warehouse) as analytics:
            brand_id = analytics.brand(brand)
            if first is None or last is None:
                default = analytics.default_period(brand_id)
                first, last = first or default.start, last or default.end
            yield analytics, brand_id, Period(start=first, end=last)
    except InvalidInputError as exc:  # no export, an unknown brand, a period or option out of bounds
        raise typer.BadParameter(exc.message, param_hint=_hint(exc.location)) from exc


def _hint(location: str | None) -> str | None:
    if location is None:
        return None
    return "--start/--end" if location == "period" else "--" + location.replace("_", "-")


def _title(what: str, brand_id: str, period: Period) -> str:
    return f"{what}: {escape(brand_id)}, {period.start} to {period.end}"


def _percent(share: float) -> str:
    return f"{share:.0%}"


def _json(brand_id: str, period: Period, **reports: Sequence[BaseModel]) -> None:
    dump(
        {
            "brand": brand_id,
            "period": period.model_dump(mode="json"),
            **{name: [row.model_dump(mode="json") for row in rows] for name, rows in reports.items()},
        }
    )


# ---- cohorts ------------------------------------------------------------------------------------------------------


@results_app.command()
def cohorts(
    by: CohortBy = typer.Option(CohortBy.MONTH, "--by", help="cohorts by first-order month or acquisition channel"),
    max_offset: int = typer.Option(12, "--max-offset", min=0, max=120, help="the last month offset shown"),
    warehouse: Path = WarehouseOption,
    brand: str | None = BrandOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """Cohort retention: of the customers won in each month (or through each acquisition channel), how many bought
    in the month of their first order (M0) and 1, 2, ... months later."""
    with _opened(warehouse, brand, start, end) as (analytics, brand_id, period):
        rows = analytics.cohorts(brand_id, period, by.value, max_offset)
    if as_json:
        _json(brand_id, period, rows=rows)
        return
    _print_cohorts(rows, by, _title(f"cohort retention by {by.value}", brand_id, period))


def _print_cohorts(rows: list[CohortRow], by: CohortBy, title: str) -> None:
    offsets = sorted({r.month_offset for r in rows})
    table = Table(title=title, title_justify="left")
    table.add_column("first-order month" if by is CohortBy.MONTH else "acquisition channel")
    table.add_column("customers", justify="right")
    for offset in offsets:
        table.add_column(f"M{offset}", justify="right")
    cells: dict[str, dict[int, CohortRow]] = {}
    for row in rows:
        cells.setdefault(row.cohort, {})[row.month_offset] = row
    for cohort, by_offset in cells.items():
        size = next(iter(by_offset.values())).cohort_size
        line = [escape(cohort), str(size)]
        for offset in offsets:
            cell = by_offset.get(offset)
            if cell is None:
                line.append("")
            elif cell.observed == cell.cohort_size:
                line.append(f"{cell.customers} ({_percent(cell.share)})")
            else:  # members won late in the period are not observed this far out
                line.append(f"{cell.customers}/{cell.observed} ({_percent(cell.share)})")
        table.add_row(*line)
    console.print(table if rows else f"{title}: no customer won in the period")


# ---- repeat purchases ---------------------------------------------------------------------------------------------


@results_app.command()
def repeat(
    max_orders: int = typer.Option(5, "--max-orders", min=1, max=50, help="the curve runs from 1 to this many orders"),
    warehouse: Path = WarehouseOption,
    brand: str | None = BrandOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """The repeat-purchase curve: of the customers won in the period, the share with at least k orders, and the
    median days from their first to their second order."""
    with _opened(warehouse, brand, start, end) as (analytics, brand_id, period):
        rows = analytics.repeat(brand_id, period, max_orders)
    if as_json:
        _json(brand_id, period, rows=rows)
        return
    _print_repeat(rows, _title("repeat purchases", brand_id, period))


def _print_repeat(rows: list[RepeatRow], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("orders", "customers", "share"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f">= {row.orders_at_least}", str(row.customers), _percent(row.share))
    console.print(table)
    median = rows[0].median_days_to_second if rows else None
    buyers = rows[0].buyers if rows else 0
    gap = "no repeat buyer" if median is None else f"{median:g} days"
    console.print(f"{buyers} new customers; median time from the first to the second order: {gap}")


# ---- lifecycle ----------------------------------------------------------------------------------------------------


@results_app.command()
def lifecycle(
    warehouse: Path = WarehouseOption,
    brand: str | None = BrandOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """Lifecycle stages at each month's end (the lifecycle tag's rule on the orders) and the moves between them."""
    with _opened(warehouse, brand, start, end) as (analytics, brand_id, period):
        stages, flows = analytics.lifecycle(brand_id, period)
    if as_json:
        _json(brand_id, period, stages=stages, flows=flows)
        return
    _print_lifecycle(stages, flows, _title("lifecycle", brand_id, period))


def _print_lifecycle(stages: list[LifecycleStageRow], flows: list[LifecycleFlowRow], title: str) -> None:
    table = Table(title=f"{title}: persons per stage at each month's end", title_justify="left")
    table.add_column("month")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    counts: dict[str, dict[str, int]] = {}
    for row in stages:
        counts.setdefault(row.month, {})[row.stage] = row.persons
    for month, by_stage in counts.items():
        table.add_row(month, *(str(by_stage.get(stage, 0)) for stage in STAGES))
    console.print(table)
    moves = Table(
        title="moves during each month (unchanged persons left out; --json lists every flow)", title_justify="left"
    )
    for column in ("month", "from", "to", "persons"):
        moves.add_column(column, justify="right" if column == "persons" else "left")
    for flow in flows:
        if flow.from_stage != flow.to_stage:
            moves.add_row(flow.month, flow.from_stage or "(new)", flow.to_stage, str(flow.persons))
    console.print(moves)


# ---- channels -----------------------------------------------------------------------------------------------------


@results_app.command()
def channels(
    by: ChannelBy = typer.Option(ChannelBy.CHANNEL, "--by", help="per message channel or per campaign"),
    window_days: int = typer.Option(
        30, "--window-days", min=1, max=365, help="days after a delivery an order is counted in"
    ),
    warehouse: Path = WarehouseOption,
    brand: str | None = BrandOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """Per message channel (or campaign): the persons its deliveries in the period reached, and of them those
    acquired, activated (won back), retained, converted and lost within the window after a delivery."""
    with _opened(warehouse, brand, start, end) as (analytics, brand_id, period):
        rows = analytics.channels(brand_id, period, by.value, window_days)
    if as_json:
        _json(brand_id, period, rows=rows)
        return
    _print_channels(rows, by, _title(f"outcomes within {window_days} days by {by.value}", brand_id, period))


def _print_channels(rows: list[ChannelRow], by: ChannelBy, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column(by.value)
    for column in ("reached", "acquired", "activated", "retained", "converted", "lost", "conversion"):
        table.add_column(column, justify="right")
    for row in rows:
        conversion = _percent(row.converted / row.reached) if row.reached else "-"
        counts = (row.reached, row.acquired, row.activated, row.retained, row.converted, row.lost)
        table.add_row(escape(row.key or "(no campaign)"), *(str(n) for n in counts), conversion)
    console.print(table if rows else f"{title}: no message delivered in the period")


# ---- the programme against the global control group ----------------------------------------------------------------


@results_app.command()
def programme(
    warehouse: Path = WarehouseOption,
    brand: str | None = BrandOption,
    start: str | None = StartOption,
    end: str | None = EndOption,
    as_json: bool = JsonOption,
) -> None:
    """The whole marketing programme against the brand's global control group (who get no marketing): buyers,
    orders and revenue per person of each, the differences with 95% intervals, and the incremental revenue."""
    with _opened(warehouse, brand, start, end) as (analytics, brand_id, period):
        rows = analytics.programme(brand_id, period)
    lift = programme_lift(rows)
    if as_json:
        dump(
            {
                "brand": brand_id,
                "period": period.model_dump(mode="json"),
                "rows": [row.model_dump(mode="json") for row in rows],
                "lift": lift.model_dump(mode="json"),
            }
        )
        return
    _print_programme(rows, lift, _title("the programme against the global control group", brand_id, period))


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:+,.0f} to {high:+,.0f}"


def _print_programme(rows: list[ProgrammeRow], lift: ProgrammeLift, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("group")
    for column in ("persons", "buyers", "conversion (95%)", "orders", "revenue", "revenue per person"):
        table.add_column(column, justify="right")
    rates = {"marketed": lift.conversion.treatment, "global_control": lift.conversion.control}
    for row in rows:
        rate = rates[row.group]
        shown = rate.rate is not None and rate.low is not None and rate.high is not None
        conversion = f"{rate.rate:.1%} ({rate.low:.1%} to {rate.high:.1%})" if shown else "-"
        per_person = f"{row.revenue_minor / row.persons:,.0f}" if row.persons else "-"
        counts = (row.persons, row.buyers)
        table.add_row(
            row.group, *(str(n) for n in counts), conversion, str(row.orders), f"{row.revenue_minor:,}", per_person
        )
    console.print(table)
    console.print(f"conversion: {lift.conversion.verdict}")
    console.print(f"revenue per person (minor units, currencies as ordered): {lift.revenue_per_person.verdict}")
    if lift.incremental_revenue_minor is not None:
        console.print(
            f"incremental revenue of the programme: {lift.incremental_revenue_minor:+,.0f} "
            f"(95% interval {_interval(lift.incremental_low, lift.incremental_high)})"
        )
