"""Train a model of any kind, evaluate it on held-out rows, save it as a version; promote and roll back versions.

Feature-based classifiers (response, propensity, churn) are trained here; the other kinds have their own modules
(`uplift_training`, `lookalike_training`, `clv_training`, `next_product_training`) and come through `train_model`.
A version is accepted only when it clears its kind's bar, beats a simple baseline and is not worse than the promoted
version scored on the same held-out rows (for classifiers, the rows after the promoted version's data: it may have
been fitted on any earlier one); the state machine promotes accepted versions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from cdp.errors import InvalidInputError, ModelIntegrityError, NotFoundError
from cdp.models.artifact import ModelManifest, Prediction, TrainedModel, package
from cdp.models.clv_training import train_clv
from cdp.models.datasets import build_matrix, feature_matrix, load_histories
from cdp.models.estimators import make_estimator, select_and_fit
from cdp.models.evaluation import HeldOutMetrics, evaluate_scores
from cdp.models.features import FEATURE_NAMES
from cdp.models.kinds import Algorithm
from cdp.models.labels import (
    LabeledSet,
    PersonHistory,
    campaign_response_labels,
    churn_labels,
    purchase_propensity_labels,
    training_horizon,
)
from cdp.models.lookalike_training import train_lookalike_model
from cdp.models.next_product_training import train_next_product_model
from cdp.models.ports import ModelStore
from cdp.models.report import build_classifier_report
from cdp.models.requests import (
    TRAIN_TASK_ADAPTER,
    PromoteRequest,
    PromoteResult,
    TrainBatchRequest,
    TrainBatchResult,
    TrainFailure,
    TrainRequest,
    TrainResult,
)
from cdp.models.summaries import Champion, TrainingSummary
from cdp.models.uplift_training import train_uplift
from cdp.observability import logger
from cdp.profile.ports import ProfileReader

__all__ = [
    "TRAIN_TASK_ADAPTER",
    "FeatureClassifier",
    "PromoteRequest",
    "TrainBatchRequest",
    "TrainRequest",
    "build_labels",
    "build_matrix",
    "fit_and_evaluate",
    "promote",
    "train_and_save",
    "train_batch_and_save",
    "train_model",
]

MIN_PER_CLASS = 10  # below this, a stratified split and 3-fold selection give meaningless numbers
MIN_HELD_OUT_PER_CLASS = 5  # below this no AUC is worth reporting; between it and the report's bar, a warning
CHAMPION_TOLERANCE = 0.005  # a retrain on much the same data may land a hair below the promoted version
_RECENCY = FEATURE_NAMES.index("days_since_last_order")


@dataclass(frozen=True)
class FeatureClassifier:
    """A fitted scikit-learn classifier over the point-in-time features: its score is P(label = 1)."""

    estimator: Any

    def predict_matrix(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.clip(np.asarray(self.estimator.predict_proba(rows)[:, 1], dtype=np.float64), 0.0, 1.0)

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        return [Prediction(float(p)) for p in self.predict_matrix(feature_matrix(people, now))]


# ---- classifier kinds: labels, matrices, split, fit --------------------------------------------------------------


def build_labels(request: TrainRequest, histories: list[PersonHistory], windows_back: int = 1) -> LabeledSet:
    horizon = training_horizon(request.horizon, histories)
    match request.kind:
        case "response":
            return campaign_response_labels(histories, request.campaign_ids, request.window_days, horizon)
        case "churn":
            return churn_labels(histories, request.window_days, horizon, windows_back)
        case "propensity":
            return purchase_propensity_labels(histories, request.window_days, horizon, windows_back)
    raise InvalidInputError(f"kind {request.kind} is not a classifier", location="kind")


def _check_class_counts(y: NDArray[np.int_], location: str = "labels", least: int = MIN_PER_CLASS) -> None:
    positives = int(y.sum())
    negatives = len(y) - positives
    if min(positives, negatives) < least:
        raise InvalidInputError(
            f"need at least {least} positive and {least} negative rows, "
            f"got {positives} positive and {negatives} negative",
            location=location,
        )


def fit_and_evaluate(
    x: NDArray[np.float64], y: NDArray[np.int_], request: TrainRequest
) -> tuple[Any, Algorithm, dict[str, float], int, int, HeldOutMetrics]:
    """Person split: select and fit on the training rows, evaluate on the rest."""
    _check_class_counts(y)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=request.test_fraction, stratify=y, random_state=request.seed
    )
    estimator, algorithm, cv_auc = select_and_fit(x_train, y_train, request.seed, request.algorithm)
    with threadpool_limits(limits=1):
        held_out = evaluate_scores(y_test, estimator.predict_proba(x_test)[:, 1])
    return estimator, algorithm, cv_auc, len(y_train), int(y_train.sum()), held_out


@dataclass(frozen=True)
class _Split:
    x_train: NDArray[np.float64]
    y_train: NDArray[np.int_]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int_]
    labeled: LabeledSet  # the latest rows' definition (what the saved model predicts)
    excluded: int
    evaluation: str
    refit_on_all: bool
    as_of_test: list[datetime]  # each held-out row's moment (a promoted version is compared on the rows after it)


def _split(request: TrainRequest, histories: list[PersonHistory]) -> _Split:
    """Time split where the data has time: propensity and churn train on rows one window earlier and are tested on
    the latest complete window; pooled response trains on the earlier campaigns and is tested on the latest. A single
    campaign has one moment, so its persons are split (stratified)."""
    latest = build_labels(request, histories)
    if request.kind in ("propensity", "churn"):
        earlier = build_labels(request, histories, windows_back=2)
        x_train, y_train = build_matrix(histories, earlier)
        x_test, y_test = build_matrix(histories, latest)
        evaluation = (
            f"time split: trained on rows as of {earlier.definition.cutoff:%Y-%m-%d}, tested on rows as of "
            f"{latest.definition.cutoff:%Y-%m-%d}; the saved model is refitted on both"
        )
        as_of = [ex.as_of for ex in latest.examples]
        return _Split(x_train, y_train, x_test, y_test, latest, latest.excluded, evaluation, True, as_of)
    x, y = build_matrix(histories, latest)
    campaigns = sorted({ex.group for ex in latest.examples}, key=lambda c: _first_as_of(latest, c))
    if len(campaigns) >= 2:
        last = campaigns[-1]
        test = np.asarray([ex.group == last for ex in latest.examples])
        evaluation = f"time split: trained on campaigns {', '.join(campaigns[:-1])}, tested on the latest ({last})"
        as_of = [ex.as_of for ex, held_out in zip(latest.examples, test, strict=True) if held_out]
        return _Split(x[~test], y[~test], x[test], y[test], latest, latest.excluded, evaluation, True, as_of)
    _check_class_counts(y)
    x_train, x_test, y_train, y_test, _, rows_test = train_test_split(
        x, y, np.arange(len(y)), test_size=request.test_fraction, stratify=y, random_state=request.seed
    )
    evaluation = f"person split: {request.test_fraction:.0%} of the persons held out (stratified)"
    as_of = [latest.examples[i].as_of for i in rows_test]
    return _Split(x_train, y_train, x_test, y_test, latest, latest.excluded, evaluation, False, as_of)


def _first_as_of(labeled: LabeledSet, group: str) -> datetime:
    return min(ex.as_of for ex in labeled.examples if ex.group == group)


def _baseline_auc(kind: str, x_test: NDArray[np.float64], y_test: NDArray[np.int_]) -> tuple[str, float]:
    """The rule a marketer would use without a model: the longer since the last order, the less likely to buy."""
    recency = x_test[:, _RECENCY]
    if kind == "churn":
        return "days since the last order (longer = more likely to churn)", float(roc_auc_score(y_test, recency))
    return "days since the last order (more recent = more likely to buy)", float(roc_auc_score(y_test, -recency))


def _compare_with_champion(
    champion: TrainedModel, classifier: FeatureClassifier, split: _Split, scores: NDArray[np.float64]
) -> Champion | None:
    """Both versions' AUC on the held-out rows the promoted version cannot have trained on: those as of its label
    horizon or later (it may have been fitted on every earlier row: a time split refits on all). None when too few
    such rows: a retrain on the data the promoted version saw has nothing fair to be compared on."""
    since = champion.manifest.label.horizon
    unseen = np.asarray([at >= since for at in split.as_of_test], dtype=bool)
    y = split.y_test[unseen]
    if min(int(y.sum()), len(y) - int(y.sum())) < MIN_HELD_OUT_PER_CLASS:
        logger.info(
            "promoted version not compared: it may have trained on the held-out rows",
            version=champion.manifest.version,
            unseen_rows=len(y),
        )
        return None
    with threadpool_limits(limits=1):
        old = float(roc_auc_score(y, classifier.predict_matrix(split.x_test[unseen])))
    new = float(roc_auc_score(y, scores[unseen]))
    return Champion(
        version=champion.manifest.version,
        metric=f"held-out AUC on the rows as of {since:%Y-%m-%d %H:%M} or later ({len(y)} rows)",
        value=old,
        new_value=new,
        beaten=new >= old - CHAMPION_TOLERANCE,
    )


def champion_of(store: ModelStore, request: TrainRequest) -> TrainedModel | None:
    """The promoted version of this model, when it is of the same kind and still loads."""
    try:
        pointer = store.latest(request.model_name)
        if pointer is None:
            return None
        champion = store.load(request.model_name, pointer.version)
    except (NotFoundError, ModelIntegrityError) as exc:
        logger.warning("promoted version not comparable", model_name=request.model_name, error=str(exc))
        return None
    return champion if champion.manifest.kind == request.kind else None


def train_classifier(
    request: TrainRequest, histories: list[PersonHistory], now: datetime, champion: TrainedModel | None
) -> tuple[bytes, ModelManifest]:
    split = _split(request, histories)
    _check_class_counts(split.y_train, "labels (training rows)")
    _check_class_counts(split.y_test, "labels (held-out rows)", MIN_HELD_OUT_PER_CLASS)
    estimator, algorithm, cv_auc = select_and_fit(split.x_train, split.y_train, request.seed, request.algorithm)
    with threadpool_limits(limits=1):
        scores = estimator.predict_proba(split.x_test)[:, 1]
    held_out = evaluate_scores(split.y_test, scores)
    baseline, baseline_auc = _baseline_auc(request.kind, split.x_test, split.y_test)
    report = build_classifier_report(estimator, split.x_test, split.y_test, FEATURE_NAMES, request.seed)
    rejected = []
    if held_out.roc_auc < request.min_auc:
        rejected.append(f"held-out AUC {held_out.roc_auc:.3f} is below the bar {request.min_auc:.3f}")
    if request.min_auc > 0 and held_out.roc_auc <= baseline_auc:
        rejected.append(f"held-out AUC {held_out.roc_auc:.3f} does not beat the baseline's {baseline_auc:.3f}")
    compared = None
    if champion is not None and isinstance(champion.estimator, FeatureClassifier):
        compared = _compare_with_champion(champion, champion.estimator, split, scores)
        if compared is not None and not compared.beaten:
            rejected.append(
                f"held-out AUC {compared.new_value:.3f} is below the promoted version's {compared.value:.3f} "
                "(on the held-out rows after its data)"
            )
    if split.refit_on_all:
        with threadpool_limits(limits=1):
            x_all, y_all = np.vstack([split.x_train, split.x_test]), np.concatenate([split.y_train, split.y_test])
            estimator = make_estimator(algorithm, request.seed).fit(x_all, y_all)
    summary = TrainingSummary(
        algorithm=algorithm,
        candidates_cv_auc=cv_auc,
        train_rows=len(split.y_train),
        train_positives=int(split.y_train.sum()),
        excluded_persons=split.excluded,
        held_out=held_out,
        evaluation=split.evaluation,
        baseline=baseline,
        baseline_auc=baseline_auc,
        champion=compared,
        report=report,
    )
    return package(
        FeatureClassifier(estimator),
        model_name=request.model_name,
        kind=request.kind,
        trained_at=now,
        label=split.labeled.definition,
        metrics=summary,
        rejected_because=rejected,
    )


# ---- every kind -------------------------------------------------------------------------------------------------


def train_model(
    request: TrainRequest, histories: list[PersonHistory], now: datetime, champion: TrainedModel | None = None
) -> tuple[bytes, ModelManifest]:
    """Labels -> features -> selection and fit -> held-out evaluation -> serialized model with its manifest."""
    match request.kind:
        case "uplift":
            return train_uplift(request, histories, now, champion)
        case "lookalike":
            return train_lookalike_model(request, histories, now)
        case "clv":
            return train_clv(request, histories, now)
        case "next_product":
            return train_next_product_model(request, histories, now)
    return train_classifier(request, histories, now, champion)


def train_and_save(request: TrainRequest, reader: ProfileReader, store: ModelStore, now: datetime) -> TrainResult:
    """Train, evaluate and save a new version (not promoted: the state machine promotes accepted versions)."""
    return _train_and_save(request, load_histories(reader), store, now)


def train_batch_and_save(
    request: TrainBatchRequest, reader: ProfileReader, store: ModelStore, now: datetime
) -> TrainBatchResult:
    """Every model of the batch over one read of the histories; a model this data cannot train is reported with
    why, and the others go on."""
    histories = load_histories(reader)
    results: list[TrainResult] = []
    failures: list[TrainFailure] = []
    for model in request.models:
        try:
            results.append(_train_and_save(model, histories, store, now))
        except InvalidInputError as exc:
            logger.warning("model not trained", model_name=model.model_name, error=str(exc))
            failures.append(
                TrainFailure(model_name=model.model_name, kind=model.kind, error=str(exc), location=exc.location)
            )
    return TrainBatchResult(results=results, failures=failures)


def _train_and_save(
    request: TrainRequest, histories: list[PersonHistory], store: ModelStore, now: datetime
) -> TrainResult:
    blob, manifest = train_model(request, histories, now, champion_of(store, request))
    store.save(blob, manifest)
    logger.info(
        "model trained",
        model_name=manifest.model_name,
        kind=manifest.kind,
        version=manifest.version,
        accepted=manifest.accepted,
        rejected_because=manifest.rejected_because,
    )
    return TrainResult(
        model_name=manifest.model_name,
        kind=manifest.kind,
        version=manifest.version,
        accepted=manifest.accepted,
        rejected_because=manifest.rejected_because,
        label=manifest.label.describe(),
        metrics=manifest.metrics.model_dump(mode="json", exclude={"report"}),
    )


# ---- promotion: the second step of the train state machine --------------------------------------------------


def promote(request: PromoteRequest, store: ModelStore, now: datetime) -> PromoteResult:
    """Make a saved version the one scoring loads; refuses versions that did not pass their evaluation."""
    manifest = store.manifest(request.model_name, request.version)
    if not manifest.accepted:
        reasons = "; ".join(manifest.rejected_because) or "its evaluation did not pass"
        raise InvalidInputError(
            f"model {request.model_name}/{request.version} was not accepted at training time: {reasons}",
            location="version",
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
