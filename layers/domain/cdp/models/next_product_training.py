"""Next best product: the categories each person is most likely to buy next, for templates and audiences.

Baskets are the categories of each order's lines. Evaluated out of time (fit before horizon - holdout, judged on
what was bought after) against recommending the most popular categories to everyone; refitted up to the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cdp.models.artifact import ModelManifest, Prediction, package
from cdp.models.labels import LabelDefinition, LabelMode, PersonHistory, training_horizon
from cdp.models.next_product import Basket, NextProductModel, train_next_product
from cdp.models.requests import TrainRequest
from cdp.models.summaries import NextProductSummary

TOP_K = 3


def baskets_of(history: PersonHistory, before: datetime | None = None) -> list[Basket]:
    """The person's orders as category baskets, oldest first (orders without categories are left out)."""
    out = []
    for e in history.events:
        if e.event_type != "order_placed" or (before is not None and e.occurred_at >= before):
            continue
        categories = frozenset(line.category for line in e.properties.lines if line.category)
        if categories:
            out.append(Basket(e.occurred_at, categories))
    return sorted(out, key=lambda b: b.at)


@dataclass(frozen=True)
class NextProductScorer:
    """Score: the best category's score (0..1); items: the top categories, best first."""

    model: NextProductModel
    k: int = TOP_K

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        out = []
        for person in people:
            ranked = self.model.recommend(baskets_of(person, before=now), self.k)
            out.append(Prediction(ranked[0][1] if ranked else 0.0, items=[c for c, _ in ranked]))
        return out


def train_next_product_model(
    request: TrainRequest, histories: list[PersonHistory], now: datetime
) -> tuple[bytes, ModelManifest]:
    horizon = training_horizon(request.horizon, histories)
    baskets = {h.profile.person_id: baskets_of(h) for h in histories}
    model, metrics = train_next_product(baskets, horizon, request.holdout_days, TOP_K)
    rejected = []
    if metrics.hit_rate_difference <= 0:
        rejected.append(
            f"hit rate@{TOP_K} {metrics.hit_rate:.3f} does not beat most-popular's {metrics.baseline_hit_rate:.3f}"
        )
    label = LabelDefinition(mode=LabelMode.NEXT_PRODUCT, window_days=request.holdout_days, horizon=horizon)
    return package(
        NextProductScorer(model),
        model_name=request.model_name,
        kind="next_product",
        trained_at=now,
        label=label,
        metrics=NextProductSummary(held_out=metrics),
        rejected_because=rejected,
        feature_names=["order line categories"],
    )
