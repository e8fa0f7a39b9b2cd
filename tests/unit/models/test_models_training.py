"""Training on synthetic persons with a known response model; evaluation on held-out rows; packaging and promotion."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy
import sklearn

from cdp import topology
from cdp.errors import InvalidInputError, ModelIntegrityError, NotFoundError
from cdp.models.artifact import package, unpack
from cdp.models.evaluation import evaluate_scores
from cdp.models.features import FEATURE_NAMES
from cdp.models.labels import LabelMode
from cdp.models.scoring import ScoreRunRequest
from cdp.models.training import (
    TRAIN_TASK_ADAPTER,
    FeatureClassifier,
    PromoteRequest,
    TrainBatchRequest,
    TrainRequest,
    build_labels,
    build_matrix,
    fit_and_evaluate,
    promote,
    train_model,
)
from tests.fakes.model_histories import CAMPAIGN_ID, DELIVERED_AT, HORIZON, Synthetic
from tests.fakes.model_store import InMemoryModelStore

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events" / "sfn"


def campaign_request(**overrides: object) -> TrainRequest:
    base: dict[str, object] = {
        "model_name": "summer_response",
        "campaign_id": CAMPAIGN_ID,
        "window_days": 14,
        "algorithm": "logistic_regression",
    }
    return TrainRequest.model_validate(base | overrides)


def test_known_signal_is_learned_and_measured_on_held_out_rows(with_signal: Synthetic) -> None:
    # Given persons whose response follows a hidden engagement that also drives their past behaviour
    request = campaign_request(test_fraction=0.25)
    # When trained in campaign-response mode
    _, manifest = train_model(request, with_signal.histories, HORIZON)
    held_out = manifest.metrics.held_out
    # Then the held-out metrics show a real signal, and only test rows were used for them
    assert held_out.roc_auc > 0.75
    assert held_out.lift_top_decile > 1.5
    assert held_out.brier < held_out.brier_reference
    assert held_out.rows == 150 and manifest.metrics.train_rows == 450
    assert sum(b.count for b in held_out.calibration) == held_out.rows
    assert len(held_out.calibration) == 10
    assert manifest.accepted is True
    assert manifest.label.mode is LabelMode.CAMPAIGN_RESPONSE
    assert manifest.feature_names == list(FEATURE_NAMES)


def test_shuffled_labels_give_chance_level_auc(with_signal: Synthetic) -> None:
    # Given the same features with labels shuffled (the signal is destroyed, the base rate kept)
    request = campaign_request(test_fraction=0.5)
    x, y = build_matrix(with_signal.histories, build_labels(request, with_signal.histories))
    shuffled = np.random.default_rng(3).permutation(y)
    # When trained and evaluated
    *_, held_out = fit_and_evaluate(x, shuffled, request)
    _, _, _, _, _, real = fit_and_evaluate(x, y, request)
    # Then the control sits near 0.5 while the real labels do far better
    assert abs(held_out.roc_auc - 0.5) < 0.12
    assert real.roc_auc > held_out.roc_auc + 0.2


def test_no_signal_model_is_not_accepted(without_signal: Synthetic) -> None:
    # Given responses that are coin flips / When trained with selection among both candidates
    _, manifest = train_model(campaign_request(algorithm=None, min_auc=0.65), without_signal.histories, HORIZON)
    # Then it is saved as a candidate only: not accepted, and both candidates were cross-validated
    assert manifest.accepted is False
    assert set(manifest.metrics.candidates_cv_auc) == {"logistic_regression", "hist_gradient_boosting"}
    assert manifest.metrics.algorithm in manifest.metrics.candidates_cv_auc


def test_purchase_propensity_mode_without_campaign(with_signal: Synthetic) -> None:
    # Given no campaign id / When trained / Then the cutoff is the horizon minus the window
    _, manifest = train_model(campaign_request(campaign_id=None, window_days=30), with_signal.histories, HORIZON)
    assert manifest.label.mode is LabelMode.PURCHASE_PROPENSITY
    assert manifest.label.cutoff is not None and manifest.label.cutoff < manifest.label.horizon


def test_too_few_positives_is_rejected_with_a_clear_error(with_signal: Synthetic) -> None:
    # Given a campaign nobody received
    with pytest.raises(InvalidInputError, match="at least 10 positive"):
        train_model(campaign_request(campaign_id="never-sent"), with_signal.histories, HORIZON)


def test_evaluation_of_known_scores() -> None:
    # Given perfect scores on 20 rows with 4 positives
    y = np.array([1] * 4 + [0] * 16)
    perfect = np.where(y == 1, 0.9, 0.1)
    m = evaluate_scores(y, perfect)
    # Then AUC is 1, the top decile (2 rows) is all positive: lift 1 / 0.2, and Brier is 0.01
    assert m.roc_auc == 1.0
    assert m.lift_top_decile == pytest.approx(5.0)
    assert m.brier == pytest.approx(0.01)
    assert m.base_rate == 0.2
    # And constant scores carry no ranking information
    assert evaluate_scores(y, np.full(20, 0.2)).roc_auc == 0.5
    with pytest.raises(InvalidInputError):
        evaluate_scores(np.zeros(5, dtype=int), np.zeros(5))


def test_package_then_unpack_round_trip_and_tamper_detection(with_signal: Synthetic) -> None:
    # Given a packaged model
    blob, manifest = train_model(campaign_request(), with_signal.histories, HORIZON)
    assert manifest.version.startswith("20260630T120000Z-")
    # When unpacked intact / Then it predicts probabilities
    model = unpack(blob, manifest)
    people = with_signal.histories[:3]
    assert [0.0 <= p.score <= 1.0 for p in model.predict_people(people, HORIZON)] == [True] * 3
    # When a byte changes / Then the hash check refuses it before unpickling
    tampered = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    with pytest.raises(ModelIntegrityError, match="sha256"):
        unpack(tampered, manifest)
    # And a manifest from another runtime or feature layout is refused
    with pytest.raises(ModelIntegrityError, match="scikit-learn"):
        unpack(blob, manifest.model_copy(update={"sklearn_version": "0.0.1"}))
    with pytest.raises(ModelIntegrityError, match="other features"):
        unpack(blob, manifest.model_copy(update={"feature_names": list(reversed(FEATURE_NAMES))}))
    assert manifest.sklearn_version == sklearn.__version__
    # And the other libraries the pickle and the numbers depend on are recorded as trained
    assert manifest.library_versions == {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "python": platform.python_version(),
    }


def test_package_version_changes_with_the_bytes(with_signal: Synthetic) -> None:
    _, manifest = train_model(campaign_request(), with_signal.histories, HORIZON)
    _, again = package(
        FeatureClassifier({"not": "the same"}),
        model_name="m",
        kind="response",
        trained_at=manifest.trained_at,
        label=manifest.label,
        metrics=manifest.metrics,
    )
    assert again.version != manifest.version and again.sha256 != manifest.sha256


def test_promote_only_accepted_versions(
    with_signal: Synthetic, without_signal: Synthetic, model_store: InMemoryModelStore
) -> None:
    # Given one accepted and one rejected version saved in the store
    good_blob, good = train_model(campaign_request(), with_signal.histories, HORIZON)
    bad_blob, bad = train_model(campaign_request(min_auc=0.99), with_signal.histories, DELIVERED_AT)
    model_store.save(good_blob, good)
    model_store.save(bad_blob, bad)
    # When the accepted one is promoted / Then latest points at it
    result = promote(
        PromoteRequest(action="promote", model_name=good.model_name, version=good.version), model_store, HORIZON
    )
    assert result.previous_version is None
    assert model_store.latest(good.model_name).version == good.version  # type: ignore[union-attr]
    # When the rejected one is promoted / Then it is refused and latest is unchanged
    with pytest.raises(InvalidInputError, match="not accepted"):
        promote(PromoteRequest(action="promote", model_name=bad.model_name, version=bad.version), model_store, HORIZON)
    with pytest.raises(NotFoundError):
        promote(PromoteRequest(action="promote", model_name="summer_response", version="nope"), model_store, HORIZON)
    assert model_store.latest(good.model_name).version == good.version  # type: ignore[union-attr]


def test_task_inputs_parse_by_action_and_sample_inputs_are_valid() -> None:
    # Given the sample state machine inputs / Then they parse into their models
    train = TRAIN_TASK_ADAPTER.validate_python(json.loads((EVENTS_DIR / "train_input.json").read_text()))
    assert isinstance(train, TrainRequest) and train.campaign_id
    ScoreRunRequest.model_validate_json((EVENTS_DIR / "score_input.json").read_text())
    # And a promote step parses as a PromoteRequest, a typo as an error
    promote_step = TRAIN_TASK_ADAPTER.validate_python({"action": "promote", "model_name": "m", "version": "v1"})
    assert isinstance(promote_step, PromoteRequest)
    with pytest.raises(ValueError, match="window_dayz"):
        TRAIN_TASK_ADAPTER.validate_python({"model_name": "m", "window_dayz": 3})
    with pytest.raises(ValueError, match="model_name"):
        TrainRequest.model_validate({"model_name": "../escape"})


def test_schedules_start_the_model_machines_with_valid_inputs() -> None:
    # Given the schedules that start the train and score machines / Then their inputs parse into the machines' models
    (train,) = [
        TRAIN_TASK_ADAPTER.validate_python({"action": "train_batch", **json.loads(s.input)})
        for s in topology.SCHEDULES
        if s.target_machine is not None and s.target_machine.key == topology.TRAIN_MACHINE.key
    ]
    (score,) = [
        ScoreRunRequest.model_validate_json(s.input)
        for s in topology.SCHEDULES
        if s.target_machine is not None and s.target_machine.key == topology.SCORE_MACHINE.key
    ]
    assert isinstance(train, TrainBatchRequest)
    trains = train.models
    # every model trained weekly (one batch: one read of the histories) is scored nightly, in one pass
    assert [t.model_name for t in trains] == score.model_names == [name for name, _ in topology.SCHEDULED_MODELS]
    assert {t.kind for t in trains} == {"propensity", "churn", "clv", "next_product"}
