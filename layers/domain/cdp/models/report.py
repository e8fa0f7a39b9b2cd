"""The statistics of a model report that a marketer and a data scientist can both read.

`evaluation.py` gives the point metrics a model is accepted on; this module adds what a reader needs to judge them:
how uncertain the held-out AUC is (DeLong's interval), how the positives spread over score deciles (what a campaign
targeting the top 10%, 20%, ... would capture), which features the ranking leans on (permutation importance on the
held-out rows), and plain-language warnings when the held-out set is too small to trust. Pure numpy/scipy/sklearn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import norm, rankdata
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from cdp.errors import InvalidInputError

DECILES = 10
MIN_ROWS = 200  # below this a held-out AUC moves by several points between random splits
MIN_POSITIVES = 30  # below this each decile's positive rate rests on a handful of people
SUSPICIOUS_AUC = 0.95  # marketing outcomes are rarely this predictable: usually a feature leaks the label


class DecileRow(BaseModel):
    """One tenth of the held-out rows by score; decile 1 holds the highest scores (whom a campaign picks first)."""

    model_config = ConfigDict(frozen=True)

    decile: int = Field(ge=1, le=DECILES)
    rows: int = Field(ge=1)
    positives: int = Field(ge=0)
    rate: float = Field(ge=0.0, le=1.0, description="share of this decile's rows that are positive")
    lift: float = Field(ge=0.0, description="rate / base rate: 2.0 means twice as many positives as a random pick")
    cumulative_capture: float = Field(
        ge=0.0, le=1.0, description="share of all positives in deciles 1..this one (targeting the top k tenths)"
    )
    score_min: float
    score_max: float


class FeatureImportance(BaseModel):
    """How much held-out AUC drops when one feature's values are shuffled across rows (0 = the model ignores it)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    mean_drop: float
    std: float = Field(ge=0.0)


class ClassifierReport(BaseModel):
    """Everything `render_text` prints; computed on held-out rows only."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0)
    positives: int = Field(ge=0)
    base_rate: float = Field(ge=0.0, le=1.0)
    confidence: float = Field(gt=0.0, lt=1.0)
    auc: float = Field(ge=0.0, le=1.0)
    auc_low: float = Field(ge=0.0, le=1.0)
    auc_high: float = Field(ge=0.0, le=1.0)
    deciles: list[DecileRow]
    top_features: list[FeatureImportance]
    warnings: list[str]


def _outcomes(y_true: ArrayLike, location: str) -> NDArray[np.int_]:
    """0/1 outcomes with both present: AUC and lift are undefined for one class."""
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise InvalidInputError("outcomes must be a 1-D array of 0 and 1", location=location)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise InvalidInputError("both outcomes must be present (only one class was given)", location=location)
    return y.astype(np.int_)


def _outcomes_and_scores(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int_], NDArray[np.float64]]:
    y = _outcomes(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(y) != len(s):
        raise InvalidInputError("scores must be a 1-D array as long as the outcomes", location="scores")
    if not np.isfinite(s).all():
        raise InvalidInputError("scores must be finite numbers", location="scores")
    return y, s


def auc_interval(y_true: ArrayLike, scores: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """(auc, low, high): ROC AUC with DeLong's normal-approximation interval, clipped to [0, 1].

    DeLong, DeLong and Clarke-Pearson (1988) via the midrank formulation of Sun and Xu (2014): the structural components
    V10 (per positive: the share of negatives it outscores, ties counting half) and V01 (per negative: the share of
    positives that outscore it) come from three rankings instead of an m x n comparison, so this is O(n log n).
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError("confidence must be between 0 and 1 (exclusive)", location="confidence")
    y, s = _outcomes_and_scores(y_true, scores)
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if min(m, n) < 2:
        raise InvalidInputError("an AUC interval needs at least two rows of each outcome", location="y_true")
    rank_pos = rankdata(pos)  # midranks (ties get the average rank)
    rank_neg = rankdata(neg)
    rank_all = rankdata(np.concatenate([pos, neg]))
    auc = float((rank_all[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (rank_all[:m] - rank_pos) / n
    v01 = 1.0 - (rank_all[m:] - rank_neg) / m
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    half_width = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(variance, 0.0))
    return auc, max(0.0, auc - half_width), min(1.0, auc + half_width)


def decile_lift(y_true: ArrayLike, scores: ArrayLike) -> list[DecileRow]:
    """Positives per score decile (1 = highest), as a campaign targeting the top tenths would meet them.

    Rows are split into ten near-equal groups after a stable sort by descending score (the first deciles get the extra
    row when the count does not divide by ten; fewer than ten rows give one row per decile). Equal scores that
    straddle a boundary are split in input order, as in `evaluate_scores`.
    """
    y, s = _outcomes_and_scores(y_true, scores)
    total_positives = int(y.sum())
    base_rate = total_positives / len(y)
    order = np.argsort(-s, kind="stable")
    out: list[DecileRow] = []
    captured = 0
    for i, idx in enumerate(np.array_split(order, min(DECILES, len(y)))):
        positives = int(y[idx].sum())
        captured += positives
        rate = positives / len(idx)
        out.append(
            DecileRow(
                decile=i + 1,
                rows=len(idx),
                positives=positives,
                rate=rate,
                lift=rate / base_rate,
                cumulative_capture=captured / total_positives,
                score_min=float(s[idx].min()),
                score_max=float(s[idx].max()),
            )
        )
    return out


def top_features(
    estimator: Any,
    x: ArrayLike,
    y: ArrayLike,
    feature_names: Sequence[str],
    seed: int,
    n_repeats: int = 5,
    top: int = 8,
) -> list[FeatureImportance]:
    """Permutation importance on the HELD-OUT rows given (drop in ROC AUC), largest first, at most `top` of them.

    Held-out, not training rows: on training rows a model that memorised noise would show it as important. Unlike
    impurity or coefficient importances this reads the same for any estimator with predict_proba.
    """
    features = np.asarray(x, dtype=np.float64)
    outcomes = _outcomes(y, "y")
    if features.ndim != 2 or features.shape[1] != len(feature_names):
        raise InvalidInputError(
            f"x must be a 2-D array with one column per feature name ({len(feature_names)})", location="feature_names"
        )
    if len(outcomes) != features.shape[0]:
        raise InvalidInputError("x and y must have the same number of rows", location="y")
    if n_repeats < 1 or top < 1:
        raise InvalidInputError("n_repeats and top must be at least 1", location="n_repeats")
    # one thread: small data, and oversubscribed OpenMP threads on a busy host slow these models by an order
    with threadpool_limits(limits=1):
        result = permutation_importance(
            estimator, features, outcomes, scoring="roc_auc", n_repeats=n_repeats, random_state=seed
        )
    means = np.asarray(result.importances_mean, dtype=np.float64)
    stds = np.asarray(result.importances_std, dtype=np.float64)
    ranked = sorted(range(len(feature_names)), key=lambda i: (-means[i], i))  # ties keep the feature order
    return [
        FeatureImportance(feature=feature_names[i], mean_drop=float(means[i]), std=float(stds[i])) for i in ranked[:top]
    ]


def trust_warnings(
    rows: int,
    positives: int,
    auc_low: float | None = None,
    min_rows: int = MIN_ROWS,
    min_positives: int = MIN_POSITIVES,
    auc: float | None = None,
) -> list[str]:
    """Plain-language reasons not to act on the numbers yet; empty when none apply."""
    if rows < 0 or not 0 <= positives <= rows:
        raise InvalidInputError("need 0 <= positives <= rows", location="positives")
    out: list[str] = []
    if rows < min_rows:
        out.append(f"only {rows} held-out rows (fewer than {min_rows}): AUC and lift are too noisy to trust")
    if positives < min_positives:
        out.append(
            f"only {positives} positive outcomes among the held-out rows (fewer than {min_positives}): "
            "each decile's rate rests on a handful of people"
        )
    negatives = rows - positives
    if negatives < min_positives:
        out.append(
            f"only {negatives} held-out rows without the outcome (fewer than {min_positives}): "
            "the AUC rests on a handful of people"
        )
    if auc_low is not None and auc_low <= 0.5:
        out.append("the AUC interval reaches 0.5: the model may rank no better than chance")
    if auc is not None and auc > SUSPICIOUS_AUC:
        out.append(
            f"an AUC above {SUSPICIOUS_AUC} is rare for customer behaviour: check that no feature is recorded "
            "after (or because of) the outcome"
        )
    return out


def build_classifier_report(
    estimator: Any,
    x_test: ArrayLike,
    y_test: ArrayLike,
    feature_names: Sequence[str],
    seed: int,
    confidence: float = 0.95,
) -> ClassifierReport:
    """The full report of a fitted binary classifier (with predict_proba) on its held-out rows."""
    x = np.asarray(x_test, dtype=np.float64)
    y = _outcomes(y_test, "y_test")
    if x.ndim != 2 or x.shape[0] != len(y):
        raise InvalidInputError("x_test must be a 2-D array with one row per outcome", location="x_test")
    with threadpool_limits(limits=1):
        scores = np.asarray(estimator.predict_proba(x), dtype=np.float64)[:, 1]
    auc, low, high = auc_interval(y, scores, confidence)
    positives = int(y.sum())
    return ClassifierReport(
        rows=len(y),
        positives=positives,
        base_rate=positives / len(y),
        confidence=confidence,
        auc=auc,
        auc_low=low,
        auc_high=high,
        deciles=decile_lift(y, scores),
        top_features=top_features(estimator, x, y, feature_names, seed),
        warnings=trust_warnings(len(y), positives, auc_low=low, auc=auc),
    )


def render_text(report: ClassifierReport, title: str) -> str:
    """A compact plain-text report for a terminal: what the numbers are, and how far to trust them."""
    lines = [
        title,
        "=" * len(title),
        f"Held-out rows: {report.rows} ({report.positives} positive, base rate {report.base_rate:.1%})",
        f"AUC {report.auc:.3f} ({report.confidence:.0%} interval {report.auc_low:.3f}-{report.auc_high:.3f}); "
        "0.5 = random order, 1.0 = every positive ranked above every negative",
        "",
        "Lift by decile (1 = highest scores)",
        f"{'decile':>6}  {'rows':>6}  {'positives':>9}  {'rate':>6}  {'lift':>6}  {'captured':>8}  {'scores':>13}",
    ]
    for d in report.deciles:
        lines.append(
            f"{d.decile:>6}  {d.rows:>6}  {d.positives:>9}  {d.rate:>6.1%}  {d.lift:>5.2f}x  "
            f"{d.cumulative_capture:>8.1%}  {d.score_min:>5.3f}-{d.score_max:<5.3f}"
        )
    lines += ["", "Top features (drop in AUC when the feature is shuffled)"]
    if report.top_features:
        width = max(len(f.feature) for f in report.top_features)
        lines += [
            f"{i:>3}. {f.feature:<{width}}  {f.mean_drop:+.3f} ± {f.std:.3f}"
            for i, f in enumerate(report.top_features, start=1)
        ]
    else:
        lines.append("  (none computed)")
    lines += ["", "Warnings"]
    lines += [f"  - {w}" for w in report.warnings] if report.warnings else ["  (none)"]
    return "\n".join(lines) + "\n"
