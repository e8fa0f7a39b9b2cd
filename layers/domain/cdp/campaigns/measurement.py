"""The one place for a campaign's statistics: conversion rates with intervals, the difference between a treated group
and its control (holdout) with an interval and a significance test, incremental conversions, and a plain-language
verdict that says when the groups are too small to conclude. Scheduled runs and journeys both report through it.

- A rate's 95% interval is Wilson's score interval (sound near 0 and 1 and for small groups, unlike the normal one).
- The difference of two rates gets Newcombe's hybrid score interval (method 10), built from the two Wilson intervals.
- The p-value is the two-sided pooled two-proportion z-test.
- Revenue per person (a mean over everyone in a group, buyers or not) gets Welch's unequal-variance interval for the
  difference of two means with the normal quantile and a two-sided z-test: groups large enough to conclude anything
  (`MIN_GROUP`) make the normal approximation sound; smaller ones get the plain-language warning instead. The same
  from each group's moments (size, sum, sum of squares: `compare_moments`) when only aggregates are at hand.
Standard library only (`statistics.NormalDist`): it runs in every function's layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from pydantic import BaseModel, Field

from cdp.shared.money import format_money

CONFIDENCE = 0.95
MIN_GROUP = 30  # below this in either group, or fewer than 5 expected conversions, no conclusion is drawn
MIN_EXPECTED = 5


class Rate(BaseModel):
    converted: int
    size: int
    rate: float | None = Field(description="converted / size (None for an empty group)")
    low: float | None = Field(description="95% Wilson interval")
    high: float | None


class Lift(BaseModel):
    """Treatment against its control: how much more converted because of the campaign, and how sure that is."""

    treatment: Rate
    control: Rate
    difference: float | None = Field(description="treatment rate - control rate (absolute lift)")
    low: float | None = Field(description="95% interval of the difference (Newcombe)")
    high: float | None
    relative: float | None = Field(description="difference / control rate (None when the control rate is 0)")
    p_value: float | None = Field(description="two-sided, pooled two-proportion z-test")
    incremental_conversions: float | None = Field(
        description="treated conversions minus what the control rate predicts"
    )
    conclusive: bool = Field(description="both groups large enough to conclude anything")
    verdict: str


class MeanDifference(BaseModel):
    """Treatment against its control on a per-person amount (revenue per person, in minor units)."""

    treatment_mean: float | None
    control_mean: float | None
    difference: float | None = Field(description="treatment mean - control mean")
    low: float | None = Field(description="95% interval of the difference (Welch, normal quantile)")
    high: float | None
    p_value: float | None = Field(description="two-sided z-test on the difference")
    conclusive: bool
    verdict: str


def _mean_var(values: Sequence[int]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, variance


class Moments(BaseModel):
    """A group's per-person amounts summed three ways (every person, 0 for those who bought nothing): enough for
    their mean and sample variance without the amounts themselves (what a warehouse query returns)."""

    size: int = Field(ge=0, description="persons")
    total: float = Field(description="the sum of the amounts")
    squares: float = Field(ge=0, description="the sum of the squared amounts")

    def mean_var(self) -> tuple[float, float]:
        mean = self.total / self.size
        if self.size < 2:
            return mean, 0.0
        # the textbook one-pass formula; a negative rounding residue (all amounts equal) is a zero variance
        return mean, max(0.0, (self.squares - self.total * mean) / (self.size - 1))


def compare_means(treatment: Sequence[int], control: Sequence[int], currency: str | None = None) -> MeanDifference:
    """Every person of each group with their amount in minor units (0 for those who bought nothing); the verdict
    shows amounts in `currency` when given."""
    t = _mean_var(treatment) if treatment else None
    c = _mean_var(control) if control else None
    return _mean_difference(len(treatment), t, len(control), c, currency)


def compare_moments(treatment: Moments, control: Moments, currency: str | None = None) -> MeanDifference:
    """`compare_means` from each group's moments (size, sum, sum of squares) instead of its amounts: the same
    interval, p-value and verdict (up to floating-point rounding of the variance)."""
    t = treatment.mean_var() if treatment.size else None
    c = control.mean_var() if control.size else None
    return _mean_difference(treatment.size, t, control.size, c, currency)


def _mean_difference(
    nt: int, t: tuple[float, float] | None, nc: int, c: tuple[float, float] | None, currency: str | None
) -> MeanDifference:
    """Welch's interval of the difference of two means from each group's size, mean and sample variance (None: an
    empty group), the z-test and the verdict."""
    if t is None or c is None:
        return MeanDifference(
            treatment_mean=t[0] if t else None,
            control_mean=c[0] if c else None,
            difference=None,
            low=None,
            high=None,
            p_value=None,
            conclusive=False,
            verdict="no comparison: one of the groups is empty",
        )
    (mt, vt), (mc, vc) = t, c
    difference = mt - mc
    se = math.sqrt(vt / nt + vc / nc)
    z = _z(CONFIDENCE)
    p = (2 * (1 - NormalDist().cdf(abs(difference) / se))) if se > 0 else (1.0 if difference == 0 else 0.0)
    conclusive = min(nt, nc) >= MIN_GROUP
    low, high = difference - z * se, difference + z * se
    if not conclusive:
        verdict = (
            f"too few persons to conclude ({nt} treated, {nc} in the control; at least "
            f"{MIN_GROUP} each are needed): read the amounts as anecdotes"
        )
    else:
        shown = f"{_amount(difference, currency)} per person (95% interval {_amount(low, currency)} to "
        shown += f"{_amount(high, currency)})"
        if low > 0:
            verdict = f"the treated spent more: {shown}; p = {p:.3g}"
        elif high < 0:
            verdict = f"the treated spent less: {shown}; p = {p:.3g}"
        else:
            verdict = f"no difference shown: {shown}; p = {p:.3g}"
    return MeanDifference(
        treatment_mean=mt,
        control_mean=mc,
        difference=difference,
        low=low,
        high=high,
        p_value=p,
        conclusive=conclusive,
        verdict=verdict,
    )


def _amount(minor: float, currency: str | None) -> str:
    if currency is None:
        return f"{minor:+,.0f}"
    text = format_money(round(minor), currency)
    return text if text.startswith("-") else f"+{text}"


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(converted: int, size: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    if size <= 0:
        return None
    z = _z(confidence)
    p = converted / size
    denominator = 1 + z * z / size
    centre = (p + z * z / (2 * size)) / denominator
    half = z * math.sqrt(p * (1 - p) / size + z * z / (4 * size * size)) / denominator
    # The bounds are exactly 0 and 1 at the edges; floating point would leave them a hair inside.
    low = 0.0 if converted <= 0 else max(0.0, centre - half)
    high = 1.0 if converted >= size else min(1.0, centre + half)
    return low, high


def rate(converted: int, size: int) -> Rate:
    interval = wilson(converted, size)
    return Rate(
        converted=converted,
        size=size,
        rate=converted / size if size else None,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
    )


def difference_interval(t: Rate, c: Rate) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval of t.rate - c.rate."""
    if t.rate is None or c.rate is None or t.low is None or t.high is None or c.low is None or c.high is None:
        return None
    d = t.rate - c.rate
    low = d - math.sqrt((t.rate - t.low) ** 2 + (c.high - c.rate) ** 2)
    high = d + math.sqrt((t.high - t.rate) ** 2 + (c.rate - c.low) ** 2)
    return low, high


def p_value(t: Rate, c: Rate) -> float | None:
    if not t.size or not c.size:
        return None
    pooled = (t.converted + c.converted) / (t.size + c.size)
    variance = pooled * (1 - pooled) * (1 / t.size + 1 / c.size)
    if variance <= 0:
        return 1.0
    z = ((t.converted / t.size) - (c.converted / c.size)) / math.sqrt(variance)
    return 2 * (1 - NormalDist().cdf(abs(z)))


def compare(treated: int, treated_size: int, control: int, control_size: int) -> Lift:
    t, c = rate(treated, treated_size), rate(control, control_size)
    interval = difference_interval(t, c)
    difference = t.rate - c.rate if t.rate is not None and c.rate is not None else None
    pooled = (treated + control) / (treated_size + control_size) if treated_size + control_size else 0.0
    expected = min(treated_size, control_size) * min(pooled, 1 - pooled)
    conclusive = min(treated_size, control_size) >= MIN_GROUP and expected >= MIN_EXPECTED
    p = p_value(t, c)
    return Lift(
        treatment=t,
        control=c,
        difference=difference,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        relative=difference / c.rate if difference is not None and c.rate else None,
        p_value=p,
        incremental_conversions=treated - c.rate * treated_size if c.rate is not None else None,
        conclusive=conclusive,
        verdict=_verdict(t, c, interval, p, conclusive),
    )


def _verdict(t: Rate, c: Rate, interval: tuple[float, float] | None, p: float | None, conclusive: bool) -> str:
    if interval is None or p is None or t.rate is None or c.rate is None:
        return "no comparison: one of the groups is empty"
    if not conclusive:
        return (
            f"too few persons to conclude ({t.size} treated, {c.size} in the control; at least {MIN_GROUP} each and "
            f"{MIN_EXPECTED} expected conversions are needed): read the rates as anecdotes"
        )
    low, high = interval
    points = f"{(t.rate - c.rate) * 100:+.1f} points (95% interval {low * 100:+.1f} to {high * 100:+.1f})"
    if low > 0:
        return f"the campaign raised conversion by {points}; p = {p:.3g}"
    if high < 0:
        return f"the treated converted less than the control: {points}; p = {p:.3g}"
    return f"no difference shown: {points}; p = {p:.3g}"
