"""BG/NBD and Gamma-Gamma (cdp.models.clv) fitted on the CDNOW sample (2,357 customers' first 39 weeks) give the
published estimates: Fader, Hardie and Lee (2005) report r = 0.2426, alpha = 4.4135, a = 0.7929, b = 2.4258 and a
log-likelihood of -9582.4, and for the customer with x = 2, t_x = 30.43, T = 38.86 an expectation of 1.226 purchases in
the next 39 weeks; Fader and Hardie's Gamma-Gamma note p = 6.25, q = 3.74, gamma = 15.44 on its 946 repeat buyers.

The sample ships in the `lifetimes` package's wheel (MIT; `lifetimes/datasets/`), downloaded once with pip like the
layers' wheels (no install: only its data is read) and cached under .build/."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from cdp.models.clv import (
    ModelFitError,
    PersonSummaries,
    RepeatSummary,
    fit_bgnbd,
    fit_gamma_gamma,
    lifetime_value,
    summarize_purchases,
)

LIFETIMES = "lifetimes==0.11.3"
CACHE = Path(__file__).resolve().parents[3] / ".build" / "test-data" / "lifetimes"
SUMMARY = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"


CALIBRATION_END, HOLDOUT_END = date(1997, 9, 30), date(1998, 6, 30)  # weeks 1-39 and 40-78 of the cohort


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    wheels = sorted(CACHE.glob("[Ll]ifetimes-0.11.3-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603 - a pinned download from the package index, as the layer builds do
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(CACHE), LIFETIMES],
            check=True,
        )
        wheels = sorted(CACHE.glob("[Ll]ifetimes-0.11.3-*.whl"))
    return zipfile.ZipFile(wheels[0])


@pytest.fixture(scope="module")
def cdnow(wheel: zipfile.ZipFile) -> dict[str, np.ndarray]:
    """The published calibration summary of the 2,357 customers (x, t_x, T in weeks; zbar their repeat mean)."""
    rows = list(csv.DictReader(io.StringIO(wheel.read(SUMMARY).decode())))
    return {name: np.array([float(r[name]) for r in rows]) for name in ("ID", "x", "t_x", "T", "zbar")}


@pytest.fixture(scope="module")
def transactions(wheel: zipfile.ZipFile) -> dict[str, list[tuple[date, float]]]:
    """The same customers' transactions over 78 weeks (CDNOW_sample.txt: id, master id, YYYYMMDD, CDs, dollars)."""
    out: dict[str, list[tuple[date, float]]] = {}
    for line in wheel.read("lifetimes/datasets/CDNOW_sample.txt").decode().splitlines():
        if line.strip():
            _, customer, day, _, dollars = line.split()
            at = date(int(day[:4]), int(day[4:6]), int(day[6:]))
            out.setdefault(str(int(customer)), []).append((at, float(dollars)))
    return out


def test_bgnbd_on_cdnow_gives_the_published_estimates(cdnow: dict[str, np.ndarray]) -> None:
    fitted = fit_bgnbd(RepeatSummary.of(cdnow["x"], cdnow["t_x"], cdnow["T"]))
    assert fitted.persons == 2357
    assert (round(fitted.r, 4), round(fitted.alpha, 4), round(fitted.a, 4), round(fitted.b, 4)) == (
        0.2426,
        4.4135,
        0.7929,
        2.4258,
    )
    assert round(fitted.log_likelihood, 1) == -9582.4
    # the paper's worked example: 1.226 purchases expected in the next 39 weeks
    example = fitted.expected_purchases(39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert round(float(example[0]), 3) == 1.226
    # P(alive): 1 without a repeat purchase (BG/NBD drops out only after one); lower the longer since the last
    alive = fitted.p_alive(np.array([0.0, 2.0, 2.0]), np.array([0.0, 38.0, 5.0]), np.array([38.86] * 3))
    assert alive[0] == 1.0 and 1.0 > alive[1] > alive[2] > 0.0


def test_gamma_gamma_on_cdnow_gives_the_published_estimates(cdnow: dict[str, np.ndarray]) -> None:
    fitted = fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    assert fitted.persons == 946  # the repeat buyers
    assert (round(fitted.p, 2), round(fitted.q, 2), round(fitted.gamma, 1)) == (6.25, 3.74, 15.4)
    # a buyer's expected spend shrinks toward the population mean (gamma p / (q - 1)) the fewer purchases they made
    population = fitted.gamma * fitted.p / (fitted.q - 1)
    one, many = fitted.expected_spend(np.array([1.0, 20.0]), np.array([100.0, 100.0]))
    assert population < one < many < 100.0


@pytest.mark.parametrize(
    ("x", "t_x", "t"),
    [([1], [5], [4]), ([0], [2], [10]), ([-1], [0], [10]), ([1, 2], [1], [5, 5]), ([], [], [])],
)
def test_a_summary_that_contradicts_itself_is_refused(x: list[float], t_x: list[float], t: list[float]) -> None:
    with pytest.raises(ModelFitError):
        RepeatSummary.of(x, t_x, t)


def test_no_repeat_buyers_cannot_fit() -> None:
    with pytest.raises(ModelFitError):
        fit_bgnbd(RepeatSummary.of([0, 0], [0, 0], [10, 12]))
    with pytest.raises(ModelFitError):
        fit_gamma_gamma([0, 1], [0.0, 0.0])


def test_the_summary_of_the_transactions_is_the_published_one_and_later_purchases_cannot_leak(
    transactions: dict[str, list[tuple[date, float]]], cdnow: dict[str, np.ndarray]
) -> None:
    # Given every transaction of the 78 weeks / When summarized as of the end of week 39, in weeks
    mine = summarize_purchases(transactions, CALIBRATION_END, unit_days=7.0)
    # Then each customer's (x, t_x, T, repeat mean) is the published one (to its two decimals)
    order = {pid: i for i, pid in enumerate(mine.person_ids)}
    at = np.array([order[str(int(i))] for i in cdnow["ID"]])
    assert np.array_equal(mine.summary.frequency[at], cdnow["x"])
    for ours, theirs in ((mine.summary.recency, "t_x"), (mine.summary.age, "T"), (mine.mean_value, "zbar")):
        assert np.abs(ours[at] - cdnow[theirs]).max() <= 0.0051, theirs
    # And a purchase after the cut-off changes nothing (nor does a person whose first purchase is after it)
    later = {**transactions, "1": [*transactions["1"], (date(1997, 10, 1), 500.0)], "new": [(date(1998, 1, 1), 9.0)]}
    again = summarize_purchases(later, CALIBRATION_END, unit_days=7.0)
    assert again.person_ids == mine.person_ids
    assert np.array_equal(again.summary.frequency, mine.summary.frequency)
    assert np.array_equal(again.mean_value, mine.mean_value)


def test_held_out_weeks_40_to_78_are_predicted_within_13_percent(
    transactions: dict[str, list[tuple[date, float]]],
) -> None:
    # Given the model fitted on weeks 1-39 only
    calibration = summarize_purchases(transactions, CALIBRATION_END, unit_days=7.0)
    fitted = fit_bgnbd(calibration.summary)
    # When it predicts each customer's repeat purchases (distinct days) in the 39 weeks that followed
    weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    predicted = fitted.expected_purchases(
        weeks, calibration.summary.frequency, calibration.summary.recency, calibration.summary.age
    )
    actual = np.array(
        [len({d for d, _ in transactions[p] if CALIBRATION_END < d <= HOLDOUT_END}) for p in calibration.person_ids]
    )
    # Then the total is 1,653 predicted for 1,882 bought (-12%), and it ranks who buys: the persons it expects most of
    # (top decile) bought several times as much as the rest
    assert actual.sum() == 1882
    assert round(float(predicted.sum())) == 1653
    top = predicted >= np.quantile(predicted, 0.9)
    assert actual[top].mean() > 4 * actual[~top].mean()


def test_lifetime_value_is_the_expected_purchases_times_spend_discounted_month_by_month(
    transactions: dict[str, list[tuple[date, float]]],
) -> None:
    people = summarize_purchases(transactions, CALIBRATION_END, unit_days=7.0)
    purchases = fit_bgnbd(people.summary)
    spend = fit_gamma_gamma(people.summary.frequency, people.mean_value)
    s = people.summary
    # Undiscounted, at full margin: the purchases expected over the 12 months times the expected spend of each
    flat = lifetime_value(purchases, spend, people, months=12, unit_days=7.0, monthly_discount=0.0)
    whole = purchases.expected_purchases(12 * 30 / 7, s.frequency, s.recency, s.age)
    assert np.allclose(flat, whole * spend.expected_spend(s.frequency, people.mean_value))
    # Discounted and at a 30% margin: less, never negative
    worth = lifetime_value(purchases, spend, people, months=12, unit_days=7.0, margin=0.3, monthly_discount=0.01)
    assert (worth >= 0).all() and (worth < 0.3 * flat + 1e-9).all()
    # And worth more for a buyer whose last purchase is recent than for one as frequent who went quiet long ago
    pair = PersonSummaries(
        ["recent", "quiet"], RepeatSummary.of([2, 2], [36.0, 5.0], [38.86, 38.86]), np.array([20.0, 20.0])
    )
    recent, quiet = lifetime_value(purchases, spend, pair, months=12, unit_days=7.0, margin=0.3)
    assert recent > 2 * quiet > 0
    with pytest.raises(ModelFitError):
        lifetime_value(purchases, spend, people, months=0, unit_days=7.0)
