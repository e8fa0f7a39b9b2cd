"""Uplift modelling: rank people by how much a treatment (an offer, a message) changes their chance to convert, not by
how likely they are to convert anyway. Pure numpy/scikit-learn, no I/O.

Everything here needs randomized treatment/control data: `treated` must be assigned independently of the features,
otherwise the difference between the arms is not the effect of the treatment.

- Learners: `TwoModelUplift` (one classifier per arm, the "T-learner") and `ClassTransformationUplift` (Jaskowski and
  Jaroszewicz 2012, "Uplift modeling for clinical trial data", generalized to an unequal treatment share by importance
  weights). Both also predict P(y=1 | x, treated), which is what a response model ranks by.
- Evaluation on held-out rows: the Qini curve (Radcliffe 2007, "Using control groups to target on predicted lift"),
  its area, the Qini coefficient, incremental conversions at a targeting share with a bootstrap interval, and a paired
  comparison of ranking by uplift vs by response that falls back to response unless uplift is clearly better.
- Selection: `select_uplift_learner` cross-validates the candidates on the training rows only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from cdp.errors import InvalidInputError
from cdp.models.estimators import ALGORITHMS, make_estimator
from cdp.models.kinds import Algorithm

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int_]
LearnerKind = Literal["two_model", "interaction", "class_transformation"]
Preference = Literal["uplift", "response"]

LEARNERS: tuple[LearnerKind, ...] = ("two_model", "interaction", "class_transformation")  # simpler first
MIN_PER_CELL = 10  # rows per treatment x outcome cell: below this an arm's classifier learns nothing useful
CV_FOLDS = 3
# selection needs every training fold (2/3 of the rows, stratified) to keep MIN_PER_CELL per cell
SELECTION_MIN_PER_CELL = -(-MIN_PER_CELL * CV_FOLDS // (CV_FOLDS - 1))
TIE_DECIMALS = 4  # Qini coefficients equal to 0.01 percentage points count as a tie (go to the simpler learner)
BOOTSTRAP_RESAMPLES = 200
MIN_RESAMPLES = 20
CONFIDENCE = 0.95
CURVE_POINTS = 21
DEFAULT_SHARES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)


# --- input checks ----------------------------------------------------------------------------------------------------


def _features(x: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("x must be a numeric matrix", location="x") from exc
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"x must be a non-empty 2-D matrix, got shape {arr.shape}", location="x")
    return arr


def _one_dimensional(values: ArrayLike, name: str, rows: int | None) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}", location=name)
    if rows is not None and len(arr) != rows:
        raise InvalidInputError(f"{name} has {len(arr)} rows, expected {rows}", location=name)
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}", location=name)
    return arr


def _binary(values: ArrayLike, name: str, rows: int | None) -> IntArray:
    arr = _one_dimensional(values, name, rows)
    if not np.isin(arr, (0, 1)).all():
        raise InvalidInputError(f"{name} must hold only 0 and 1", location=name)
    return arr.astype(np.int_)


def _scores(values: ArrayLike, name: str, rows: int | None) -> FloatArray:
    arr = _one_dimensional(values, name, rows).astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} must be finite (no NaN or infinity)", location=name)
    return arr


def _both_arms(treated: IntArray) -> None:
    n_treated = int(treated.sum())
    if n_treated == 0 or n_treated == len(treated):
        arm = "treated" if n_treated == 0 else "control"
        raise InvalidInputError(f"need both treated and control rows, got no {arm} rows", location="treated")


def _training_arrays(
    x: ArrayLike, treated: ArrayLike, y: ArrayLike, min_per_cell: int
) -> tuple[FloatArray, IntArray, IntArray]:
    xs = _features(x)
    t = _binary(treated, "treated", xs.shape[0])
    yy = _binary(y, "y", xs.shape[0])
    _both_arms(t)
    cells = {
        f"{arm}/y={outcome}": int(((t == a) & (yy == outcome)).sum())
        for arm, a in (("treated", 1), ("control", 0))
        for outcome in (1, 0)
    }
    if min(cells.values()) < min_per_cell:
        counts = ", ".join(f"{cell}: {count}" for cell, count in cells.items())
        raise InvalidInputError(
            f"need at least {min_per_cell} rows in each treatment x outcome cell, got {counts}", location="y"
        )
    return xs, t, yy


def _evaluation_arrays(
    scores: ArrayLike, treated: ArrayLike, y: ArrayLike, name: str = "scores"
) -> tuple[FloatArray, IntArray, IntArray]:
    s = _scores(scores, name, None)
    t = _binary(treated, "treated", len(s))
    yy = _binary(y, "y", len(s))
    _both_arms(t)
    return s, t, yy


def _share(share: float, name: str = "share") -> float:
    if not 0.0 < share <= 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1], got {share}", location=name)
    return float(share)


# --- learners --------------------------------------------------------------------------------------------------------


def _positive_proba(model: Any, x: FloatArray) -> FloatArray:
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def _fit_weighted(estimator: Any, x: FloatArray, y: IntArray, weights: FloatArray) -> Any:
    """Pipelines take weights for their last step only (the scaler stays unweighted, which is harmless)."""
    if isinstance(estimator, Pipeline):
        return estimator.fit(x, y, **{f"{estimator.steps[-1][0]}__sample_weight": weights})
    return estimator.fit(x, y, sample_weight=weights)


class UpliftLearner(ABC):
    """Common shape of the learners; module-level classes holding only sklearn estimators, so joblib pickles them."""

    kind: LearnerKind

    def __init__(self, algorithm: Algorithm = "logistic_regression", seed: int = 0) -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidInputError(
                f"unknown algorithm {algorithm!r}, expected one of {ALGORITHMS}", location="algorithm"
            )
        self.algorithm: Algorithm = algorithm
        self.seed = seed
        self.n_features_: int | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.algorithm}"

    @abstractmethod
    def fit(self, x: ArrayLike, treated: ArrayLike, y: ArrayLike) -> Self:
        """Fit on randomized rows: `treated` and `y` are 0/1 per row of `x`."""

    @abstractmethod
    def predict_uplift(self, x: ArrayLike) -> FloatArray:
        """P(y=1 | x, treated) - P(y=1 | x, control): the ranking score for targeting."""

    @abstractmethod
    def predict_treated(self, x: ArrayLike) -> FloatArray:
        """P(y=1 | x, treated): what a response model ranks by (the baseline uplift has to beat)."""

    def _fitted_features(self, x: ArrayLike) -> FloatArray:
        if self.n_features_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit first")
        xs = _features(x)
        if xs.shape[1] != self.n_features_:
            raise InvalidInputError(f"x has {xs.shape[1]} features, the model was fit on {self.n_features_}", "x")
        return xs


class TwoModelUplift(UpliftLearner):
    """One classifier per arm; uplift is the difference of their probabilities. Simple, and good when the arms' response
    surfaces differ a lot; noisy when the effect is small next to the response itself (both errors add up)."""

    kind: LearnerKind = "two_model"

    def __init__(self, algorithm: Algorithm = "logistic_regression", seed: int = 0) -> None:
        super().__init__(algorithm, seed)
        self.treated_model_: Any = None
        self.control_model_: Any = None

    def fit(self, x: ArrayLike, treated: ArrayLike, y: ArrayLike) -> Self:
        xs, t, yy = _training_arrays(x, treated, y, MIN_PER_CELL)
        with threadpool_limits(limits=1):
            self.treated_model_ = make_estimator(self.algorithm, self.seed).fit(xs[t == 1], yy[t == 1])
            self.control_model_ = make_estimator(self.algorithm, self.seed).fit(xs[t == 0], yy[t == 0])
        self.n_features_ = xs.shape[1]
        return self

    def predict_uplift(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return _positive_proba(self.treated_model_, xs) - _positive_proba(self.control_model_, xs)

    def predict_treated(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return _positive_proba(self.treated_model_, xs)


class ClassTransformationUplift(UpliftLearner):
    """One classifier of z = 1 for (treated, converted) or (control, not converted).

    With treatment share p, rows are weighted 1/(2p) (treated) and 1/(2(1-p)) (control), so both arms weigh half.
    Then, under randomization, P_w(z=1 | x) = (P(y=1 | x, T) + 1 - P(y=1 | x, C)) / 2, i.e. uplift = 2 P_w(z=1 | x) - 1
    for any p (the original method needs p = 1/2). A separate classifier on the treated arm gives `predict_treated`.
    """

    kind: LearnerKind = "class_transformation"

    def __init__(self, algorithm: Algorithm = "logistic_regression", seed: int = 0) -> None:
        super().__init__(algorithm, seed)
        self.transformed_model_: Any = None
        self.treated_model_: Any = None
        self.treated_share_: float | None = None

    def fit(self, x: ArrayLike, treated: ArrayLike, y: ArrayLike) -> Self:
        xs, t, yy = _training_arrays(x, treated, y, MIN_PER_CELL)
        p = float(t.mean())
        z = (t == yy).astype(np.int_)  # treated & converted, or control & not converted
        weights = np.where(t == 1, 1.0 / (2.0 * p), 1.0 / (2.0 * (1.0 - p)))
        with threadpool_limits(limits=1):
            self.transformed_model_ = _fit_weighted(make_estimator(self.algorithm, self.seed), xs, z, weights)
            self.treated_model_ = make_estimator(self.algorithm, self.seed).fit(xs[t == 1], yy[t == 1])
        self.treated_share_ = p
        self.n_features_ = xs.shape[1]
        return self

    def predict_uplift(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return 2.0 * _positive_proba(self.transformed_model_, xs) - 1.0

    def predict_treated(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return _positive_proba(self.treated_model_, xs)


class InteractionUplift(UpliftLearner):
    """One logistic regression on [x, t, t * x] (Lo 2002, "the true lift model"): both arms share the baseline
    coefficients and the treatment terms learn only how the effect varies, so a small control group does not have to
    learn the whole response surface alone (the weakness of two models). Logistic only: `algorithm` is recorded as is.
    """

    kind: LearnerKind = "interaction"

    def __init__(self, algorithm: Algorithm = "logistic_regression", seed: int = 0) -> None:
        super().__init__("logistic_regression", seed)
        self.scaler_: Any = None
        self.model_: Any = None

    def _design(self, xs: FloatArray, t: FloatArray) -> FloatArray:
        z = self.scaler_.transform(np.arcsinh(xs))
        return np.hstack([z, t[:, None], z * t[:, None]])

    def fit(self, x: ArrayLike, treated: ArrayLike, y: ArrayLike) -> Self:
        xs, t, yy = _training_arrays(x, treated, y, MIN_PER_CELL)
        with threadpool_limits(limits=1):
            self.scaler_ = StandardScaler().fit(np.arcsinh(xs))
            design = self._design(xs, t.astype(np.float64))
            self.model_ = LogisticRegression(C=0.5, max_iter=2000).fit(design, yy)
        self.n_features_ = xs.shape[1]
        return self

    def _proba(self, xs: FloatArray, arm: float) -> FloatArray:
        return _positive_proba(self.model_, self._design(xs, np.full(len(xs), arm)))

    def predict_uplift(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return self._proba(xs, 1.0) - self._proba(xs, 0.0)

    def predict_treated(self, x: ArrayLike) -> FloatArray:
        xs = self._fitted_features(x)
        with threadpool_limits(limits=1):
            return self._proba(xs, 1.0)


def make_uplift_learner(kind: LearnerKind, algorithm: Algorithm, seed: int) -> UpliftLearner:
    if kind not in LEARNERS:
        raise InvalidInputError(f"unknown uplift learner {kind!r}, expected one of {LEARNERS}", location="learners")
    if kind == "interaction":
        return InteractionUplift(algorithm, seed)
    if kind == "class_transformation":
        return ClassTransformationUplift(algorithm, seed)
    return TwoModelUplift(algorithm, seed)


# --- evaluation ------------------------------------------------------------------------------------------------------


class IncrementalEstimate(BaseModel):
    """Incremental conversions at a targeting share, in the Qini curve's units (see `qini_curve`), with a bootstrap
    interval; for a difference of two rankings, the paired difference."""

    model_config = ConfigDict(frozen=True)

    share: float = Field(gt=0.0, le=1.0)
    estimate: float
    low: float = Field(description="2.5th percentile over bootstrap resamples")
    high: float = Field(description="97.5th percentile over bootstrap resamples")


class ShareDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    share: float = Field(gt=0.0, le=1.0)
    uplift: IncrementalEstimate
    response: IncrementalEstimate
    difference: IncrementalEstimate = Field(description="uplift minus response, on the same resamples")
    preferred: Preference
    verdict: str


class RankingComparison(BaseModel):
    """Uplift vs response ranking on the same held-out rows; response wins unless uplift is clearly better."""

    model_config = ConfigDict(frozen=True)

    budget_share: float = Field(gt=0.0, le=1.0)
    preferred: Preference = Field(description="the decision at budget_share")
    verdict: str
    uplift_qini: float
    response_qini: float
    resamples: int
    shares: list[ShareDecision] = Field(description="requested shares plus budget_share, ascending")


class QiniPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    fraction_targeted: float = Field(ge=0.0, le=1.0)
    incremental: float


class UpliftMetrics(BaseModel):
    """Held-out evaluation of an uplift model; nothing here has seen a training row."""

    model_config = ConfigDict(frozen=True)

    rows: int
    treated_rows: int
    control_rows: int
    treated_conversion_rate: float = Field(ge=0.0, le=1.0)
    control_conversion_rate: float = Field(ge=0.0, le=1.0)
    ate: float = Field(description="average treatment effect: treated minus control conversion rate")
    auuc: float = Field(description="area under the Qini curve, in incremental conversions")
    qini_coefficient: float = Field(description="(auuc - area of the random line) / rows")
    qini_curve: list[QiniPoint] = Field(max_length=CURVE_POINTS)
    comparison: RankingComparison


def _curve(scores: FloatArray, treated: IntArray, y: IntArray) -> tuple[FloatArray, FloatArray]:
    """The Qini curve of already checked arrays (`qini_curve` documents it)."""
    order = np.argsort(-scores, kind="stable")
    t = treated[order]
    converted = y[order]
    zero = np.zeros(1)
    n_t = np.concatenate((zero, np.cumsum(t)))
    n_c = np.concatenate((zero, np.cumsum(1 - t)))
    y_t = np.concatenate((zero, np.cumsum(t * converted)))
    y_c = np.concatenate((zero, np.cumsum((1 - t) * converted)))
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    # no control row targeted yet: nothing to compare the treated rows with, so no measurable increment
    incremental = np.where(n_c > 0, y_t - y_c * ratio, 0.0)
    fraction = np.arange(len(scores) + 1, dtype=np.float64) / len(scores)
    return fraction, np.asarray(incremental, dtype=np.float64)


def _auuc(fraction: FloatArray, incremental: FloatArray) -> float:
    return float(np.trapezoid(incremental, fraction))


def _qini(fraction: FloatArray, incremental: FloatArray) -> float:
    rows = len(fraction) - 1
    return (_auuc(fraction, incremental) - incremental[-1] / 2.0) / rows


def qini_curve(scores: ArrayLike, treated: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(fraction targeted, incremental conversions) after targeting the k highest scores, k = 0..n.

    Incremental(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k) (0 while N_c(k) = 0): the treated conversions in the top k
    minus what the control rows of the top k say those treated rows would have done anyway. It counts the treated rows
    of the evaluated set, so to read it as "if every row in the top k were treated", scale by rows / treated rows.
    Rows with equal scores keep their input order (stable sort), so the curve is deterministic.
    """
    s, t, yy = _evaluation_arrays(scores, treated, y)
    return _curve(s, t, yy)


def auuc(scores: ArrayLike, treated: ArrayLike, y: ArrayLike) -> float:
    """Area under the Qini curve (trapezoid over the fraction targeted), in incremental conversions."""
    return _auuc(*qini_curve(scores, treated, y))


def qini_coefficient(scores: ArrayLike, treated: ArrayLike, y: ArrayLike) -> float:
    """(area under the Qini curve - area under the random line from (0, 0) to (1, total incremental)) / rows.

    Dividing by the rows makes it a per-row conversion rate, comparable across set sizes: 0 is random targeting,
    0.01 is one percentage point of conversion gained on average over the targeting depths.
    """
    return _qini(*qini_curve(scores, treated, y))


def _resample_indices(treated: IntArray, resamples: int, seed: int) -> IntArray:
    """Treated and control rows resampled separately (each arm keeps its size); rows sorted so ties keep input order."""
    if resamples < MIN_RESAMPLES:
        raise InvalidInputError(f"need at least {MIN_RESAMPLES} bootstrap resamples, got {resamples}", "resamples")
    rng = np.random.default_rng(seed)
    treated_rows = np.flatnonzero(treated == 1)
    control_rows = np.flatnonzero(treated == 0)
    drawn = np.hstack(
        (
            rng.choice(treated_rows, size=(resamples, len(treated_rows)), replace=True),
            rng.choice(control_rows, size=(resamples, len(control_rows)), replace=True),
        )
    )
    return np.sort(drawn, axis=1)


def _at_shares(scores: FloatArray, treated: IntArray, y: IntArray, shares: FloatArray) -> FloatArray:
    fraction, incremental = _curve(scores, treated, y)
    return np.asarray(np.interp(shares, fraction, incremental), dtype=np.float64)


def _bootstrap(scores: FloatArray, treated: IntArray, y: IntArray, shares: FloatArray, rows: IntArray) -> FloatArray:
    """Incremental conversions at each share (columns) for each resample (rows)."""
    return np.vstack([_at_shares(scores[r], treated[r], y[r], shares) for r in rows])


def _interval(samples: FloatArray) -> tuple[float, float]:
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(samples, (tail, 1.0 - tail))
    return float(low), float(high)


def _estimate(share: float, point: float, samples: FloatArray) -> IncrementalEstimate:
    low, high = _interval(samples)
    return IncrementalEstimate(share=share, estimate=point, low=low, high=high)


def incremental_at(
    scores: ArrayLike,
    treated: ArrayLike,
    y: ArrayLike,
    share: float,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> IncrementalEstimate:
    """Incremental conversions from targeting the top `share` of rows (the Qini curve, interpolated between rows),
    with a 95% percentile interval over seeded bootstrap resamples of the treated and control rows."""
    s, t, yy = _evaluation_arrays(scores, treated, y)
    grid = np.array([_share(share)])
    point = _at_shares(s, t, yy, grid)
    samples = _bootstrap(s, t, yy, grid, _resample_indices(t, resamples, seed))
    return _estimate(float(grid[0]), float(point[0]), samples[:, 0])


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _decide(
    share: float, uplift: IncrementalEstimate, response: IncrementalEstimate, diff: FloatArray
) -> ShareDecision:
    """Uplift only when it is ahead and the paired interval excludes 0; otherwise response, the simpler default."""
    difference = _estimate(share, uplift.estimate - response.estimate, diff)
    gain, low, high = difference.estimate, difference.low, difference.high
    where = _percent(share)
    preferred: Preference = "response"
    if uplift.estimate > response.estimate and low > 0:
        preferred = "uplift"
        verdict = (
            f"uplift ranking adds {gain:.1f} incremental conversions over response ranking at {where} "
            f"(95% interval {low:.1f} to {high:.1f}): use uplift"
        )
    elif gain <= 0:
        verdict = (
            f"uplift ranking does not beat response ranking at {where} "
            f"(difference {gain:.1f}, 95% interval {low:.1f} to {high:.1f}): use response"
        )
    else:
        verdict = (
            f"uplift ranking is not distinguishable from response ranking at {where} "
            f"(difference {low:.1f} to {high:.1f}): use response"
        )
    return ShareDecision(
        share=share, uplift=uplift, response=response, difference=difference, preferred=preferred, verdict=verdict
    )


def compare_rankings(
    uplift_scores: ArrayLike,
    response_scores: ArrayLike,
    treated: ArrayLike,
    y: ArrayLike,
    shares: Sequence[float] = DEFAULT_SHARES,
    *,
    budget_share: float = 0.2,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> RankingComparison:
    """Incremental conversions of targeting by uplift vs by response at each share, decided share by share.

    Both rankings are scored on the same bootstrap resamples, so the interval of their difference is paired (much
    tighter than comparing two separate intervals). The overall decision is the one at `budget_share`.
    """
    u, t, yy = _evaluation_arrays(uplift_scores, treated, y, "uplift_scores")
    r = _scores(response_scores, "response_scores", len(u))
    budget = _share(budget_share, "budget_share")
    grid = np.array(sorted({round(_share(s, "shares"), 9) for s in shares} | {round(budget, 9)}), dtype=np.float64)
    rows = _resample_indices(t, resamples, seed)
    u_point, r_point = _at_shares(u, t, yy, grid), _at_shares(r, t, yy, grid)
    u_boot, r_boot = _bootstrap(u, t, yy, grid, rows), _bootstrap(r, t, yy, grid, rows)
    decisions = [
        _decide(
            float(share),
            _estimate(float(share), float(u_point[i]), u_boot[:, i]),
            _estimate(float(share), float(r_point[i]), r_boot[:, i]),
            u_boot[:, i] - r_boot[:, i],
        )
        for i, share in enumerate(grid)
    ]
    overall = decisions[int(np.argmin(np.abs(grid - budget)))]
    return RankingComparison(
        budget_share=overall.share,
        preferred=overall.preferred,
        verdict=overall.verdict,
        uplift_qini=_qini(*_curve(u, t, yy)),
        response_qini=_qini(*_curve(r, t, yy)),
        resamples=resamples,
        shares=decisions,
    )


def _downsample(fraction: FloatArray, incremental: FloatArray) -> list[QiniPoint]:
    """At most CURVE_POINTS points, evenly spaced in the fraction targeted, for reports."""
    if len(fraction) > CURVE_POINTS:
        grid = np.linspace(0.0, 1.0, CURVE_POINTS)
        fraction, incremental = grid, np.interp(grid, fraction, incremental)
    return [
        QiniPoint(fraction_targeted=float(f), incremental=float(v)) for f, v in zip(fraction, incremental, strict=True)
    ]


def evaluate_uplift(
    uplift_scores: ArrayLike,
    response_scores: ArrayLike,
    treated: ArrayLike,
    y: ArrayLike,
    shares: Sequence[float] = DEFAULT_SHARES,
    *,
    budget_share: float = 0.2,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> UpliftMetrics:
    """Held-out metrics of an uplift ranking, with its comparison against the response ranking."""
    u, t, yy = _evaluation_arrays(uplift_scores, treated, y, "uplift_scores")
    comparison = compare_rankings(
        u, response_scores, t, yy, shares, budget_share=budget_share, resamples=resamples, seed=seed
    )
    fraction, incremental = _curve(u, t, yy)
    treated_rate = float(yy[t == 1].mean())
    control_rate = float(yy[t == 0].mean())
    return UpliftMetrics(
        rows=len(u),
        treated_rows=int(t.sum()),
        control_rows=int(len(t) - t.sum()),
        treated_conversion_rate=treated_rate,
        control_conversion_rate=control_rate,
        ate=treated_rate - control_rate,
        auuc=_auuc(fraction, incremental),
        qini_coefficient=_qini(fraction, incremental),
        qini_curve=_downsample(fraction, incremental),
        comparison=comparison,
    )


# --- selection -------------------------------------------------------------------------------------------------------


def select_uplift_learner(
    x: ArrayLike,
    treated: ArrayLike,
    y: ArrayLike,
    seed: int,
    algorithms: Sequence[Algorithm] = ALGORITHMS,
    learners: Sequence[LearnerKind] = LEARNERS,
) -> tuple[UpliftLearner, str, dict[str, float]]:
    """Mean Qini coefficient over stratified 3-fold CV of the training rows (strata: treated x outcome), then refit the
    best on all of them. Ties (to TIE_DECIMALS) go to the simpler candidate: logistic before boosting, two-model before
    class transformation, whatever order the arguments list them in. Returns (learner, "kind/algorithm", cv scores)."""
    xs, t, yy = _training_arrays(x, treated, y, SELECTION_MIN_PER_CELL)
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise InvalidInputError(f"unknown algorithm {algorithm!r}, expected one of {ALGORITHMS}", "algorithms")
    for kind in learners:
        if kind not in LEARNERS:
            raise InvalidInputError(f"unknown uplift learner {kind!r}, expected one of {LEARNERS}", "learners")
    candidates = sorted(
        {(a, k) for a in algorithms for k in learners if k != "interaction" or a == "logistic_regression"},
        key=lambda c: (ALGORITHMS.index(c[0]), LEARNERS.index(c[1])),
    )
    if not candidates:
        raise InvalidInputError("need at least one algorithm and one learner", location="learners")
    splits = list(StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed).split(xs, t * 2 + yy))
    cv_qini: dict[str, float] = {}
    for algorithm, kind in candidates:
        fold_scores = []
        for train, test in splits:
            learner = make_uplift_learner(kind, algorithm, seed).fit(xs[train], t[train], yy[train])
            fold_scores.append(_qini(*_curve(learner.predict_uplift(xs[test]), t[test], yy[test])))
        cv_qini[f"{kind}/{algorithm}"] = float(np.mean(fold_scores))
    names = [f"{kind}/{algorithm}" for algorithm, kind in candidates]
    best = max(range(len(candidates)), key=lambda i: (round(cv_qini[names[i]], TIE_DECIMALS), -i))
    algorithm, kind = candidates[best]
    return make_uplift_learner(kind, algorithm, seed).fit(xs, t, yy), names[best], cv_qini
