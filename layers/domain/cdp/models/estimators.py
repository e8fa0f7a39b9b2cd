"""The small scikit-learn estimators every feature-based model chooses from, and the choice itself.

Choice happens on the training rows only (stratified cross-validation), so the held-out rows that produce the
reported metrics are never used to choose anything. One OpenMP thread: these fits are small, and oversubscribed
threads (a busy host, Map tasks side by side) slow gradient boosting tenfold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from cdp.models.kinds import Algorithm

CV_FOLDS = 3
ALGORITHMS: tuple[Algorithm, ...] = ("logistic_regression", "hist_gradient_boosting")  # ties go to the simpler


def make_estimator(algorithm: Algorithm, seed: int) -> Any:
    if algorithm == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    # arcsinh: a log-like squash for skewed counts and money that also accepts negative point balances
    return Pipeline(
        [
            ("squash", FunctionTransformer(np.arcsinh)),
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(C=1.0, max_iter=1000)),
        ]
    )


def choose_algorithm(
    x: NDArray[np.float64], y: NDArray[np.int_], seed: int, algorithm: Algorithm | None
) -> tuple[Algorithm, dict[str, float]]:
    """The candidate with the best mean cross-validated AUC on these (training) rows; `algorithm` skips the choice."""
    if algorithm is not None:
        return algorithm, {}
    cv_auc: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1):
        for candidate in ALGORITHMS:
            scores = cross_val_score(make_estimator(candidate, seed), x, y, cv=folds, scoring="roc_auc")
            cv_auc[candidate] = float(scores.mean())
    # ties (to 3 decimals) go to the earlier, simpler candidate
    return max(ALGORITHMS, key=lambda a: (round(cv_auc[a], 3), -ALGORITHMS.index(a))), cv_auc


def select_and_fit(
    x: NDArray[np.float64], y: NDArray[np.int_], seed: int, algorithm: Algorithm | None
) -> tuple[Any, Algorithm, dict[str, float]]:
    """Cross-validate the candidates on the training rows, refit the best on all of them."""
    chosen, cv_auc = choose_algorithm(x, y, seed, algorithm)
    with threadpool_limits(limits=1):
        estimator = make_estimator(chosen, seed).fit(x, y)
    return estimator, chosen, cv_auc
