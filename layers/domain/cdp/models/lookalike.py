"""Look-alike scoring from a seed audience by positive-unlabeled (PU) learning (Elkan and Noto 2008, "Learning
classifiers from only positive and unlabeled data").

A brand names a seed audience (its best customers, say); everyone else is unlabeled: a mix of people like the seeds
who were not picked and people unlike them. Treating the unlabeled as negatives would teach the model that the hidden
look-alikes are unlike the seeds. Under "selected completely at random" (the seeds are a random share c of all the
true positives, whatever their features), a classifier of seed vs unlabeled g(x) = P(s=1|x) equals c P(y=1|x), so
P(y=1|x) = g(x) / c, where c is estimated as the mean of g over seed rows the classifier did not see.

Evaluation cannot see the hidden positives either, so it reports what PU data can measure: the AUC of seeds vs
unlabeled on held-out rows (a lower bound of the true AUC) and "spy" recall: some training seeds are hidden among the
unlabeled before fitting, and we check how high they rank among the unlabeled, as the hidden look-alikes would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from threadpoolctl import threadpool_limits

from cdp.errors import InvalidInputError
from cdp.models.estimators import CV_FOLDS, choose_algorithm, make_estimator
from cdp.models.kinds import Algorithm

MIN_SEEDS = 10  # below this, a stratified split, cross-fitting and spies leave a handful of rows each: refuse
WARN_SEEDS = 50  # below this, c and the spy recall move by several points from one seed to the next
WARN_HELD_OUT_SEEDS = 20  # below this, the held-out AUC rests on too few seed rows
SPY_FRACTION = 0.2
_MIN_LABEL_FREQUENCY = 1e-6  # guards the division when the classifier gives the seeds next to nothing


class LookalikeModel:
    """g(x) = P(seed | x) from a seed-vs-unlabeled classifier, and c = P(seed | true look-alike) to rescale it.

    c is the mean of cross-fitted (out-of-fold) g over the seed rows, so no seed scores itself; the classifier kept for
    scoring is then refit on every row. Picklable: module-level, plain attributes and a scikit-learn estimator.
    """

    def __init__(self, algorithm: Algorithm = "logistic_regression", seed: int = 42) -> None:
        self.algorithm: Algorithm = algorithm
        self.seed = seed
        self.estimator: Any = None
        self.label_frequency = math.nan
        self.n_features = 0

    def fit(self, x: NDArray[np.float64], is_seed: NDArray[np.int_]) -> LookalikeModel:
        """Seed (1) vs unlabeled (0) on every row given; c from seeds scored by folds that did not see them."""
        features, s = _check_inputs(x, is_seed)
        seeds = int(s.sum())
        if min(seeds, len(s) - seeds) < CV_FOLDS:
            raise InvalidInputError(
                f"need at least {CV_FOLDS} seed and {CV_FOLDS} unlabeled rows to fit, got {seeds} and {len(s) - seeds}",
                location="is_seed",
            )
        folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=self.seed)
        # one OpenMP thread, as in cdp.models.estimators: small fits, and oversubscription slows HGB tenfold
        with threadpool_limits(limits=1):
            held_out = cross_val_predict(
                make_estimator(self.algorithm, self.seed), features, s, cv=folds, method="predict_proba"
            )[:, 1]
            self.estimator = make_estimator(self.algorithm, self.seed).fit(features, s)
        self.label_frequency = float(min(1.0, max(_MIN_LABEL_FREQUENCY, held_out[s == 1].mean())))
        self.n_features = features.shape[1]
        return self

    def seed_propensity(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """g(x), the classifier's P(seed | x): ranks like `predict_proba_like` without its ties at 1 (sort by it)."""
        if self.estimator is None:
            raise InvalidInputError("the look-alike model is not fitted", location="model")
        features = np.asarray(x, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InvalidInputError(f"expected rows of {self.n_features} features", location="x")
        if features.shape[0] == 0:
            return np.zeros(0)
        with threadpool_limits(limits=1):
            return np.asarray(self.estimator.predict_proba(features)[:, 1], dtype=np.float64)

    def predict_proba_like(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(look-alike | x) = min(1, g(x) / c): the chance a row belongs with the seeds, whether picked or not."""
        return np.minimum(1.0, self.seed_propensity(x) / self.label_frequency)


class LookalikeMetrics(BaseModel):
    """What positive-unlabeled data can measure: the true look-alikes among the unlabeled are never known."""

    model_config = ConfigDict(frozen=True)

    algorithm: Algorithm
    candidates_cv_auc: dict[str, float] = Field(
        default_factory=dict, description="mean cross-validated seed-vs-unlabeled AUC of each candidate (train split)"
    )
    roc_auc_seed_vs_unlabeled: float = Field(
        ge=0.0, le=1.0, description="held-out; a lower bound of the true AUC (hidden look-alikes count as misses)"
    )
    label_frequency: float = Field(ge=0.0, le=1.0, description="c: estimated share of the true look-alikes in the seed")
    spy_fraction: float = Field(ge=0.0, le=1.0)
    spies: int
    spy_recall_top_10: float = Field(ge=0.0, le=1.0, description="share of spies in the top 10% of unlabeled scores")
    spy_recall_top_20: float = Field(ge=0.0, le=1.0, description="share of spies in the top 20% of unlabeled scores")
    spy_lift_top_10: float = Field(ge=0.0, description="spy recall in the top 10% / 10% (1 = random)")
    spy_lift_top_20: float = Field(ge=0.0, description="spy recall in the top 20% / 20% (1 = random)")
    rows: int
    seed_rows: int
    unlabeled_rows: int
    held_out_rows: int
    held_out_seed_rows: int
    warnings: list[str] = Field(default_factory=list)


def evaluate_lookalike(
    model: LookalikeModel,
    x_train: NDArray[np.float64],
    s_train: NDArray[np.int_],
    x_test: NDArray[np.float64],
    s_test: NDArray[np.int_],
    *,
    spy_fraction: float = SPY_FRACTION,
    candidates_cv_auc: dict[str, float] | None = None,
) -> LookalikeMetrics:
    """Held-out seed-vs-unlabeled AUC of `model` (fit on the train split) and the spy recall of a twin model.

    The AUC treats every unlabeled row as a negative, so hidden look-alikes ranked high count against it: if a share
    theta of the unlabeled are look-alikes, the measured AUC is theta / 2 + (1 - theta) * true AUC, never above the
    true one (when better than random), and it ranks candidate models like the true AUC would.

    Spies: a random `spy_fraction` of the training seeds is relabeled unlabeled, a model of the same algorithm is fit,
    and the spies' ranks among the training unlabeled show how high hidden look-alikes rank (they were fit as
    unlabeled, exactly like the look-alikes a campaign would pick from the scored base).
    """
    xtr, str_ = _check_inputs(x_train, s_train)
    xte, ste = _check_inputs(x_test, s_test)
    if not 0.0 < spy_fraction < 1.0:
        raise InvalidInputError("spy_fraction must be between 0 and 1", location="spy_fraction")
    if len(ste) == 0 or ste.min() == ste.max():
        raise InvalidInputError("the held-out rows need both seed and unlabeled rows", location="s_test")
    auc = float(roc_auc_score(ste, model.seed_propensity(xte)))

    seed_idx = np.flatnonzero(str_ == 1)
    n_spies = max(1, round(spy_fraction * len(seed_idx)))
    if len(seed_idx) - n_spies < CV_FOLDS:
        raise InvalidInputError(f"too few training seeds ({len(seed_idx)}) to hide spies among", location="is_seed")
    spies = np.random.default_rng(model.seed).choice(seed_idx, size=n_spies, replace=False)
    s_spy = str_.copy()
    s_spy[spies] = 0
    twin = LookalikeModel(model.algorithm, model.seed).fit(xtr, s_spy)
    unlabeled = np.flatnonzero(s_spy == 0)
    is_spy = np.isin(unlabeled, spies)
    order = np.argsort(-twin.seed_propensity(xtr[unlabeled]), kind="stable")
    recall, lift = {}, {}
    for share in (10, 20):
        top = max(1, math.ceil(len(unlabeled) * share / 100))
        recall[share] = float(is_spy[order[:top]].sum() / n_spies)
        lift[share] = recall[share] / (top / len(unlabeled))

    seeds, held_out_seeds = int(str_.sum() + ste.sum()), int(ste.sum())
    warnings = []
    if seeds < WARN_SEEDS:
        warnings.append(f"too few seed members to trust the estimates: {seeds} seeds (want at least {WARN_SEEDS})")
    if held_out_seeds < WARN_HELD_OUT_SEEDS:
        warnings.append(
            f"too few seed members to trust the held-out AUC: {held_out_seeds} held-out seeds "
            f"(want at least {WARN_HELD_OUT_SEEDS})"
        )
    rows = len(str_) + len(ste)
    return LookalikeMetrics(
        algorithm=model.algorithm,
        candidates_cv_auc=candidates_cv_auc or {},
        roc_auc_seed_vs_unlabeled=auc,
        label_frequency=model.label_frequency,
        spy_fraction=spy_fraction,
        spies=n_spies,
        spy_recall_top_10=recall[10],
        spy_recall_top_20=recall[20],
        spy_lift_top_10=lift[10],
        spy_lift_top_20=lift[20],
        rows=rows,
        seed_rows=seeds,
        unlabeled_rows=rows - seeds,
        held_out_rows=len(ste),
        held_out_seed_rows=held_out_seeds,
        warnings=warnings,
    )


def train_lookalike(
    x: NDArray[np.float64],
    is_seed: NDArray[np.int_],
    seed: int,
    test_fraction: float = 0.25,
    algorithm: Algorithm | None = None,
) -> tuple[LookalikeModel, LookalikeMetrics]:
    """Stratified split -> algorithm choice on the train split only -> fit -> held-out and spy evaluation.

    The returned model is the one evaluated (fit on the train split), so the metrics describe exactly what scores.
    """
    features, s = _check_inputs(x, is_seed)
    seeds = int(s.sum())
    if min(seeds, len(s) - seeds) < MIN_SEEDS:
        raise InvalidInputError(
            f"need at least {MIN_SEEDS} seed and {MIN_SEEDS} unlabeled rows, got {seeds} and {len(s) - seeds}",
            location="is_seed",
        )
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInputError("test_fraction must be between 0 and 1", location="test_fraction")
    x_train, x_test, s_train, s_test = train_test_split(
        features, s, test_size=test_fraction, stratify=s, random_state=seed
    )
    # seed-vs-unlabeled AUC is an increasing affine function of the true AUC, so it ranks candidates the same way
    chosen, cv_auc = choose_algorithm(x_train, s_train, seed, algorithm)
    model = LookalikeModel(chosen, seed).fit(x_train, s_train)
    metrics = evaluate_lookalike(model, x_train, s_train, x_test, s_test, candidates_cv_auc=cv_auc)
    return model, metrics


def _check_inputs(x: NDArray[np.float64], is_seed: NDArray[np.int_]) -> tuple[NDArray[np.float64], NDArray[np.int_]]:
    features = np.asarray(x, dtype=np.float64)
    s = np.asarray(is_seed)
    if features.ndim != 2 or s.ndim != 1 or len(features) != len(s):
        raise InvalidInputError("x must be rows x features and is_seed one 0/1 flag per row", location="x")
    if not np.isfinite(features).all():
        raise InvalidInputError("features must be finite numbers", location="x")
    if not np.isin(s, (0, 1)).all():
        raise InvalidInputError("is_seed must be 0 or 1", location="is_seed")
    return features, s.astype(np.int_)
