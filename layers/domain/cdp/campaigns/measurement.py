"""The one place for a campaign's statistics: conversion rates with intervals, the difference between a treated group
and its control (holdout) with an interval and a significance test, incremental conversions, and a plain-language
verdict that says when the groups are too small to conclude. Scheduled runs and journeys both report through it.

- A rate's 95% interval is Wilson's score interval (sound near 0 and 1 and for small groups, unlike the normal one).
- The difference of two rates gets Newcombe's hybrid score interval (method 10), built from the two Wilson intervals.
- The p-value is the two-sided pooled two-proportion z-test.
Standard library only (`statistics.NormalDist`): it runs in every function's layer.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel, Field

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
    return max(0.0, centre - half), min(1.0, centre + half)


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
