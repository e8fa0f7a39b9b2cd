"""The campaign statistics against published reference values (Newcombe 1998, Statistics in Medicine 17:857-872,
tables I and II) and textbook cases, plus the verdict a marketer reads."""

from __future__ import annotations

import pytest

from cdp.campaigns.measurement import compare, rate, wilson


@pytest.mark.parametrize(
    ("converted", "size", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe table I, example (a): Wilson score interval
        (15, 148, 0.0624, 0.1605),  # example (b)
        (0, 20, 0.0, 0.1611),  # example (c): no event
        (1, 29, 0.0061, 0.1718),  # example (d)
    ],
)
def test_wilson_intervals_match_newcombes_table(converted: int, size: int, low: float, high: float) -> None:
    interval = wilson(converted, size)
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=5e-4)


def test_the_difference_interval_matches_newcombes_method_10() -> None:
    # Newcombe table II, example (a): 56/70 vs 48/80, method 10 (hybrid score): 0.0524 to 0.3339
    lift = compare(56, 70, 48, 80)
    assert lift.difference == pytest.approx(0.2, abs=1e-9)
    assert (lift.low, lift.high) == pytest.approx((0.0524, 0.3339), abs=5e-4)
    # example (b): 9/10 vs 3/10: 0.1705 to 0.8090
    small = compare(9, 10, 3, 10)
    assert (small.low, small.high) == pytest.approx((0.1705, 0.8090), abs=5e-4)


def test_the_p_value_is_the_pooled_two_proportion_z_test() -> None:
    # 56/70 vs 48/80: pooled p = 104/150, SE = sqrt(p(1-p)(1/70 + 1/80)) = 0.07547, z = 0.2 / SE = 2.650:
    # two-sided p = 2 (1 - Phi(2.650)) = 0.00805
    assert compare(56, 70, 48, 80).p_value == pytest.approx(0.00805, abs=5e-5)
    assert compare(10, 100, 10, 100).p_value == pytest.approx(1.0)


def test_the_verdict_says_what_a_marketer_may_conclude() -> None:
    raised = compare(250, 1000, 40, 250)
    assert raised.conclusive and raised.verdict.startswith("the campaign raised conversion by +9.0 points")
    assert raised.incremental_conversions == pytest.approx(250 - 0.16 * 1000)
    assert raised.relative == pytest.approx(0.09 / 0.16)
    flat = compare(100, 1000, 26, 250)
    assert flat.conclusive and flat.verdict.startswith("no difference shown")
    tiny = compare(5, 20, 0, 4)
    assert not tiny.conclusive and tiny.verdict.startswith("too few persons to conclude (20 treated, 4 in the control")
    empty = compare(3, 10, 0, 0)
    assert empty.verdict == "no comparison: one of the groups is empty" and rate(0, 0).rate is None


@pytest.mark.parametrize("size", [1, 5, 34, 1000])
def test_wilson_bounds_are_exactly_zero_and_one_at_the_edges(size: int) -> None:
    # floating point alone leaves 0/34's lower bound a hair above the observed rate of 0
    assert wilson(0, size) is not None and wilson(0, size)[0] == 0.0  # type: ignore[index]
    assert wilson(size, size) is not None and wilson(size, size)[1] == 1.0  # type: ignore[index]
