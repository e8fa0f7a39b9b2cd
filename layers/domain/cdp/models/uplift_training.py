"""Uplift from randomized campaigns: who buys *because* of a message, learned from treated and held-out persons.

Rows are the persons a campaign assigned at random (`campaign_assigned`: treatment or holdout), features as of the
assignment, label an order within the window after it. Persons are split (stratified on group x outcome); the learner
is chosen by cross-validated Qini on the training rows; the held-out rows give the Qini curve and the comparison
with response ranking (the same learner's P(order | treated)), which decides whether a campaign should rank by
uplift at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.model_selection import train_test_split

from cdp.errors import InvalidInputError
from cdp.models.artifact import ModelManifest, Prediction, TrainedModel, package
from cdp.models.datasets import build_matrix, feature_matrix
from cdp.models.labels import PersonHistory, data_horizon, uplift_labels
from cdp.models.requests import TrainRequest
from cdp.models.summaries import Champion, UpliftSummary
from cdp.models.uplift import UpliftLearner, evaluate_uplift, qini_coefficient, select_uplift_learner

CHAMPION_TOLERANCE = 0.002  # Qini coefficient per row: a retrain on much the same data may land a hair lower


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
    horizon = request.horizon or data_horizon(histories)
    if horizon is None:
        raise InvalidInputError("no events to train on", location="profiles")
    labeled = uplift_labels(histories, request.campaign_ids, request.window_days, horizon)
    x, y = build_matrix(histories, labeled)
    treated = np.asarray([ex.group == "treatment" for ex in labeled.examples], dtype=np.int_)
    if len(y) == 0 or treated.all() or not treated.any():
        raise InvalidInputError(
            f"campaigns {', '.join(request.campaign_ids)} have no randomized holdout on record (campaign_assigned "
            f"events with group treatment and holdout): {int(treated.sum())} treated, {int(len(y) - treated.sum())} "
            "held out",
            location="campaign_ids",
        )
    x_train, x_test, t_train, t_test, y_train, y_test = train_test_split(
        x, treated, y, test_size=request.test_fraction, stratify=treated * 2 + y, random_state=request.seed
    )
    learner, name, cv_qini = select_uplift_learner(x_train, t_train, y_train, request.seed)
    held_out = evaluate_uplift(
        learner.predict_uplift(x_test),
        learner.predict_treated(x_test),
        t_test,
        y_test,
        budget_share=request.budget_share,
        seed=request.seed,
    )
    rejected = []
    if held_out.qini_coefficient <= 0:
        rejected.append(f"held-out Qini coefficient {held_out.qini_coefficient:.4f}: no better than a random pick")
    compared = None
    if champion is not None and isinstance(champion.estimator, UpliftScorer):
        old = qini_coefficient(champion.estimator.learner.predict_uplift(x_test), t_test, y_test)
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
        train_rows=len(y_train),
        train_treated=int(t_train.sum()),
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
