"""Purchase timing and value: BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way") for how
often a person buys and whether they are still a customer, and Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and
CLV"; Fader and Hardie 2013, "The Gamma-Gamma model of monetary value") for how much they spend per purchase.

Inputs are each person's repeat-purchase summary over their observation period, in one time unit (days or weeks):
`frequency` x (repeat purchases: purchases after the first, counting one per time unit as the papers do), `recency`
t_x (the time of their last purchase since their first) and `age` T (the time from their first purchase to the end of
the observation); for Gamma-Gamma, the mean value of their repeat purchases. Both fit by maximum likelihood with scipy
over log-parameters (so they stay positive), from several starting points, keeping the best.

Checked on the CDNOW sample in tests/unit/models/test_clv.py against the published estimates (BG/NBD: r = 0.2426,
alpha = 4.4135, a = 0.7929, b = 2.4258, log-likelihood -9582.4; Gamma-Gamma: p = 6.25, q = 3.74, gamma = 15.44).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, gammaln, hyp2f1, logsumexp

Array = NDArray[np.float64]
_STARTS = ((0.5, 5.0, 0.5, 2.0), (1.0, 1.0, 1.0, 1.0), (0.1, 20.0, 2.0, 5.0))


class ModelFitError(ValueError):
    """The data cannot fit the model (no repeat buyers, a summary that contradicts itself)."""


@dataclass(frozen=True)
class RepeatSummary:
    """Every person's (x, t_x, T), as arrays of equal length."""

    frequency: Array
    recency: Array
    age: Array

    @classmethod
    def of(cls, frequency: Sequence[float], recency: Sequence[float], age: Sequence[float]) -> RepeatSummary:
        x, t_x, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
        if not len(x) == len(t_x) == len(t) or len(x) == 0:
            raise ModelFitError("frequency, recency and age must be equally long and not empty")
        if (x < 0).any() or (t_x < 0).any() or (t_x > t + 1e-9).any() or ((x == 0) & (t_x > 0)).any():
            raise ModelFitError("each person needs 0 <= recency <= age, and recency 0 when frequency is 0")
        return cls(x, t_x, t)


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD: purchase rates ~ Gamma(r, alpha); dropout probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    persons: int

    def p_alive(self, frequency: Array, recency: Array, age: Array) -> Array:
        """P(still a customer at the end of the observation | x, t_x, T)."""
        x, t_x, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
        repeat = x > 0
        # a person without a repeat purchase cannot have dropped out (BG/NBD drops out only after a purchase)
        odds = (self.a / (self.b + np.maximum(x, 1) - 1)) * ((self.alpha + t) / (self.alpha + t_x)) ** (self.r + x)
        return np.asarray(1.0 / (1.0 + np.where(repeat, odds, 0.0)), dtype=np.float64)

    def expected_purchases(self, horizon: float, frequency: Array, recency: Array, age: Array) -> Array:
        """E[purchases in the next `horizon` time units | x, t_x, T] (equation 10 of the paper)."""
        x, t_x, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = horizon / (alpha + t + horizon)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + t) / (alpha + t + horizon)) ** (r + x) * hyp)
        return first * self.p_alive(x, t_x, t)


def bgnbd_log_likelihood(params: Sequence[float] | Array, data: RepeatSummary) -> Array:
    """Each person's log-likelihood under BG/NBD with params (r, alpha, a, b)."""
    r, alpha, a, b = params
    x, t_x, t = data.frequency, data.recency, data.age
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    stays = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t)
    # the second term exists only for persons with a repeat purchase: they may have dropped out after the last one
    dropped = np.where(
        x > 0,
        betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(common + logsumexp(np.stack([stays, dropped]), axis=0), dtype=np.float64)


def fit_bgnbd(data: RepeatSummary) -> BgNbd:
    if not (data.frequency > 0).any():
        raise ModelFitError("BG/NBD needs persons with repeat purchases")

    def loss(log_params: Array) -> float:
        return -float(bgnbd_log_likelihood(np.exp(log_params), data).sum())

    best = _best_fit(loss, _STARTS)
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=-float(best.fun), persons=len(data.frequency))


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma: a person's spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across persons."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    persons: int

    def expected_spend(self, frequency: Array, mean_value: Array) -> Array:
        """E[spend per purchase | x repeat purchases averaging m_x] (population mean for x = 0)."""
        x, m = np.asarray(frequency, dtype=np.float64), np.asarray(mean_value, dtype=np.float64)
        return (self.p * (self.gamma + x * m)) / (self.p * x + self.q - 1)


def gamma_gamma_log_likelihood(params: Sequence[float] | Array, frequency: Array, mean_value: Array) -> Array:
    p, q, gamma = params
    x, m = frequency, mean_value
    return np.asarray(
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(gamma)
        + (p * x - 1) * np.log(m)
        + (p * x) * np.log(x)
        - (p * x + q) * np.log(gamma + x * m),
        dtype=np.float64,
    )


def fit_gamma_gamma(frequency: Sequence[float] | Array, mean_value: Sequence[float] | Array) -> GammaGamma:
    """Fit on the persons with repeat purchases (x >= 1) and a positive mean value."""
    x, m = np.asarray(frequency, dtype=np.float64), np.asarray(mean_value, dtype=np.float64)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 2:
        raise ModelFitError("Gamma-Gamma needs persons with repeat purchases of a positive value")
    x, m = x[keep], m[keep]

    def loss(log_params: Array) -> float:
        return -float(gamma_gamma_log_likelihood(np.exp(log_params), x, m).sum())

    best = _best_fit(loss, ((1.0, 1.0, 1.0), (5.0, 3.0, 10.0), (10.0, 5.0, 50.0)))
    p, q, gamma = (float(v) for v in np.exp(best.x))
    return GammaGamma(p=p, q=q, gamma=gamma, log_likelihood=-float(best.fun), persons=int(keep.sum()))


def _best_fit(loss: Callable[[Array], float], starts: Sequence[Sequence[float]]) -> OptimizeResult:
    """The lowest loss from any of the starting points (the likelihoods have flat ridges): L-BFGS-B from each (a few
    hundred evaluations), then Nelder-Mead polishing the best (it needs no gradient where the ridge is flat)."""
    best: OptimizeResult | None = None
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # far-out trial points: the loss says inf
        for start in starts:
            found = minimize(
                loss,
                np.log(np.asarray(start, dtype=np.float64)),
                method="L-BFGS-B",
                bounds=[(-12.0, 12.0)] * len(start),
                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2_000},
            )
            if np.isfinite(found.fun) and (best is None or found.fun < best.fun):
                best = found
        if best is None:
            raise ModelFitError("the likelihood could not be maximized from any starting point")
        polished = minimize(loss, best.x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxfev": 4_000})
    return polished if np.isfinite(polished.fun) and polished.fun <= best.fun else best


@dataclass(frozen=True)
class PersonSummaries:
    """Each person's repeat-purchase summary as of `end`, in `unit_days` units, with their repeat purchases' mean
    value (0 without one): what `fit_bgnbd` and `fit_gamma_gamma` take."""

    person_ids: list[str]
    summary: RepeatSummary
    mean_value: Array


def summarize_purchases(
    purchases: Mapping[str, Sequence[tuple[date, float]]], end: date, unit_days: float = 1.0
) -> PersonSummaries:
    """Point in time: only purchases on or before `end` count, and persons who first bought after it are left out.
    Purchases of one day are one purchase of their summed value (the papers' convention); the first day's is not a
    repeat purchase."""
    ids: list[str] = []
    x: list[float] = []
    t_x: list[float] = []
    age: list[float] = []
    mean: list[float] = []
    for person_id, bought in purchases.items():
        by_day: dict[date, float] = {}
        for day, value in bought:
            if day <= end:
                by_day[day] = by_day.get(day, 0.0) + value
        if not by_day:
            continue
        days = sorted(by_day)
        repeats = days[1:]
        ids.append(person_id)
        x.append(float(len(repeats)))
        t_x.append((days[-1] - days[0]).days / unit_days)
        age.append((end - days[0]).days / unit_days)
        mean.append(sum(by_day[d] for d in repeats) / len(repeats) if repeats else 0.0)
    if not ids:
        raise ModelFitError(f"nobody bought on or before {end.isoformat()}")
    return PersonSummaries(ids, RepeatSummary.of(x, t_x, age), np.asarray(mean, dtype=np.float64))


DAYS_PER_MONTH = 30.0


def lifetime_value(
    purchases: BgNbd,
    spend: GammaGamma,
    people: PersonSummaries,
    *,
    months: int,
    unit_days: float,
    margin: float = 1.0,
    monthly_discount: float = 0.01,
) -> Array:
    """Each person's expected margin over the next `months`, discounted monthly: the purchases BG/NBD expects in each
    month times the spend Gamma-Gamma expects per purchase times `margin`, divided by (1 + discount) ** month.
    `unit_days` is the time unit both were fitted in (7 for weeks)."""
    if months < 1 or unit_days <= 0 or not 0 <= margin <= 1 or monthly_discount < 0:
        raise ModelFitError("months >= 1, unit_days > 0, margin in [0, 1] and a discount >= 0")
    s = people.summary
    per_purchase = margin * spend.expected_spend(s.frequency, people.mean_value)
    value = np.zeros_like(per_purchase)
    before = np.zeros_like(per_purchase)
    for month in range(1, months + 1):
        upto = purchases.expected_purchases(month * DAYS_PER_MONTH / unit_days, s.frequency, s.recency, s.age)
        value += per_purchase * (upto - before) / (1 + monthly_discount) ** month
        before = upto
    return value
