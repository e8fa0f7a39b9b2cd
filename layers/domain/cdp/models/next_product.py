"""Next best product category per person, from the categories of their past orders.

Three signals, each in [0, 1], mixed with fixed weights that sum to 1:

- association: item-to-item co-purchase across a person's history. P(B | A) is the share of A's buyers who bought B
  in the basket of their first A or later (so it points forward in time: cake -> candles, not candles -> cake), shrunk
  towards P(B) with 10 pseudo-persons so a pair seen in a handful of people says little. It counts by its gain over
  P(B), the certainty factor (P(B | A) - P(B)) / (1 - P(B)): 0 when A says nothing about B, 1 when A implies B. The
  raw P(B | A) (or a cosine, which under independence is sqrt(P(A) P(B))) would put a category everyone buys (bread)
  at the top of every list. A person's association with B is the best over the categories they bought. Looking
  only from the first A on errs low (P(B | A) misses the baskets before it): weak associations read as none, and noise
  does not outrank popularity.
- repeat: the same gain for buying B again in a later basket after buying it once (coffee, yes; a birthday cake,
  rarely), for categories the person already bought.
- popularity: the share of persons who bought B. It breaks the ties of the other two, and alone it is the fallback
  for persons with no known history and the baseline the model must beat.

Evaluation is out of time: fit on baskets strictly before a cutoff, then check the categories each person bought in
(cutoff, cutoff + horizon]. A basket at or after the cutoff never reaches the model being evaluated.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from cdp.errors import InvalidInputError

ASSOCIATION_SHRINK = 10.0  # pseudo-persons: a category bought by 10 persons keeps half its associations' gain
REPEAT_SHRINK = 10.0  # pseudo-persons: a repeat rate from 10 eligible buyers keeps half its gain
MAX_NEIGHBORS = 50  # associations kept per category: the model stays a few dicts of floats
WARN_PERSONS = 100  # below this, the hit-rate intervals are wider than most differences worth acting on
BOOTSTRAP_DRAWS = 2000
_Z95 = 1.959963984540054
_DECIMALS = 12  # scores equal to this many decimals tie, and ties go by category name


@dataclass(frozen=True)
class Basket:
    """One order: when it happened and the categories of its lines."""

    at: datetime
    categories: frozenset[str]


BasketsByPerson = Mapping[str, Sequence[Basket]]


@dataclass(frozen=True)
class NextProductModel:
    """Fitted signals as plain dicts (picklable, small). Build it with `NextProductModel.fit`."""

    popularity: dict[str, float]
    association: dict[str, dict[str, float]]
    repeat: dict[str, float]
    persons: int
    weights: tuple[float, float, float] = field(default=(0.5, 0.3, 0.2))
    """(association, repeat, popularity); they sum to 1 so a mixed score stays in [0, 1]."""

    @classmethod
    def fit(
        cls, baskets_by_person: BasketsByPerson, weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
    ) -> NextProductModel:
        """Count over every basket given: the caller decides the time window (see `evaluate_next_product`)."""
        if min(weights) < 0 or not math.isclose(sum(weights), 1.0):
            raise InvalidInputError("weights must be non-negative and sum to 1", location="weights")
        counts = _count(baskets_by_person)
        persons, buyers, pairs = counts.persons, counts.buyers, counts.pairs
        if persons == 0:
            raise InvalidInputError("no baskets with categories to fit on", location="baskets_by_person")
        popularity = {c: n / persons for c, n in buyers.items()}
        neighbors: dict[str, dict[str, float]] = defaultdict(dict)
        for (a, b), n in pairs.items():
            # P(B | A) shrunk towards P(B) with ASSOCIATION_SHRINK pseudo-persons, then its gain over P(B)
            conditional = (n + ASSOCIATION_SHRINK * popularity[b]) / (buyers[a] + ASSOCIATION_SHRINK)
            gain = _certainty(conditional, popularity[b])
            if gain > 0:
                neighbors[a][b] = gain
        association = {a: dict(_top(gains.items(), MAX_NEIGHBORS)) for a, gains in neighbors.items()}
        repeat = {}
        for c, p in popularity.items():
            again_rate = (counts.again[c] + REPEAT_SHRINK * p) / (counts.eligible[c] + REPEAT_SHRINK)
            if (gain := _certainty(again_rate, p)) > 0:
                repeat[c] = gain
        return cls(popularity=popularity, association=association, repeat=repeat, persons=persons, weights=weights)

    def most_popular(self, k: int = 3) -> list[tuple[str, float]]:
        """The baseline: the k categories most persons bought, with that share as the score."""
        return _top(self.popularity.items(), k)

    def recommend(
        self, history: Sequence[Basket], k: int = 3, exclude: frozenset[str] = frozenset()
    ) -> list[tuple[str, float]]:
        """Up to k (category, score in [0, 1]) pairs, best first; equal scores go by category name."""
        bought = {c for basket in history for c in basket.categories if c in self.popularity}
        candidates = ((c, p) for c, p in self.popularity.items() if c not in exclude)
        if not bought:
            return _top(candidates, k)
        w_association, w_repeat, w_popularity = self.weights
        scores = []
        for category, popularity in candidates:
            association = max((self.association.get(a, {}).get(category, 0.0) for a in bought), default=0.0)
            repeat = self.repeat.get(category, 0.0) if category in bought else 0.0
            score = w_association * association + w_repeat * repeat + w_popularity * popularity
            scores.append((category, min(1.0, score)))
        return _top(scores, k)


@dataclass
class _Counts:
    persons: int = 0
    buyers: Counter[str] = field(default_factory=Counter)  # persons who bought the category
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (A, B): bought B with or after their first A
    eligible: Counter[str] = field(default_factory=Counter)  # bought it in a basket followed by another one
    again: Counter[str] = field(default_factory=Counter)  # ... and bought it again later


def _count(baskets_by_person: BasketsByPerson) -> _Counts:
    counts = _Counts()
    for baskets in baskets_by_person.values():
        ordered = sorted((b for b in baskets if b.categories), key=lambda b: b.at)
        if not ordered:
            continue
        counts.persons += 1
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, basket in enumerate(ordered):
            for category in basket.categories:
                first.setdefault(category, i)
                last[category] = i
        counts.buyers.update(first.keys())
        for a, first_a in first.items():
            counts.pairs.update((a, b) for b, last_b in last.items() if b != a and last_b >= first_a)
            if first_a < len(ordered) - 1:
                counts.eligible[a] += 1
                counts.again[a] += int(last[a] > first_a)
    return counts


def _certainty(conditional: float, base: float) -> float:
    """(P(B | A) - P(B)) / (1 - P(B)), floored at 0: 0 when A says nothing about B, 1 when A implies B."""
    return 0.0 if base >= 1.0 else max(0.0, (conditional - base) / (1.0 - base))


def _top(scores: Iterable[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    return sorted(scores, key=lambda cs: (-round(cs[1], _DECIMALS), cs[0]))[: max(0, k)]


class NextProductMetrics(BaseModel):
    """Out-of-time hit rates of the model and of the most-popular baseline, on the same persons."""

    model_config = ConfigDict(frozen=True)

    cutoff: datetime
    horizon_days: int
    k: int
    persons_evaluated: int = Field(description="persons with a basket before the cutoff and one in the horizon")
    training_persons: int
    categories: int
    hit_rate: float = Field(ge=0.0, le=1.0, description="share of persons who bought any recommended category")
    hit_rate_interval: tuple[float, float] = Field(description="95% Wilson interval")
    baseline_hit_rate: float = Field(ge=0.0, le=1.0)
    baseline_hit_rate_interval: tuple[float, float] = Field(description="95% Wilson interval")
    hit_rate_difference: float = Field(ge=-1.0, le=1.0, description="model - baseline")
    difference_interval: tuple[float, float] = Field(description="95% paired bootstrap interval over persons")
    precision_at_k: float = Field(ge=0.0, le=1.0, description="mean share of recommended categories bought")
    baseline_precision_at_k: float = Field(ge=0.0, le=1.0)
    warnings: list[str] = Field(default_factory=list)


def evaluate_next_product(
    baskets_by_person: BasketsByPerson, cutoff: datetime, horizon_days: int, k: int = 3, seed: int = 42
) -> NextProductMetrics:
    """Fit on baskets strictly before `cutoff`; score what each person bought in (cutoff, cutoff + horizon_days].

    A basket exactly at the cutoff is in neither side. The difference interval resamples persons (model and baseline
    hits stay paired); `seed` fixes it.
    """
    if horizon_days < 1 or k < 1:
        raise InvalidInputError("horizon_days and k must be at least 1", location="horizon_days")
    end = cutoff + timedelta(days=horizon_days)
    before = {p: [b for b in bs if b.at < cutoff] for p, bs in baskets_by_person.items()}
    model = NextProductModel.fit({p: bs for p, bs in before.items() if bs})
    popular = {c for c, _ in model.most_popular(k)}
    model_hits, baseline_hits, model_precision, baseline_precision = [], [], [], []
    for person in sorted(baskets_by_person):
        later = [b for b in baskets_by_person[person] if cutoff < b.at <= end]
        if not before[person] or not later:
            continue
        bought = frozenset().union(*(b.categories for b in later))
        recommended = {c for c, _ in model.recommend(before[person], k)}
        model_hits.append(bool(recommended & bought))
        baseline_hits.append(bool(popular & bought))
        model_precision.append(len(recommended & bought) / max(1, len(recommended)))
        baseline_precision.append(len(popular & bought) / max(1, len(popular)))
    n = len(model_hits)
    if n == 0:
        raise InvalidInputError(
            "no person has a basket both before the cutoff and within the horizon after it", location="cutoff"
        )
    hits, base = np.asarray(model_hits), np.asarray(baseline_hits)
    warnings = []
    if n < WARN_PERSONS:
        warnings.append(f"only {n} persons evaluated (want at least {WARN_PERSONS}): the intervals are wide")
    return NextProductMetrics(
        cutoff=cutoff,
        horizon_days=horizon_days,
        k=k,
        persons_evaluated=n,
        training_persons=model.persons,
        categories=len(model.popularity),
        hit_rate=float(hits.mean()),
        hit_rate_interval=wilson_interval(int(hits.sum()), n),
        baseline_hit_rate=float(base.mean()),
        baseline_hit_rate_interval=wilson_interval(int(base.sum()), n),
        hit_rate_difference=float(hits.mean() - base.mean()),
        difference_interval=paired_difference_interval(hits, base, seed),
        precision_at_k=float(np.mean(model_precision)),
        baseline_precision_at_k=float(np.mean(baseline_precision)),
        warnings=warnings,
    )


def train_next_product(
    baskets_by_person: BasketsByPerson, horizon: datetime, holdout_days: int = 60, k: int = 3
) -> tuple[NextProductModel, NextProductMetrics]:
    """Evaluate with cutoff = horizon - holdout_days, then refit on every basket up to the horizon for scoring."""
    metrics = evaluate_next_product(baskets_by_person, horizon - timedelta(days=holdout_days), holdout_days, k)
    model = NextProductModel.fit({p: [b for b in bs if b.at <= horizon] for p, bs in baskets_by_person.items()})
    return model, metrics


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: stays inside [0, 1] and behaves near 0 and 1, unlike p +- 1.96 se."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + _Z95**2 / n
    center = (p + _Z95**2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / denominator
    # exactly 0 and 1 at the edges, as the formula is (floating point lands a hair inside)
    return (0.0 if successes == 0 else center - half, 1.0 if successes == n else center + half)


def paired_difference_interval(
    hits: NDArray[np.bool_], baseline_hits: NDArray[np.bool_], seed: int
) -> tuple[float, float]:
    """95% percentile bootstrap of mean(hits - baseline_hits), resampling persons.

    Each person's difference is -1, 0 or +1, so a resample is fully described by how many of each it drew: drawing
    those counts from a multinomial is the same bootstrap as resampling persons, in O(draws) instead of O(draws x n).
    """
    diff = hits.astype(np.int_) - baseline_hits.astype(np.int_)
    n = len(diff)
    shares = [float(np.mean(diff == 1)), float(np.mean(diff == 0)), float(np.mean(diff == -1))]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=BOOTSTRAP_DRAWS)
    means = (counts[:, 0] - counts[:, 2]) / n
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))
