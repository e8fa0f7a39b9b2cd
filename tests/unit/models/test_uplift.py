"""Uplift learners and their held-out evaluation, on synthetic randomized campaigns where each person's true uplift is
known, plus hand-computed Qini curves."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import joblib
import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import spearmanr
from sklearn.exceptions import NotFittedError

from cdp.errors import InvalidInputError
from cdp.models import uplift
from cdp.models.uplift import (
    ClassTransformationUplift,
    InteractionUplift,
    TwoModelUplift,
    UpliftLearner,
    auuc,
    compare_rankings,
    evaluate_uplift,
    incremental_at,
    qini_coefficient,
    qini_curve,
    select_uplift_learner,
)

LEARNERS: list[type[UpliftLearner]] = [TwoModelUplift, InteractionUplift, ClassTransformationUplift]
HALF = 2000  # rows 0..1999 train, 2000..3999 held out (rows are i.i.d., so this is a random split)


@dataclass(frozen=True)
class World:
    x: NDArray[np.float64]
    treated: NDArray[np.int_]
    y: NDArray[np.int_]
    true_uplift: NDArray[np.float64]

    def train(self) -> tuple[NDArray[np.float64], NDArray[np.int_], NDArray[np.int_]]:
        return self.x[:HALF], self.treated[:HALF], self.y[:HALF]

    def test(self) -> tuple[NDArray[np.float64], NDArray[np.int_], NDArray[np.int_]]:
        return self.x[HALF:], self.treated[HALF:], self.y[HALF:]


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def persuadables_world(n: int, seed: int, treated_share: float = 0.5) -> World:
    """Persuadables (x0 high) buy only when treated; sure things (x1 high, ~27% of people) buy anyway, so a response
    model, which ranks by P(buy | treated), puts the sure things first: the people a message changes least."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    persuadable = _sigmoid(8 * (x[:, 0] - 1.0))
    sure_thing = _sigmoid(8 * (x[:, 1] - 0.6))
    baseline = 0.02 + 0.88 * sure_thing
    true_uplift = 0.8 * persuadable * (1 - baseline)
    treated = (rng.random(n) < treated_share).astype(np.int_)
    y = (rng.random(n) < baseline + treated * true_uplift).astype(np.int_)
    return World(x, treated, y, true_uplift)


def constant_world(n: int, seed: int) -> World:
    """The message adds 8 points for everyone; who buys anyway varies a lot. No ranking can beat another on uplift."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    baseline = 0.05 + 0.45 * _sigmoid(2 * x[:, 0] + x[:, 1] - 1)
    true_uplift = np.full(n, 0.08)
    treated = (rng.random(n) < 0.5).astype(np.int_)
    y = (rng.random(n) < baseline + treated * true_uplift).astype(np.int_)
    return World(x, treated, y, true_uplift)


@pytest.fixture(scope="module")
def persuadables() -> World:
    return persuadables_world(2 * HALF, seed=4)


@pytest.fixture(scope="module")
def fitted(persuadables: World) -> dict[type[UpliftLearner], UpliftLearner]:
    return {cls: cls("logistic_regression", seed=0).fit(*persuadables.train()) for cls in LEARNERS}


# --- learners on worlds with a known answer --------------------------------------------------------------------------


@pytest.mark.parametrize("learner_cls", LEARNERS)
def test_uplift_ranking_finds_persuadables_that_response_ranking_misses(
    learner_cls: type[UpliftLearner], persuadables: World, fitted: dict[type[UpliftLearner], UpliftLearner]
) -> None:
    # Given a learner fit on the training rows of the persuadables world
    learner = fitted[learner_cls]
    x, treated, y = persuadables.test()
    # When its uplift and response rankings are scored on the held-out rows
    uplift_scores, response_scores = learner.predict_uplift(x), learner.predict_treated(x)
    comparison = compare_rankings(uplift_scores, response_scores, treated, y, budget_share=0.2)
    # Then uplift ranking targets better than random and better than response ranking, and is preferred at 20%
    assert qini_coefficient(uplift_scores, treated, y) > 0.005
    assert qini_coefficient(uplift_scores, treated, y) > qini_coefficient(response_scores, treated, y)
    by_uplift = incremental_at(uplift_scores, treated, y, 0.2)
    by_response = incremental_at(response_scores, treated, y, 0.2)
    assert by_uplift.estimate > by_response.estimate + 10
    assert comparison.preferred == "uplift"
    assert comparison.verdict.startswith("uplift ranking adds") and comparison.verdict.endswith(": use uplift")
    assert "at 20%" in comparison.verdict
    at_budget = next(d for d in comparison.shares if d.share == 0.2)
    assert at_budget.difference.low > 0
    assert at_budget.uplift.estimate == pytest.approx(by_uplift.estimate)
    assert at_budget.response.estimate == pytest.approx(by_response.estimate)
    assert comparison.uplift_qini == pytest.approx(qini_coefficient(uplift_scores, treated, y))
    # And the learner's uplift orders people like the true uplift does
    assert spearmanr(uplift_scores, persuadables.true_uplift[HALF:]).statistic > 0.6


@pytest.mark.parametrize("learner_cls", LEARNERS)
def test_constant_uplift_keeps_response_ranking(learner_cls: type[UpliftLearner]) -> None:
    # Given a world where the message adds the same to everyone
    world = constant_world(2 * HALF, seed=0)
    learner = learner_cls("logistic_regression", seed=0).fit(*world.train())
    x, treated, y = world.test()
    # When the two rankings are compared on held-out rows
    comparison = compare_rankings(learner.predict_uplift(x), learner.predict_treated(x), treated, y, budget_share=0.2)
    # Then uplift is not preferred, and the verdict says to use response ranking
    assert comparison.preferred == "response"
    assert comparison.verdict.endswith(": use response")
    assert "at 20%" in comparison.verdict
    assert all(d.preferred == "response" for d in comparison.shares)
    assert [d.share for d in comparison.shares] == [0.1, 0.2, 0.3, 0.5]


def test_class_transformation_with_unequal_treatment_share_recovers_uplift_order() -> None:
    # Given the persuadables world with only 20% of people treated
    world = persuadables_world(2 * HALF, seed=1, treated_share=0.2)
    # When class transformation (importance-weighted to the 20% share) is fit
    learner = ClassTransformationUplift("logistic_regression", seed=0).fit(*world.train())
    # Then its uplift ranks held-out people like the true uplift does
    assert learner.treated_share_ == pytest.approx(0.2, abs=0.03)
    assert spearmanr(learner.predict_uplift(world.x[HALF:]), world.true_uplift[HALF:]).statistic > 0.5


@pytest.mark.parametrize("learner_cls", LEARNERS)
def test_learners_round_trip_through_joblib(
    learner_cls: type[UpliftLearner], persuadables: World, fitted: dict[type[UpliftLearner], UpliftLearner]
) -> None:
    # Given a fitted learner
    learner = fitted[learner_cls]
    # When it is pickled with joblib and loaded back
    buffer = io.BytesIO()
    joblib.dump(learner, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    # Then it predicts exactly the same
    x = persuadables.x[HALF:]
    assert type(loaded) is learner_cls and loaded.name == learner.name
    np.testing.assert_array_equal(loaded.predict_uplift(x), learner.predict_uplift(x))
    np.testing.assert_array_equal(loaded.predict_treated(x), learner.predict_treated(x))


def test_two_model_uplift_is_the_difference_of_its_arms(fitted: dict[type[UpliftLearner], UpliftLearner]) -> None:
    learner = fitted[TwoModelUplift]
    assert isinstance(learner, TwoModelUplift)
    x = np.random.default_rng(0).normal(size=(50, 5))
    control = learner.control_model_.predict_proba(x)[:, 1]
    np.testing.assert_allclose(learner.predict_uplift(x), learner.predict_treated(x) - control)
    assert np.all(np.abs(learner.predict_uplift(x)) <= 1)


def test_learner_needs_fit_and_the_same_features() -> None:
    with pytest.raises(NotFittedError):
        TwoModelUplift().predict_uplift(np.zeros((2, 5)))
    world = persuadables_world(600, seed=2)
    learner = ClassTransformationUplift().fit(world.x, world.treated, world.y)
    with pytest.raises(InvalidInputError) as err:
        learner.predict_treated(np.zeros((2, 4)))
    assert err.value.location == "x"


# --- Qini curve, area, coefficient: exact numbers --------------------------------------------------------------------


def test_qini_curve_hand_computed() -> None:
    # Given six rows, listed here in descending score order (T = treated, C = control):
    #   T buys, C no, T buys, C buys, T no, C no
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    treated = np.array([1, 0, 1, 0, 1, 0])
    y = np.array([1, 0, 1, 1, 0, 0])
    # When the rows arrive shuffled
    perm = np.array([3, 0, 5, 2, 4, 1])
    fraction, incremental = qini_curve(scores[perm], treated[perm], y[perm])
    # Then Y_t(k) - Y_c(k) N_t(k)/N_c(k), k = 0..6 (0 while no control row is targeted):
    #   k=1: no control -> 0; k=2: 1-0; k=3: 2-0; k=4: 2-1*2/2; k=5: 2-1*3/2; k=6: 2-1*3/3
    np.testing.assert_allclose(fraction, np.arange(7) / 6)
    np.testing.assert_allclose(incremental, [0, 0, 1, 2, 1, 0.5, 1])
    # And the trapezoid area is (0 + 0.5 + 1.5 + 1.5 + 0.75 + 0.75) / 6 = 5/6; the random line's is 1/2
    assert auuc(scores, treated, y) == pytest.approx(5 / 6)
    assert qini_coefficient(scores, treated, y) == pytest.approx((5 / 6 - 1 / 2) / 6)


def test_qini_curve_scales_control_conversions_to_the_treated_count() -> None:
    # Given three treated rows and two control rows (descending scores): T buys, C buys, T no, T buys, C no
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    treated = np.array([1, 0, 1, 1, 0])
    y = np.array([1, 1, 0, 1, 0])
    # When the curve is computed
    _, incremental = qini_curve(scores, treated, y)
    # Then each control conversion counts N_t/N_c times: k=2: 1-1; k=3: 1-1*2/1; k=4: 2-1*3/1; k=5: 2-1*3/2
    np.testing.assert_allclose(incremental, [0, 0, 0, -1, -1, 0.5])


def test_perfect_and_reversed_rankings() -> None:
    # Given four treated and four control rows; the perfect ranking puts treated buyers and control non-buyers first
    #   perfect order: T buys, C no, T buys, C no, T no, C buys, T no, C buys
    treated = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    y = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    perfect = np.arange(8, 0, -1).astype(np.float64)
    # When it is scored as is and reversed
    _, best = qini_curve(perfect, treated, y)
    _, worst = qini_curve(-perfect, treated, y)
    # Then the curves rise (and fall) as far as these rows allow; both end at the overall effect (0 here)
    np.testing.assert_allclose(best, [0, 0, 1, 2, 2, 2, 1, 2 - 4 / 3, 0])
    np.testing.assert_allclose(worst, [0, 0, -1, -1, -2, -4 / 3, -1, -0.5, 0])
    assert qini_coefficient(perfect, treated, y) > 0 > qini_coefficient(-perfect, treated, y)
    # And random shuffles of the same rows land between the two on average (not each one: N_t/N_c scaling lets a
    # shuffle that targets control buyers early fall below the reversed order)
    rng = np.random.default_rng(0)
    shuffled = np.mean([qini_coefficient(rng.permutation(perfect), treated, y) for _ in range(200)])
    assert qini_coefficient(-perfect, treated, y) < shuffled < qini_coefficient(perfect, treated, y)
    assert qini_coefficient(perfect, treated, y) == pytest.approx(
        ((0 + 1 + 3 + 4 + 4 + 3 + (1 + 2 / 3) + 2 / 3) / 16) / 8
    )


def test_tied_scores_keep_input_order() -> None:
    # Given tied scores
    treated = np.array([1, 0, 1, 0])
    y = np.array([0, 1, 1, 0])
    tied = np.array([0.5, 0.5, 0.9, 0.5])
    # When the curve is computed twice
    first, second = qini_curve(tied, treated, y), qini_curve(tied, treated, y)
    # Then it is the same each time, and tied rows are taken in input order (row 2, then 0, 1, 3)
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[1], qini_curve(np.array([0.8, 0.7, 0.9, 0.6]), treated, y)[1])
    # And all-equal scores follow the input order exactly
    np.testing.assert_array_equal(qini_curve(np.zeros(4), treated, y)[1], qini_curve(-np.arange(4.0), treated, y)[1])


# --- incremental conversions with intervals, comparison, report metrics ----------------------------------------------


def test_incremental_at_reads_the_curve_with_a_seeded_bootstrap_interval(
    persuadables: World, fitted: dict[type[UpliftLearner], UpliftLearner]
) -> None:
    x, treated, y = persuadables.test()
    scores = fitted[TwoModelUplift].predict_uplift(x)
    fraction, incremental = qini_curve(scores, treated, y)
    # When read at 30% (between rows) and at 100%
    at_30 = incremental_at(scores, treated, y, 0.3, seed=3)
    at_all = incremental_at(scores, treated, y, 1.0, seed=3)
    # Then the estimate is the interpolated curve, inside its interval, and the same seed gives the same interval
    assert at_30.estimate == pytest.approx(float(np.interp(0.3, fraction, incremental)))
    assert at_30.low < at_30.estimate < at_30.high
    assert incremental_at(scores, treated, y, 0.3, seed=3) == at_30
    assert incremental_at(scores, treated, y, 0.3, seed=4) != at_30
    assert at_all.estimate == pytest.approx(incremental[-1])
    # And at 100% the total incremental does not depend on the order: it is the overall effect among the treated
    t, c = treated == 1, treated == 0
    assert at_all.estimate == pytest.approx(y[t].sum() - y[c].sum() * t.sum() / c.sum())


def test_identical_rankings_are_not_distinguishable() -> None:
    world = persuadables_world(800, seed=5)
    scores = world.x[:, 0]
    comparison = compare_rankings(scores, scores, world.treated, world.y, shares=(0.2,), budget_share=0.2)
    assert comparison.preferred == "response"
    assert comparison.verdict == (
        "uplift ranking does not beat response ranking at 20% (difference 0.0, 95% interval 0.0 to 0.0): use response"
    )


def test_budget_share_outside_the_requested_shares_is_added() -> None:
    world = persuadables_world(800, seed=5)
    comparison = compare_rankings(world.x[:, 0], world.x[:, 1], world.treated, world.y, (0.5, 0.1), budget_share=0.25)
    assert [d.share for d in comparison.shares] == [0.1, 0.25, 0.5]
    assert comparison.budget_share == 0.25
    assert comparison.verdict == comparison.shares[1].verdict
    assert "at 25%" in comparison.verdict


def test_evaluate_uplift_summarizes_held_out_rows(
    persuadables: World, fitted: dict[type[UpliftLearner], UpliftLearner]
) -> None:
    x, treated, y = persuadables.test()
    learner = fitted[ClassTransformationUplift]
    metrics = evaluate_uplift(learner.predict_uplift(x), learner.predict_treated(x), treated, y, budget_share=0.2)
    assert metrics.rows == HALF and metrics.treated_rows + metrics.control_rows == HALF
    assert metrics.treated_rows == int(treated.sum())
    assert metrics.treated_conversion_rate == pytest.approx(y[treated == 1].mean())
    assert metrics.ate == pytest.approx(metrics.treated_conversion_rate - metrics.control_conversion_rate)
    assert metrics.ate > 0
    assert metrics.qini_coefficient == pytest.approx(qini_coefficient(learner.predict_uplift(x), treated, y))
    assert metrics.auuc == pytest.approx(auuc(learner.predict_uplift(x), treated, y))
    curve = metrics.qini_curve
    assert len(curve) == 21
    assert (curve[0].fraction_targeted, curve[0].incremental) == (0.0, 0.0)
    _, incremental = qini_curve(learner.predict_uplift(x), treated, y)
    assert curve[-1].fraction_targeted == 1.0 and curve[-1].incremental == pytest.approx(incremental[-1])
    assert metrics.comparison.preferred == "uplift"
    # a small set keeps all its points
    small = evaluate_uplift(x[:12, 0], x[:12, 1], treated[:12], y[:12], shares=(0.5,), budget_share=0.5)
    assert len(small.qini_curve) == 13


# --- selection -------------------------------------------------------------------------------------------------------


def test_select_uplift_learner_cross_validates_on_training_rows(persuadables: World) -> None:
    # When all five candidates are cross-validated on the training rows (the interaction learner is logistic only)
    learner, name, cv = select_uplift_learner(*persuadables.train(), seed=0)
    # Then each has a mean Qini coefficient, the best (to 4 decimals) wins, and it is refit on all training rows
    assert set(cv) == {
        "two_model/logistic_regression",
        "interaction/logistic_regression",
        "class_transformation/logistic_regression",
        "two_model/hist_gradient_boosting",
        "class_transformation/hist_gradient_boosting",
    }
    assert round(cv[name], 4) == max(round(v, 4) for v in cv.values())
    assert learner.name == name
    assert cv[name] > 0
    x, treated, y = persuadables.test()
    assert qini_coefficient(learner.predict_uplift(x), treated, y) > 0


def test_select_uplift_learner_breaks_ties_towards_the_simpler(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every candidate scoring the same (whatever order the caller lists them in)
    world = persuadables_world(600, seed=6)
    monkeypatch.setattr(uplift, "_qini", lambda fraction, incremental: 0.0)
    learner, name, cv = select_uplift_learner(
        world.x,
        world.treated,
        world.y,
        seed=0,
        algorithms=("hist_gradient_boosting", "logistic_regression"),
        learners=("class_transformation", "two_model"),
    )
    # Then logistic regression and the two-model learner win
    assert name == "two_model/logistic_regression"
    assert isinstance(learner, TwoModelUplift) and learner.algorithm == "logistic_regression"
    assert list(cv) == [
        "two_model/logistic_regression",
        "class_transformation/logistic_regression",
        "two_model/hist_gradient_boosting",
        "class_transformation/hist_gradient_boosting",
    ]


# --- bad input -------------------------------------------------------------------------------------------------------

_X = np.zeros((40, 2))
_T = np.array([1, 0] * 20)
_Y = np.array([1, 1, 0, 0] * 10)
_S = np.linspace(0, 1, 40)


@pytest.mark.parametrize(
    ("call", "location"),
    [
        (lambda: qini_curve(_S, _T[:-1], _Y), "treated"),
        (lambda: qini_curve(_S, _T, _Y[:-1]), "y"),
        (lambda: qini_curve(_S, np.ones(40, dtype=int), _Y), "treated"),
        (lambda: qini_curve(_S, np.zeros(40, dtype=int), _Y), "treated"),
        (lambda: qini_curve(_S, _T * 2, _Y), "treated"),
        (lambda: qini_curve(_S, _T, _Y + 0.5), "y"),
        (lambda: qini_curve(np.array(["a"] * 40), _T, _Y), "scores"),
        (lambda: qini_curve(np.where(_T == 1, np.nan, 0.0), _T, _Y), "scores"),
        (lambda: auuc(_S.reshape(20, 2), _T, _Y), "scores"),
        (lambda: incremental_at(_S, _T, _Y, 0.0), "share"),
        (lambda: incremental_at(_S, _T, _Y, 1.5), "share"),
        (lambda: incremental_at(_S, _T, _Y, 0.2, resamples=5), "resamples"),
        (lambda: compare_rankings(_S, _S[:-1], _T, _Y), "response_scores"),
        (lambda: compare_rankings(_S, _S, _T, _Y, budget_share=0.0), "budget_share"),
        (lambda: compare_rankings(_S, _S, _T, _Y, shares=(0.2, 2.0)), "shares"),
        (lambda: TwoModelUplift().fit(_X[:, 0], _T, _Y), "x"),
        (lambda: TwoModelUplift().fit(_X, _T[:-1], _Y), "treated"),
        (lambda: TwoModelUplift().fit(_X, _T, np.full(40, 2)), "y"),
        (lambda: ClassTransformationUplift().fit(_X, np.ones(40, dtype=int), _Y), "treated"),
        (lambda: ClassTransformationUplift().fit(_X[:20], _T[:20], _Y[:20]), "y"),  # 5 rows per cell
        (lambda: TwoModelUplift("random_forest", 0), "algorithm"),  # type: ignore[arg-type]
        (lambda: select_uplift_learner(_X, _T, _Y, seed=0), "y"),  # 10 per cell: too few for 3 folds
    ],
)
def test_bad_input_names_the_field(call: Callable[[], object], location: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        call()
    assert err.value.location == location
