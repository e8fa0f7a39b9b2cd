"""Look-alike models: persons who resemble a seed audience (best customers), for acquisition and win-back audiences.

The seed is a stored tag's values (or a dynamic audience's membership tag `audience:<id>`) as they stand now, and
the features are taken as of the data horizon: a look-alike describes who someone is today, with no label window to
leak into. Everyone outside the seed is unlabeled (positive-unlabeled learning, `cdp.models.lookalike`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from cdp.models.artifact import ModelManifest, Prediction, package
from cdp.models.datasets import feature_matrix
from cdp.models.labels import LabelDefinition, LabelMode, PersonHistory, training_horizon
from cdp.models.lookalike import LookalikeModel, train_lookalike
from cdp.models.requests import TrainRequest
from cdp.models.summaries import LookalikeSummary


@dataclass(frozen=True)
class LookalikeScorer:
    """Score: the estimated chance the person belongs with the seed (Elkan-Noto), 0..1."""

    model: LookalikeModel

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        return [Prediction(float(p)) for p in self.model.predict_proba_like(feature_matrix(people, now))]


def is_seed(history: PersonHistory, tag: str, values: Sequence[str | bool]) -> bool:
    stored = history.profile.tags.get(tag)
    return stored is not None and stored.value in values


def train_lookalike_model(
    request: TrainRequest, histories: list[PersonHistory], now: datetime
) -> tuple[bytes, ModelManifest]:
    horizon = training_horizon(request.horizon, histories)
    tag = request.seed_tag or ""
    seeds = np.asarray([is_seed(h, tag, request.seed_values) for h in histories], dtype=np.int_)
    x = feature_matrix(histories, horizon)
    model, metrics = train_lookalike(x, seeds, request.seed, request.test_fraction, request.algorithm)
    rejected = []
    if metrics.roc_auc_seed_vs_unlabeled < request.min_auc:
        rejected.append(
            f"held-out AUC seed vs unlabeled {metrics.roc_auc_seed_vs_unlabeled:.3f} is below the bar "
            f"{request.min_auc:.3f}"
        )
    if metrics.spy_lift_top_20 <= 1.0:
        rejected.append(
            f"held-back seed members rank no better than random (top-20% lift {metrics.spy_lift_top_20:.2f})"
        )
    seed_name = f"{tag} in {', '.join(str(v) for v in request.seed_values)}"
    label = LabelDefinition(mode=LabelMode.LOOKALIKE, window_days=request.window_days, horizon=horizon, seed=seed_name)
    return package(
        LookalikeScorer(model),
        model_name=request.model_name,
        kind="lookalike",
        trained_at=now,
        label=label,
        metrics=LookalikeSummary(held_out=metrics),
        rejected_because=rejected,
    )
