"""Uplift from randomized campaigns: who buys *because* of a message, learned from treated and held-out persons.

Rows are the persons a campaign assigned at random (`campaign_assigned`: treatment or holdout), features as of the
assignment, label an order within the window after it. Evaluation is cross-fitted: the persons are split in two
(stratified on group x outcome), and each half is scored by a learner chosen (cross-validated Qini) and fitted on the
other half alone; those held-out scores of every person give the Qini curve and the comparison with response ranking
(the same learners' P(order | treated)), which decides whether a campaign should rank by uplift at all. The learner
that scores is then chosen and fitted on every person. The promoted version is compared on the same persons (it may
have seen some of them: the comparison favours it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cdp.errors import InvalidInputError
from cdp.models.artifact import ModelManifest, Prediction, TrainedModel, package
from cdp.models.datasets import build_matrix, feature_matrix
from cdp.models.kinds import Algorithm
from cdp.models.labels import PersonHistory, training_horizon, uplift_labels
from cdp.models.requests import TrainRequest
from cdp.models.summaries import Champion, UpliftSummary
from cdp.models.uplift import UpliftLearner, evaluate_uplift, qini_coefficient, select_uplift_learner

CHAMPION_TOLERANCE = 0.002  # Qini coefficient per row: a retrain on much the same data may land a hair lower
CROSS_FIT_FOLDS = 2


@dataclass(frozen=True)
class UpliftScorer:
    """Score: the order chance a message adds (-1..1); outputs: the chance with and without it."""

    learner: UpliftLearner

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        x = feature_matrix(people, now)
        uplift = self.learner.predict_uplift(x)
        treated = self.learner.predict_treated(x)
        return [
            Prediction(float(u), {"treated": float(p), "control": float(np.clip(p - u, 0.0, 1.0))})
            for u, p in zip(uplift, treated, strict=True)
        ]


def train_uplift(
    request: TrainRequest, histories: list[PersonHistory], now: datetime, champion: TrainedModel | None
) -> tuple[bytes, ModelManifest]:
    horizon = training_horizon(request.horizon, histories)
    labeled = uplift_labels(histories, request.campaign_ids, request.window_days, horizon)
    x, y = build_matrix(histories, labeled)
    treated = np.asarray([ex.group == "treatment" for ex in labeled.examples], dtype=np.int_)
    if len(y) == 0 or treated.all() or not treated.any():
        raise InvalidInputError(
            f"campaigns {', '.join(request.campaign_ids)} have no randomized holdout on record (campaign_assigned "
            f"events with group holdout, beside the sends or treatment records): {int(treated.sum())} treated, "
            f"{int(len(y) - treated.sum())} held out",
            location="campaign_ids",
        )
    # Cross-fitting: each randomized person is scored by a learner chosen and fitted on the other fold only, so
    # every person counts in the held-out evaluation (a 50/50 split would halve an already small holdout). A person
    # assigned in several campaigns keeps all their rows in one fold: their other rows must not train the learner
    # that scores them.
    # logistic learners unless asked: a few thousand randomized persons rarely carry boosted trees' extra variance
    algorithms: tuple[Algorithm, ...] = (request.algorithm,) if request.algorithm else ("logistic_regression",)
    uplift_oof = np.zeros(len(y))
    treated_oof = np.zeros(len(y))
    persons = np.asarray([ex.person_id for ex in labeled.examples])
    folds = StratifiedGroupKFold(n_splits=CROSS_FIT_FOLDS, shuffle=True, random_state=request.seed)
    chosen_per_fold = []
    for fit_rows, held_rows in folds.split(x, treated * 2 + y, groups=persons):
        fold_learner, fold_name, _ = select_uplift_learner(
            x[fit_rows], treated[fit_rows], y[fit_rows], request.seed, algorithms
        )
        uplift_oof[held_rows] = fold_learner.predict_uplift(x[held_rows])
        treated_oof[held_rows] = fold_learner.predict_treated(x[held_rows])
        chosen_per_fold.append(fold_name)
    held_out = evaluate_uplift(
        uplift_oof, treated_oof, treated, y, budget_share=request.budget_share, seed=request.seed
    )
    learner, name, cv_qini = select_uplift_learner(x, treated, y, request.seed, algorithms)  # the one that scores
    rejected = []
    if held_out.qini_coefficient <= 0:
        rejected.append(f"held-out Qini coefficient {held_out.qini_coefficient:.4f}: no better than a random pick")
    compared = None
    if champion is not None and isinstance(champion.estimator, UpliftScorer):
        old = qini_coefficient(champion.estimator.learner.predict_uplift(x), treated, y)
        compared = Champion(
            version=champion.manifest.version,
            metric="held-out Qini coefficient",
            value=old,
            new_value=held_out.qini_coefficient,
            beaten=held_out.qini_coefficient >= old - CHAMPION_TOLERANCE,
        )
        if not compared.beaten:
            rejected.append(f"held-out Qini {held_out.qini_coefficient:.4f} is below the promoted version's {old:.4f}")
    summary = UpliftSummary(
        learner=name,
        candidates_cv_qini=cv_qini,
        train_rows=len(y),
        train_treated=int(treated.sum()),
        evaluation=f"{CROSS_FIT_FOLDS}-fold cross-fitting over every randomized person (learners per fold: "
        f"{', '.join(chosen_per_fold)})",
        excluded_persons=labeled.excluded,
        held_out=held_out,
        champion=compared,
    )
    return package(
        UpliftScorer(learner),
        model_name=request.model_name,
        kind="uplift",
        trained_at=now,
        label=labeled.definition,
        metrics=summary,
        rejected_because=rejected,
        outputs=["treated", "control"],
    )
