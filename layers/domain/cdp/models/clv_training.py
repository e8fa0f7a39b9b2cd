"""Purchase timing and value through the train and score machines: BG/NBD + Gamma-Gamma (`cdp.models.clv`).

Checked out of time: fitted on purchases up to horizon - holdout, each person's predicted purchases in the holdout
period compared with what they did, against the naive "each person keeps their past rate"; then refitted on every
purchase up to the horizon for scoring. Purchases are order days (several orders on one day are one purchase of
their summed value, as the papers count); returns are not netted out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from cdp.errors import InvalidInputError
from cdp.models.artifact import ModelManifest, Prediction, package
from cdp.models.clv import (
    BgNbd,
    GammaGamma,
    ModelFitError,
    PersonSummaries,
    fit_bgnbd,
    fit_gamma_gamma,
    lifetime_value,
    summarize_purchases,
)
from cdp.models.labels import LabelDefinition, LabelMode, PersonHistory, training_horizon
from cdp.models.requests import TrainRequest
from cdp.models.summaries import ClvHoldout, ClvSummary

NEXT_DAYS = 90  # the expected purchases output: the next quarter
MIN_REPEAT_BUYERS = 20
Purchases = Mapping[str, Sequence[tuple[date, float]]]


def purchases_of(histories: Sequence[PersonHistory]) -> dict[str, list[tuple[date, float]]]:
    """Each person's order days and values (minor units), from `order_placed`."""
    out: dict[str, list[tuple[date, float]]] = {}
    for h in histories:
        bought = [
            (e.occurred_at.date(), float(e.properties.total_minor)) for e in h.events if e.event_type == "order_placed"
        ]
        if bought:
            out[h.profile.person_id] = bought
    return out


@dataclass(frozen=True)
class ClvScorer:
    """Score: expected margin over `months` (minor units, discounted); outputs: p_alive, purchases_90d, spend."""

    purchases: BgNbd
    spend: GammaGamma
    months: int
    margin: float
    monthly_discount: float

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        bought = purchases_of(people)
        try:
            summaries = summarize_purchases(bought, now.date())
        except ModelFitError:  # nobody in this batch has bought: no customer to value
            return [Prediction(0.0) for _ in people]
        s = summaries.summary
        alive = self.purchases.p_alive(s.frequency, s.recency, s.age)
        upcoming = self.purchases.expected_purchases(float(NEXT_DAYS), s.frequency, s.recency, s.age)
        spend = self.spend.expected_spend(s.frequency, summaries.mean_value)
        value = lifetime_value(
            self.purchases,
            self.spend,
            summaries,
            months=self.months,
            unit_days=1.0,
            margin=self.margin,
            monthly_discount=self.monthly_discount,
        )
        index = {pid: i for i, pid in enumerate(summaries.person_ids)}
        out = []
        for person in people:
            i = index.get(person.profile.person_id)
            if i is None:
                out.append(Prediction(0.0))  # never bought (before now): BG/NBD describes customers only
                continue
            outputs = {"p_alive": float(alive[i]), "purchases_90d": float(upcoming[i]), "spend": float(spend[i])}
            out.append(Prediction(float(value[i]), outputs))
        return out


def _fit(summaries: PersonSummaries) -> tuple[BgNbd, GammaGamma]:
    s = summaries.summary
    repeat = s.frequency > 0
    if int(repeat.sum()) < MIN_REPEAT_BUYERS:
        raise InvalidInputError(
            f"need at least {MIN_REPEAT_BUYERS} repeat buyers to fit purchase value, got {int(repeat.sum())}",
            location="profiles",
        )
    try:
        return fit_bgnbd(s), fit_gamma_gamma(s.frequency[repeat], summaries.mean_value[repeat])
    except ModelFitError as exc:
        raise InvalidInputError(f"purchase history does not fit BG/NBD and Gamma-Gamma: {exc}", "profiles") from exc


def holdout_check(bought: Purchases, horizon: date, holdout_days: int) -> ClvHoldout:
    """Fit up to horizon - holdout_days, compare each person's predicted holdout purchases with their actual ones."""
    end = horizon - timedelta(days=holdout_days)
    calibration = summarize_purchases(bought, end)
    purchases, spend = _fit(calibration)
    s = calibration.summary
    predicted = purchases.expected_purchases(float(holdout_days), s.frequency, s.recency, s.age)
    naive = np.where(s.age > 0, s.frequency / np.maximum(s.age, 1.0), 0.0) * holdout_days
    actual = np.zeros(len(calibration.person_ids))
    actual_value = np.zeros(len(calibration.person_ids))
    for i, person_id in enumerate(calibration.person_ids):
        days: dict[date, float] = {}
        for day, value in bought[person_id]:
            if end < day <= horizon:
                days[day] = days.get(day, 0.0) + value
        actual[i], actual_value[i] = len(days), sum(days.values())
    repeat_and_back = (s.frequency > 0) & (actual > 0)
    predicted_spend = spend.expected_spend(s.frequency, calibration.mean_value)
    top = np.argsort(-predicted, kind="stable")[: max(1, len(predicted) // 10)]
    return ClvHoldout(
        persons=len(actual),
        holdout_days=holdout_days,
        predicted_purchases=float(predicted.sum()),
        actual_purchases=int(actual.sum()),
        mae=float(np.abs(predicted - actual).mean()),
        baseline_mae=float(np.abs(naive - actual).mean()),
        correlation=float(np.corrcoef(predicted, actual)[0, 1]) if actual.std() > 0 and predicted.std() > 0 else None,
        top_decile_share=float(actual[top].sum() / actual.sum()) if actual.sum() else 0.0,
        predicted_spend=float(predicted_spend[repeat_and_back].mean()) if repeat_and_back.any() else None,
        actual_spend=float((actual_value / np.maximum(actual, 1))[repeat_and_back].mean())
        if repeat_and_back.any()
        else None,
    )


def train_clv(request: TrainRequest, histories: list[PersonHistory], now: datetime) -> tuple[bytes, ModelManifest]:
    horizon = training_horizon(request.horizon, histories)
    bought = purchases_of(histories)
    if not bought:
        raise InvalidInputError("nobody has ordered: there is no purchase history to fit", location="profiles")
    try:
        check = holdout_check(bought, horizon.date(), request.holdout_days)
        final = summarize_purchases(bought, horizon.date())
    except ModelFitError as exc:
        raise InvalidInputError(str(exc), location="holdout_days") from exc
    purchases, spend = _fit(final)
    rejected = []
    if check.mae >= check.baseline_mae:
        rejected.append(
            f"holdout error {check.mae:.3f} purchases per person does not beat the past-rate baseline's "
            f"{check.baseline_mae:.3f}"
        )
    summary = ClvSummary(
        bgnbd={"r": purchases.r, "alpha": purchases.alpha, "a": purchases.a, "b": purchases.b},
        gamma_gamma={"p": spend.p, "q": spend.q, "gamma": spend.gamma},
        persons=len(final.person_ids),
        repeat_buyers=int((final.summary.frequency > 0).sum()),
        months=request.months,
        monthly_discount=request.monthly_discount,
        margin=request.margin,
        holdout=check,
    )
    label = LabelDefinition(mode=LabelMode.CLV, window_days=request.holdout_days, horizon=horizon)
    scorer = ClvScorer(purchases, spend, request.months, request.margin, request.monthly_discount)
    return package(
        scorer,
        model_name=request.model_name,
        kind="clv",
        trained_at=now,
        label=label,
        metrics=summary,
        rejected_because=rejected,
        feature_names=["repeat purchases", "recency (days)", "age (days)", "mean repeat spend"],
        outputs=["p_alive", "purchases_90d", "spend"],
    )
