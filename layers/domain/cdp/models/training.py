"""Build a labeled training set from profiles and timelines, pick and fit a small classifier, evaluate on held-out rows.

Model choice happens on the training split only (stratified cross-validation), so the test split that produces the
reported metrics is never used to choose anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from cdp.errors import InvalidInputError
from cdp.ingest.events import UtcDatetime
from cdp.models.artifact import Algorithm, ModelManifest, ModelName, TrainingSummary, package
from cdp.models.evaluation import HeldOutMetrics, evaluate_scores
from cdp.models.features import FEATURE_NAMES, feature_vector, features_as_of
from cdp.models.labels import (
    LabeledSet,
    PersonHistory,
    campaign_response_labels,
    data_horizon,
    purchase_propensity_labels,
)
from cdp.models.ports import ModelStore
from cdp.observability import logger
from cdp.profile.ports import ProfileReader
from cdp.shared.commands import action_discriminator

MIN_PER_CLASS = 10  # below this, a stratified split and 3-fold selection give meaningless numbers
CV_FOLDS = 3
ALGORITHMS: tuple[Algorithm, ...] = ("logistic_regression", "hist_gradient_boosting")  # ties go to the simpler


class TrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["train"] = "train"
    model_name: ModelName
    campaign_id: str | None = Field(default=None, min_length=1, max_length=128, description="campaign response mode")
    window_days: int = Field(default=30, ge=1, le=365)
    test_fraction: float = Field(default=0.25, ge=0.1, le=0.5)
    seed: int = Field(default=42, ge=0)
    min_auc: float = Field(
        default=0.6, ge=0.0, le=1.0, description="held-out ROC AUC needed for promotion (0 promotes any: smoke runs)"
    )
    horizon: UtcDatetime | None = Field(default=None, description="data horizon; default: the latest event time")
    algorithm: Algorithm | None = Field(default=None, description="skip selection and fit this one")


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    accepted: bool
    label: str
    metrics: TrainingSummary


def load_histories(reader: ProfileReader) -> list[PersonHistory]:
    """Every surviving profile with its timeline (fine for a brand's sample; at scale this reads an export)."""
    return [PersonHistory(p, [entry.event for entry in timeline]) for p, timeline in reader.scan_with_timelines(0, 1)]


def build_labels(request: TrainRequest, histories: list[PersonHistory]) -> LabeledSet:
    horizon = request.horizon or data_horizon(histories)
    if horizon is None:
        raise InvalidInputError("no events to train on", location="profiles")
    if request.campaign_id:
        return campaign_response_labels(histories, request.campaign_id, request.window_days, horizon)
    return purchase_propensity_labels(histories, request.window_days, horizon)


def build_matrix(histories: list[PersonHistory], labeled: LabeledSet) -> tuple[NDArray[np.float64], NDArray[np.int_]]:
    by_person = {h.profile.person_id: h for h in histories}
    rows = []
    for ex in labeled.examples:
        h = by_person[ex.person_id]
        rows.append(feature_vector(features_as_of(h.profile, h.events, ex.as_of)))
    x = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return x, np.asarray([ex.label for ex in labeled.examples], dtype=np.int_)


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


def select_and_fit(
    x: NDArray[np.float64], y: NDArray[np.int_], seed: int, algorithm: Algorithm | None
) -> tuple[Any, Algorithm, dict[str, float]]:
    """Cross-validate the candidates on the training split, refit the best on all of it."""
    cv_auc: dict[str, float] = {}
    chosen: Algorithm
    if algorithm is not None:
        chosen = algorithm
    else:
        folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
        for candidate in ALGORITHMS:
            scores = cross_val_score(make_estimator(candidate, seed), x, y, cv=folds, scoring="roc_auc")
            cv_auc[candidate] = float(scores.mean())
        # ties (to 3 decimals) go to the earlier, simpler candidate
        chosen = max(ALGORITHMS, key=lambda a: (round(cv_auc[a], 3), -ALGORITHMS.index(a)))
    estimator = make_estimator(chosen, seed).fit(x, y)
    return estimator, chosen, cv_auc


def _check_class_counts(y: NDArray[np.int_]) -> None:
    positives = int(y.sum())
    negatives = len(y) - positives
    if min(positives, negatives) < MIN_PER_CLASS:
        raise InvalidInputError(
            f"need at least {MIN_PER_CLASS} positive and {MIN_PER_CLASS} negative rows, "
            f"got {positives} positive and {negatives} negative",
            location="labels",
        )


def fit_and_evaluate(
    x: NDArray[np.float64], y: NDArray[np.int_], request: TrainRequest
) -> tuple[Any, Algorithm, dict[str, float], int, int, HeldOutMetrics]:
    _check_class_counts(y)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=request.test_fraction, stratify=y, random_state=request.seed
    )
    # one OpenMP thread: these fits are small, and oversubscribed threads (busy host, Map tasks) slow HGB 10x
    with threadpool_limits(limits=1):
        estimator, algorithm, cv_auc = select_and_fit(x_train, y_train, request.seed, request.algorithm)
        held_out = evaluate_scores(y_test, estimator.predict_proba(x_test)[:, 1])
    return estimator, algorithm, cv_auc, len(y_train), int(y_train.sum()), held_out


def train_model(request: TrainRequest, histories: list[PersonHistory], now: datetime) -> tuple[bytes, ModelManifest]:
    """Labels -> features -> selection and fit -> held-out evaluation -> serialized model with its manifest."""
    labeled = build_labels(request, histories)
    x, y = build_matrix(histories, labeled)
    estimator, algorithm, cv_auc, n_train, pos_train, held_out = fit_and_evaluate(x, y, request)
    summary = TrainingSummary(
        algorithm=algorithm,
        candidates_cv_auc=cv_auc,
        train_rows=n_train,
        train_positives=pos_train,
        excluded_persons=labeled.excluded,
        held_out=held_out,
    )
    return package(
        estimator,
        model_name=request.model_name,
        trained_at=now,
        label=labeled.definition,
        metrics=summary,
        accepted=held_out.roc_auc >= request.min_auc,
    )


def train_and_save(request: TrainRequest, reader: ProfileReader, store: ModelStore, now: datetime) -> TrainResult:
    """Train, evaluate and save a new version (not promoted: the state machine promotes accepted versions)."""
    blob, manifest = train_model(request, load_histories(reader), now)
    store.save(blob, manifest)
    held_out = manifest.metrics.held_out
    logger.info(
        "model trained",
        model_name=manifest.model_name,
        version=manifest.version,
        algorithm=manifest.metrics.algorithm,
        roc_auc=held_out.roc_auc,
        lift_top_decile=held_out.lift_top_decile,
        accepted=manifest.accepted,
    )
    return TrainResult(
        model_name=manifest.model_name,
        version=manifest.version,
        accepted=manifest.accepted,
        label=manifest.label.describe(),
        metrics=manifest.metrics,
    )


# ---- promotion: the second step of the train state machine --------------------------------------------------


class PromoteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["promote"]
    model_name: ModelName
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class PromoteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    promoted_at: datetime
    previous_version: str | None


def promote(request: PromoteRequest, store: ModelStore, now: datetime) -> PromoteResult:
    """Make a saved version the one scoring loads; refuses versions that did not pass their evaluation."""
    manifest = store.manifest(request.model_name, request.version)
    if not manifest.accepted:
        raise InvalidInputError(
            f"model {request.model_name}/{request.version} was not accepted at training time", location="version"
        )
    previous = store.latest(request.model_name)
    pointer = store.promote(request.model_name, request.version, now)
    logger.info("model promoted", model_name=pointer.model_name, version=pointer.version)
    return PromoteResult(
        model_name=pointer.model_name,
        version=pointer.version,
        promoted_at=pointer.promoted_at,
        previous_version=previous.version if previous else None,
    )


TrainTask = Annotated[
    Annotated[TrainRequest, Tag("train")] | Annotated[PromoteRequest, Tag("promote")],
    Discriminator(action_discriminator("train")),
]
TRAIN_TASK_ADAPTER: TypeAdapter[TrainRequest | PromoteRequest] = TypeAdapter(TrainTask)
"""The train function's input: a TrainRequest (`action` may be omitted) or a PromoteRequest."""
