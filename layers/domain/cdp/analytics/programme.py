"""The whole marketing programme against the brand's persistent global control group: from the `programme` report's
two rows (`ProgrammeRow`), what marketing changed, with the campaign lift's statistics (`cdp.campaigns.measurement`).

- conversion: a buyer is a person with an order in the period; the marketed group is the treatment, the global
  control group the control (`compare`: Wilson intervals, Newcombe's interval of the difference, the pooled z-test);
- revenue per person: the mean over every person of a group, buyers or not, and Welch's interval of the difference
  from each group's moments (`compare_moments`: size, sum and sum of squares of per-person revenue);
- incremental revenue: (revenue per marketed person - revenue per control person) x marketed persons, with the
  difference's interval scaled alike;
- the verdicts and the small-group warning are the campaign lift's. Amounts are minor units of whatever currency
  the orders were in (the reports ignore currency), so the verdict shows them without one.
Pure: no engine, no AWS.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from cdp.analytics.models import ProgrammeRow
from cdp.campaigns.measurement import Lift, MeanDifference, Moments, compare, compare_moments


class ProgrammeLift(BaseModel):
    """Marketed persons (the treatment) against the global control group (the control)."""

    conversion: Lift = Field(description="the share of persons who bought in the period, marketed vs control")
    revenue_per_person: MeanDifference = Field(
        description="revenue in minor units per person (buyers or not), marketed vs control (Welch, from moments)"
    )
    incremental_revenue_minor: float | None = Field(
        description="(revenue per marketed person - revenue per control person) x marketed persons: what the "
        "programme added over the period (None: a group is empty)"
    )
    incremental_low: float | None = Field(description="95% interval: the difference's interval x marketed persons")
    incremental_high: float | None


def _moments(row: ProgrammeRow) -> Moments:
    return Moments(size=row.persons, total=row.revenue_minor, squares=row.revenue_squares)


def programme_lift(rows: Sequence[ProgrammeRow]) -> ProgrammeLift:
    """The lift from the report's rows: one `global_control` and one `marketed` row."""
    by_group = {row.group: row for row in rows}
    if len(rows) != 2 or set(by_group) != {"global_control", "marketed"}:
        raise ValueError("the programme report answers one global_control and one marketed row")
    control, marketed = by_group["global_control"], by_group["marketed"]
    revenue = compare_moments(_moments(marketed), _moments(control))
    persons = marketed.persons

    def scaled(value: float | None) -> float | None:
        return None if value is None else value * persons

    return ProgrammeLift(
        conversion=compare(marketed.buyers, marketed.persons, control.buyers, control.persons),
        revenue_per_person=revenue,
        incremental_revenue_minor=scaled(revenue.difference),
        incremental_low=scaled(revenue.low),
        incremental_high=scaled(revenue.high),
    )
