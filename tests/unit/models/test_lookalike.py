"""Look-alike scoring by PU learning (cdp.models.lookalike) in a synthetic world where the truth is known: true
look-alikes come from a feature region, and only 30% of them were picked as seeds; the rest hide among the unlabeled."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from cdp.errors import InvalidInputError
from cdp.models.lookalike import LookalikeMetrics, LookalikeModel, evaluate_lookalike, train_lookalike

LABEL_RATE = 0.3  # the share of true look-alikes the brand put in its seed audience


def pu_world(
    n: int, seed: int, positive_share: float = 0.25, label_rate: float = LABEL_RATE
) -> tuple[NDArray[np.float64], NDArray[np.int_], NDArray[np.int_]]:
    """Features, hidden truth y and seed flags s: positives sit in a shifted region; seeds are a random share."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_share).astype(np.int_)
    x = rng.normal(size=(n, 6))
    x[:, 0] += 2.5 * y
    x[:, 1] += 2.5 * y
    s = (y * (rng.random(n) < label_rate)).astype(np.int_)
    return x, y, s


@pytest.fixture(scope="module")
def trained() -> tuple[LookalikeModel, LookalikeMetrics]:
    x, _, s = pu_world(3000, seed=1)
    return train_lookalike(x, s, seed=7)


def test_hidden_lookalikes_rank_above_the_others(trained: tuple[LookalikeModel, LookalikeMetrics]) -> None:
    # Given a model trained on seeds vs unlabeled only
    model, metrics = trained
    # When it scores the unlabeled rows of a fresh draw from the same world
    x, y, s = pu_world(3000, seed=2)
    unlabeled = s == 0
    scores = model.predict_proba_like(x[unlabeled])
    # Then the hidden look-alikes rank far above the rest, and the scores are probabilities
    assert roc_auc_score(y[unlabeled], scores) > 0.8
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    # and the seed-vs-unlabeled AUC it reports understates the true AUC (hidden look-alikes count as misses)
    true_auc = roc_auc_score(y, model.predict_proba_like(x))
    assert metrics.roc_auc_seed_vs_unlabeled < true_auc


def test_label_frequency_and_spies_match_the_known_truth(trained: tuple[LookalikeModel, LookalikeMetrics]) -> None:
    model, metrics = trained
    # c estimates the share of true look-alikes that were picked as seeds
    assert abs(model.label_frequency - LABEL_RATE) < 0.15
    assert metrics.label_frequency == model.label_frequency
    # spies (hidden training seeds) come back near the top of the unlabeled, far above random
    assert metrics.spy_recall_top_20 > 0.4 and metrics.spy_lift_top_20 > 2
    assert metrics.spy_recall_top_10 <= metrics.spy_recall_top_20
    assert metrics.spy_lift_top_10 == pytest.approx(metrics.spy_recall_top_10 / 0.1, rel=0.01)
    # counts add up, selection ran on the train split, and enough seeds means no warnings
    assert metrics.rows == 3000 and metrics.seed_rows + metrics.unlabeled_rows == 3000
    assert metrics.held_out_rows == 750 and metrics.held_out_seed_rows == round(metrics.seed_rows * 0.25)
    assert metrics.spies == round(0.2 * (metrics.seed_rows - metrics.held_out_seed_rows))
    assert set(metrics.candidates_cv_auc) == {"logistic_regression", "hist_gradient_boosting"}
    assert metrics.warnings == []


def test_round_trip_through_joblib_gives_the_same_scores(trained: tuple[LookalikeModel, LookalikeMetrics]) -> None:
    model, _ = trained
    x, _, _ = pu_world(200, seed=3)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert isinstance(loaded, LookalikeModel)
    assert loaded.label_frequency == model.label_frequency
    np.testing.assert_array_equal(loaded.predict_proba_like(x), model.predict_proba_like(x))


def test_fewer_than_ten_seeds_is_refused() -> None:
    x, _, s = pu_world(400, seed=4)
    s[:] = 0
    s[:9] = 1
    with pytest.raises(InvalidInputError) as caught:
        train_lookalike(x, s, seed=7, algorithm="logistic_regression")
    assert caught.value.location == "is_seed"


def test_small_seed_sets_train_with_warnings() -> None:
    # Given 30 seeds (about 8 of them held out) / When trained with a fixed algorithm (no selection)
    x, y, _ = pu_world(800, seed=5)
    s = np.zeros_like(y)
    s[np.flatnonzero(y)[:30]] = 1
    _, metrics = train_lookalike(x, s, seed=7, algorithm="hist_gradient_boosting")
    # Then it still trains, says why the numbers are shaky, and reports no selection
    assert metrics.algorithm == "hist_gradient_boosting" and metrics.candidates_cv_auc == {}
    assert len(metrics.warnings) == 2
    assert all(w.startswith("too few seed members to trust") for w in metrics.warnings)


def test_enough_seeds_but_few_held_out_warns_once() -> None:
    x, y, _ = pu_world(800, seed=6)
    s = np.zeros_like(y)
    s[np.flatnonzero(y)[:60]] = 1  # 15 held out
    _, metrics = train_lookalike(x, s, seed=7, algorithm="logistic_regression")
    assert metrics.held_out_seed_rows == 15
    assert len(metrics.warnings) == 1 and "held-out" in metrics.warnings[0]


def test_bad_inputs_are_refused() -> None:
    x, _, s = pu_world(200, seed=8)
    with pytest.raises(InvalidInputError):
        train_lookalike(x, s * 2, seed=7)
    with pytest.raises(InvalidInputError):
        train_lookalike(x[:, 0], s, seed=7)
    with pytest.raises(InvalidInputError):
        LookalikeModel().predict_proba_like(x)
    fitted = LookalikeModel().fit(x, s)
    with pytest.raises(InvalidInputError):
        fitted.predict_proba_like(x[:, :3])
    with pytest.raises(InvalidInputError):
        evaluate_lookalike(fitted, x, s, x[:5], np.zeros(5, dtype=np.int_))
