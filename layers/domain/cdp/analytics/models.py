"""The period a report covers and the rows each report returns. The definitions live in the field descriptions: they
are what a marketer reads (`cdp results ... --json` carries the same names), and the SQL in `cdp.analytics.sql`
computes exactly these.

Counting rules shared by every report:
- an order is an `order_placed` event; a return or refund (`order_returned`) does not remove it, as the profile's
  `order_count` counts orders (`cdp.profile.models`);
- times are UTC; months are calendar months; a day `d` of a period runs from `d 00:00` to `d+1 00:00` UTC;
- a period is read from its first day through its last day inclusive. A period that starts or ends mid-month makes its
  first or last month partial; "the end of a month" is then the end of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.errors import InvalidInputError

MAX_MONTHS = 240  # twenty years of months: the reports spell their months out in the SQL
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2099, 12, 31)  # the days an event can have (`cdp.ingest.events`)

# The lifecycle tag's thresholds (`cdp/tags/catalog/lifecycle.yaml`; a test keeps them equal to the bundled rule).
DORMANT_DAYS = 90
CHURNED_DAYS = 365
MATURE_ORDERS = 3

Stage = Literal["introduction", "growth", "mature", "dormant", "churned"]
STAGES: tuple[Stage, ...] = ("introduction", "growth", "mature", "dormant", "churned")
CohortBy = Literal["month", "channel"]
ChannelBy = Literal["channel", "campaign"]
ProgrammeGroup = Literal["global_control", "marketed"]


class AnalyticsError(InvalidInputError):
    """A report was asked for something it cannot compute (an empty period, a window out of bounds, ...)."""


@dataclass(frozen=True)
class ReportMonth:
    """One calendar month of a period: its position, `YYYY-MM` label and the instants it spans (clipped to the
    period)."""

    index: int
    label: str
    start: datetime
    end: datetime


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


class Period(BaseModel):
    """The days a report reads: from `start` through `end`, both included (UTC)."""

    model_config = ConfigDict(frozen=True)

    start: date = Field(description="the first day read (UTC)")
    end: date = Field(description="the last day read, included (UTC)")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise AnalyticsError(f"the period ends ({self.end}) before it starts ({self.start})", "period")
        if self.start < FIRST_DAY or self.end > LAST_DAY:
            raise AnalyticsError(f"a period lies between {FIRST_DAY} and {LAST_DAY}", "period")
        if len(self.months()) > MAX_MONTHS:
            raise AnalyticsError(f"the period spans more than {MAX_MONTHS} months", "period")
        return self

    @property
    def since(self) -> datetime:
        return _midnight(self.start)

    @property
    def until(self) -> datetime:
        """The first instant after the period."""
        return _midnight(self.end + timedelta(days=1))

    def months(self) -> list[ReportMonth]:
        months: list[ReportMonth] = []
        first = date(self.start.year, self.start.month, 1)
        while first <= self.end:
            following = _next_month(first)
            months.append(
                ReportMonth(
                    index=len(months),
                    label=f"{first:%Y-%m}",
                    start=max(_midnight(first), self.since),
                    end=min(_midnight(following), self.until),
                )
            )
            first = following
        return months

    def previous_month_label(self) -> str:
        """The month whose end the first month's flows start from (the period's start)."""
        before = self.start - timedelta(days=1)
        return f"{before:%Y-%m}"


MAX_TAG_VALUES = 20


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class CohortRow(_Row):
    """One cell of a cohort retention table: a cohort, a month offset, how many of the cohort bought then."""

    cohort: str = Field(
        description="by month: the month (YYYY-MM) of the customer's first order ever. By channel: the acquisition "
        "channel, the ad platform of the person's first ad click or lead form (profiles.acquisition_platform) when "
        "that came no later than the first order, else the source of the first order (app, web, tmall, pos, ...)"
    )
    cohort_size: int = Field(description="customers whose first order ever falls in the period, in this cohort")
    month_offset: int = Field(description="calendar months after the first-order month (0: that month)")
    observed: int = Field(
        description="cohort members whose first-order month plus the offset is still within the period (by month: "
        "the whole cohort; by channel, members acquired late in the period are not observed at high offsets)"
    )
    customers: int = Field(description="observed members with at least one order in that month")
    share: float = Field(description="customers / observed (1.0 at offset 0 by definition)")


class RepeatRow(_Row):
    """One point of the repeat-purchase curve: how many of the period's new customers reached k orders."""

    orders_at_least: int = Field(description="k: the number of orders")
    customers: int = Field(
        description="new customers (first order ever in the period) with at least k orders from their first order "
        "through the end of the period (a customer won late in the period had less time to repeat)"
    )
    buyers: int = Field(description="new customers: persons whose first order ever falls in the period")
    share: float = Field(description="customers / buyers (0 when there is no buyer)")
    median_days_to_second: float | None = Field(
        description="median days between the UTC calendar days of the first and second order, over the new "
        "customers with a second order in the period (the mean of the two middle values for an even count; none "
        "without a repeat buyer); the same on every row"
    )


_STAGE_RULE = (
    f"the lifecycle tag's rule on the orders placed before the end of the month: introduction (no order yet), "
    f"churned (last order {CHURNED_DAYS}+ days before), dormant ({DORMANT_DAYS}+ days), mature ({MATURE_ORDERS}+ "
    "orders), else growth"
)


class LifecycleStageRow(_Row):
    """How many persons stood in a lifecycle stage at the end of a month."""

    month: str = Field(description="the month (YYYY-MM) at whose end the stage is taken")
    stage: Stage = Field(description=_STAGE_RULE)
    persons: int = Field(
        description="persons known by then (first seen, or created, before the end of the month) in that stage"
    )


class LifecycleFlowRow(_Row):
    """How many persons moved from one stage to another during a month (staying put is a flow too)."""

    month: str = Field(description="the month (YYYY-MM): stage at the end of the month before -> at its end")
    from_stage: Stage | None = Field(
        description="the stage at the end of the previous month (for the first month: at the period's start); "
        "none: the person was not known yet"
    )
    to_stage: Stage = Field(description=_STAGE_RULE)
    persons: int = Field(description="persons making that move")


class ChannelRow(_Row):
    """What the messages of one channel (or campaign) delivered in the period were followed by.

    Each person reached counts once per outcome, and may count under several (won back by one message, then
    retained after the next); a person reached on two channels counts under both (no de-duplication across rows)."""

    key: str | None = Field(
        description="the message channel (sms, email, push, wechat, inapp, webhook) or the campaign id (none: "
        "messages of no campaign)"
    )
    reached: int = Field(description="persons with at least one message_delivered (status delivered) in the period")
    acquired: int = Field(
        description="reached persons whose first order ever came within the window after one of those deliveries"
    )
    activated: int = Field(
        description=f"reached persons who ordered within the window after a delivery while lapsed: their previous "
        f"order was {DORMANT_DAYS}+ days before that order (dormant or churned: won back)"
    )
    retained: int = Field(
        description=f"reached persons who ordered within the window after a delivery while active: their previous "
        f"order was less than {DORMANT_DAYS} days before that order"
    )
    converted: int = Field(
        description="reached persons with any order within the window after a delivery (acquired, activated or "
        "retained)"
    )
    lost: int = Field(
        description=f"reached persons active at a delivery (an order in the {DORMANT_DAYS} days before it) who did "
        f"not order within the window after it and crossed into dormant during it ({DORMANT_DAYS} days since their "
        "last order by the window's end)"
    )


class TagValueRow(_Row):
    """How many of the brand's persons held one value of one tag at the last export (the catalog's distributions).

    A tag's values are listed most held first, at most `MAX_TAG_VALUES`; the rest add up in one row whose value is
    `other`. Persons without the tag are not a row: `share` is of all the brand's persons, so a tag's shares add up
    to the share of persons holding it. Audience memberships (`audience:<id>`) are not listed."""

    tag: str
    value: str = Field(description="the value as text (true/false, a number, a string); `other`: the rest")
    persons: int
    share: float = Field(description="persons / the brand's persons in the export")


class ProgrammeRow(_Row):
    """One side of the whole marketing programme against the brand's persistent global control group
    (`cdp.channels.contact.in_global_control`: a fixed share of the brand's customers who receive no marketing)."""

    group: ProgrammeGroup = Field(
        description="global_control: persons the export marked in the brand's global control group "
        "(profiles.global_control true); marketed: every other person (false). Persons whose profile row has no "
        "global_control (NULL: written before the export recorded it) are in neither: not known"
    )
    persons: int = Field(
        description="persons of the brand's latest profiles snapshot known by the period's end (first seen, or "
        "created, before it), in this group"
    )
    buyers: int = Field(description="of them, persons with at least one order in the period")
    orders: int = Field(description="their orders in the period")
    revenue_minor: int = Field(
        description="the sum of those orders' totals (order_placed amount_minor), in minor units, whatever their "
        "currency (as the other reports, which ignore currency: a brand selling in several currencies mixes them)"
    )
    revenue_squares: float = Field(
        description="the sum over the group's persons of (their revenue in the period)^2, buyers or not: with "
        "persons and revenue_minor, the moments of revenue per person (its mean and variance)"
    )
