"""The programme's lift from the report's two rows (`cdp.analytics.programme`), against the numbers worked out by hand
for the export of `conftest.py` (January to April 2026, `test_reports.PROGRAMME`)."""

from __future__ import annotations

import pytest

from cdp.analytics.models import ProgrammeRow
from cdp.analytics.programme import programme_lift
from cdp.analytics.reports import AnalyticsQueryError, report_lift
from tests.unit.analytics.test_reports import PROGRAMME


def _rows(table: list[tuple[str, int, int, int, int, float]]) -> list[ProgrammeRow]:
    names = ("group", "persons", "buyers", "orders", "revenue_minor", "revenue_squares")
    return [ProgrammeRow.model_validate(dict(zip(names, row, strict=True))) for row in table]


def test_the_lift_of_the_hand_computed_programme() -> None:
    lift = programme_lift(_rows(PROGRAMME))
    # conversion: marketed 4 of 5 = 0.8, control 1 of 3; Wilson (z = 1.959964, z^2 = 3.841459) for 4/5: centre
    # (0.8 + 0.384146) / 1.768292 = 0.669655, half 1.959964 x sqrt(0.032 + 0.038415) / 1.768292 = 0.294119
    c = lift.conversion
    assert (c.treatment.rate, c.control.rate) == pytest.approx((0.8, 1 / 3))
    assert (c.treatment.low, c.treatment.high) == pytest.approx((0.669655 - 0.294119, 0.669655 + 0.294119), abs=1e-5)
    assert c.difference == pytest.approx(0.466667, abs=1e-6)
    # pooled 5/8: variance 0.625 x 0.375 x (1/5 + 1/3) = 0.125, z = 0.466667 / 0.353553 = 1.319933
    assert c.p_value == pytest.approx(0.186858, abs=1e-6)
    # revenue per person: 75_000 / 5 = 15_000 against 25_000 / 3 = 8_333.33 (Welch worked in test_attribution)
    r = lift.revenue_per_person
    assert (r.treatment_mean, r.control_mean) == pytest.approx((15_000, 8_333.333), abs=1e-3)
    assert (r.low, r.high) == pytest.approx((-15_632.56, 28_965.89), abs=0.01)
    # incremental revenue: 6_666.67 x 5 marketed persons, its interval x 5 alike
    assert lift.incremental_revenue_minor == pytest.approx(33_333.33, abs=0.01)
    assert (lift.incremental_low, lift.incremental_high) == pytest.approx((-78_162.80, 144_829.47), abs=0.01)
    # and the campaign lift's warning: far too few persons to conclude anything
    assert not c.conclusive and c.verdict.startswith("too few persons to conclude (5 treated, 3 in the control")
    assert not r.conclusive and r.verdict.startswith("too few persons to conclude")


def test_a_large_programme_gets_a_verdict() -> None:
    # 1_000 marketed, 300 of them buying 100.00 each; 100 in the control, 20 buying 100.00 each
    lift = programme_lift(
        _rows(
            [
                ("global_control", 100, 20, 20, 200_000, 20 * 10_000.0**2),
                ("marketed", 1_000, 300, 300, 3_000_000, 300 * 10_000.0**2),
            ]
        )
    )
    assert lift.conversion.conclusive and lift.conversion.verdict.startswith("the campaign raised conversion by +10.0")
    # 3_000 - 2_000 = 1_000 minor units per person more, x 1_000 marketed persons
    assert lift.revenue_per_person.difference == pytest.approx(1_000)
    assert lift.incremental_revenue_minor == pytest.approx(1_000_000)


def test_an_empty_group_gives_no_comparison() -> None:
    lift = programme_lift(_rows([("global_control", 0, 0, 0, 0, 0.0), ("marketed", 4, 1, 1, 500, 250_000.0)]))
    assert lift.conversion.verdict.startswith("no comparison")
    assert lift.revenue_per_person.verdict.startswith("no comparison")
    assert lift.incremental_revenue_minor is None and lift.incremental_low is None


def test_rows_that_are_not_the_two_groups_are_an_unexpected_result() -> None:
    (control, _) = _rows(PROGRAMME)
    with pytest.raises(AnalyticsQueryError) as refused:
        report_lift("programme", [control])
    assert refused.value.code == "unexpected_result"
    assert report_lift("channels", []) is None
