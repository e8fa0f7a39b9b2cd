"""Held-out evaluation of a scoring model: discrimination, ranking lift, calibration. Pure numpy/scikit-learn."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import brier_score_loss, roc_auc_score

from cdp.errors import InvalidInputError

CALIBRATION_BINS = 10


class CalibrationBin(BaseModel):
    """One of ten equal-count bins of held-out rows sorted by score (bin 0 = lowest scores)."""

    model_config = ConfigDict(frozen=True)

    bin: int
    count: int
    score_min: float
    score_max: float
    mean_predicted: float
    observed_rate: float


class HeldOutMetrics(BaseModel):
    """Computed on the test split only; nothing here has seen a training row."""

    model_config = ConfigDict(frozen=True)

    roc_auc: float = Field(ge=0.0, le=1.0)
    lift_top_decile: float = Field(ge=0.0, description="positive rate in the top 10% of scores / base rate")
    brier: float = Field(ge=0.0, le=1.0)
    brier_reference: float = Field(ge=0.0, le=1.0, description="Brier score of always predicting the base rate")
    expected_calibration_error: float = Field(ge=0.0, le=1.0)
    base_rate: float = Field(ge=0.0, le=1.0)
    rows: int
    positives: int
    calibration: list[CalibrationBin]


def evaluate_scores(y_true: NDArray[np.int_], scores: NDArray[np.float64]) -> HeldOutMetrics:
    """Metrics of predicted probabilities `scores` against 0/1 outcomes `y_true` (both classes must be present)."""
    y = np.asarray(y_true, dtype=np.int_)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if len(y) != len(s) or positives == 0 or positives == len(y):
        raise InvalidInputError("evaluation needs matching arrays with both outcomes present", location="y_true")
    base_rate = positives / len(y)
    order = np.argsort(-s, kind="stable")
    top = order[: max(1, math.ceil(len(y) / 10))]
    bins = _calibration(y, s)
    ece = sum(b.count * abs(b.mean_predicted - b.observed_rate) for b in bins) / len(y)
    return HeldOutMetrics(
        roc_auc=float(roc_auc_score(y, s)),
        lift_top_decile=float(y[top].mean() / base_rate),
        brier=float(brier_score_loss(y, s)),
        brier_reference=base_rate * (1 - base_rate),
        expected_calibration_error=min(1.0, float(ece)),
        base_rate=base_rate,
        rows=len(y),
        positives=positives,
        calibration=bins,
    )


def _calibration(y: NDArray[np.int_], s: NDArray[np.float64]) -> list[CalibrationBin]:
    order = np.argsort(s, kind="stable")
    out: list[CalibrationBin] = []
    for i, idx in enumerate(np.array_split(order, min(CALIBRATION_BINS, len(y)))):
        out.append(
            CalibrationBin(
                bin=i,
                count=len(idx),
                score_min=float(s[idx].min()),
                score_max=float(s[idx].max()),
                mean_predicted=float(s[idx].mean()),
                observed_rate=float(y[idx].mean()),
            )
        )
    return out
