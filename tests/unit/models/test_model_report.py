"""The model report's statistics: DeLong AUC interval, decile lift, held-out permutation importance, trust warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cdp.errors import InvalidInputError
from cdp.models.evaluation import evaluate_scores
from cdp.models.report import (
    ClassifierReport,
    DecileRow,
    auc_interval,
    build_classifier_report,
    decile_lift,
    render_text,
    top_features,
    trust_warnings,
)

Z95 = 1.959963984540054


def _synthetic_scores(n: int, seed: int) -> tuple[NDArray[np.int_], NDArray[np.float64]]:
    """Outcomes at a 30% rate and scores that separate them moderately (AUC about 0.76)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int_)
    return y, y * 1.0 + rng.normal(size=n)


def _pairwise_delong(y: NDArray[np.int_], s: NDArray[np.float64]) -> tuple[float, float]:
    """DeLong's (auc, variance) from the m x n comparison matrix, the definition the midrank version must match."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg))


# ---- auc_interval ---------------------------------------------------------------------------------------------


def test_auc_interval_matches_a_hand_computed_case() -> None:
    # positives 0.9, 0.6, 0.4; negatives 0.7, 0.3, 0.2: 7 of 9 pairs ordered right, AUC 7/9.
    # V10 = (1, 2/3, 2/3) -> sample variance 1/27; V01 = (1/3, 1, 1) -> 4/27; var = (1/27)/3 + (4/27)/3 = 5/81.
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.7, 0.6, 0.3, 0.4, 0.2])
    auc, low, high = auc_interval(y, s)
    se = math.sqrt(5) / 9
    assert auc == pytest.approx(7 / 9)
    assert low == pytest.approx(7 / 9 - Z95 * se)
    assert high == 1.0  # 7/9 + 0.487 is clipped


def test_auc_interval_counts_ties_as_half() -> None:
    # positives 0.5, 0.8; negatives 0.5, 0.2: pairs 0.5 + 1 + 1 + 1 = 3.5 of 4.
    # V10 = (0.75, 1), V01 = (0.75, 1): each sample variance 1/32, var = (1/32)/2 + (1/32)/2 = 1/32.
    auc, low, high = auc_interval([1, 0, 1, 0], [0.5, 0.5, 0.8, 0.2], confidence=0.9)
    half = 1.6448536269514722 * math.sqrt(1 / 32)
    assert auc == pytest.approx(0.875)
    assert (low, high) == (pytest.approx(0.875 - half), 1.0)


def test_auc_interval_equals_the_pairwise_definition_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.4).astype(np.int_)
    s = np.round(y * 0.5 + rng.normal(size=300), 1)  # rounding creates ties within and across classes
    auc, low, high = auc_interval(y, s)
    ref_auc, ref_var = _pairwise_delong(y, s)
    assert auc == pytest.approx(ref_auc)
    assert auc == pytest.approx(roc_auc_score(y, s))
    assert (low, high) == (
        pytest.approx(ref_auc - Z95 * math.sqrt(ref_var)),
        pytest.approx(ref_auc + Z95 * math.sqrt(ref_var)),
    )


def test_auc_interval_agrees_with_a_seeded_bootstrap() -> None:
    y, s = _synthetic_scores(1500, seed=11)
    auc, low, high = auc_interval(y, s)
    rng = np.random.default_rng(12)
    boot = []
    for _ in range(1000):
        idx = rng.integers(0, len(y), len(y))
        boot.append(roc_auc_score(y[idx], s[idx]))
    boot_low, boot_high = np.percentile(boot, [2.5, 97.5])
    assert 0.7 < auc < 0.82
    assert low == pytest.approx(boot_low, abs=0.02)
    assert high == pytest.approx(boot_high, abs=0.02)
    assert low < auc < high


def test_auc_interval_shrinks_as_rows_grow() -> None:
    widths = []
    for n in (200, 2000, 20000):
        _, low, high = auc_interval(*_synthetic_scores(n, seed=5))
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] / widths[2] == pytest.approx(10.0, rel=0.3)  # width ~ 1/sqrt(n)


def test_auc_interval_is_clipped_and_reflects_confidence() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    assert auc_interval(y, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]) == (1.0, 1.0, 1.0)  # perfect separation: zero variance
    assert auc_interval(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == (0.0, 0.0, 0.0)
    ys, ss = _synthetic_scores(500, seed=2)
    _, low90, high90 = auc_interval(ys, ss, confidence=0.9)
    _, low99, high99 = auc_interval(ys, ss, confidence=0.99)
    assert low99 < low90 and high90 < high99


@pytest.mark.parametrize(
    ("y", "s", "confidence", "location"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], 0.95, "y_true"),  # only one class
        ([0, 0, 0], [0.1, 0.2, 0.3], 0.95, "y_true"),
        ([1, 0, 0, 0], [0.4, 0.1, 0.2, 0.3], 0.95, "y_true"),  # one positive: no variance to estimate
        ([1, 0, 2, 0], [0.4, 0.1, 0.2, 0.3], 0.95, "y_true"),
        ([1, 1, 0, 0], [0.4, 0.1, 0.2], 0.95, "scores"),
        ([1, 1, 0, 0], [0.4, float("nan"), 0.2, 0.3], 0.95, "scores"),
        ([1, 1, 0, 0], [0.4, 0.1, 0.2, 0.3], 1.0, "confidence"),
    ],
)
def test_auc_interval_rejects_bad_input(y: list[int], s: list[float], confidence: float, location: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        auc_interval(y, s, confidence)
    assert err.value.location == location


# ---- decile_lift ----------------------------------------------------------------------------------------------


def test_decile_lift_by_hand_on_twenty_rows() -> None:
    # scores 0.95, 0.90, ..., 0.00 -> two rows per decile; 5 positives (base rate 0.25) at ranks 1, 2, 3, 6, 11
    scores = np.round(np.linspace(0.95, 0.0, 20), 2)
    y = np.zeros(20, dtype=np.int_)
    y[[0, 1, 2, 5, 10]] = 1
    shuffle = np.random.default_rng(0).permutation(20)  # input order must not matter
    rows = decile_lift(y[shuffle], scores[shuffle])
    assert [r.decile for r in rows] == list(range(1, 11))
    assert [r.rows for r in rows] == [2] * 10
    assert [r.positives for r in rows] == [2, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert [r.rate for r in rows] == [1.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert [r.lift for r in rows] == pytest.approx([4.0, 2.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    assert [r.cumulative_capture for r in rows] == pytest.approx([0.4, 0.6, 0.8, 0.8, 0.8, 1.0, 1, 1, 1, 1])
    assert (rows[0].score_max, rows[0].score_min) == (0.95, 0.9)
    assert (rows[9].score_max, rows[9].score_min) == (0.05, 0.0)


def test_decile_lift_uneven_and_tiny_sets() -> None:
    y, s = _synthetic_scores(1003, seed=4)
    rows = decile_lift(y, s)
    assert [r.rows for r in rows] == [101, 101, 101] + [100] * 7
    assert sum(r.positives for r in rows) == int(y.sum())
    assert rows[-1].cumulative_capture == pytest.approx(1.0)
    # agrees with the lift the training summary already reports (its top decile is ceil(n / 10) rows)
    assert rows[0].lift == pytest.approx(evaluate_scores(y, 1 / (1 + np.exp(-s))).lift_top_decile)
    assert len(decile_lift([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1])) == 4


def test_decile_rows_are_frozen() -> None:
    row = decile_lift([1, 0], [0.9, 0.1])[0]
    assert isinstance(row, DecileRow)
    with pytest.raises(ValueError, match="frozen"):
        row.lift = 3.0  # type: ignore[misc]


def test_decile_lift_needs_both_outcomes() -> None:
    with pytest.raises(InvalidInputError) as err:
        decile_lift([0, 0, 0], [0.1, 0.2, 0.3])
    assert err.value.location == "y_true"


# ---- top_features ---------------------------------------------------------------------------------------------

NAMES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def only_f2_matters() -> tuple[LogisticRegression, NDArray[np.float64], NDArray[np.int_]]:
    """A fitted model and held-out rows of a set where only column f2 carries the outcome."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1200, 4))
    y = (x[:, 2] + 0.5 * rng.normal(size=1200) > 0.3).astype(np.int_)
    model = LogisticRegression().fit(x[:800], y[:800])
    return model, x[800:], y[800:]


def test_top_features_ranks_the_only_informative_feature_first(
    only_f2_matters: tuple[LogisticRegression, NDArray[np.float64], NDArray[np.int_]],
) -> None:
    model, x_test, y_test = only_f2_matters
    ranked = top_features(model, x_test, y_test, NAMES, seed=1)
    assert ranked[0].feature == "f2"
    assert sorted(f.feature for f in ranked) == NAMES
    assert ranked[0].mean_drop > 0.3
    assert all(abs(f.mean_drop) < 0.02 for f in ranked[1:])
    assert [f.mean_drop for f in ranked] == sorted((f.mean_drop for f in ranked), reverse=True)
    assert all(f.std >= 0 for f in ranked)
    assert top_features(model, x_test, y_test, NAMES, seed=1) == ranked  # seeded: repeatable
    short = top_features(model, x_test, y_test, NAMES, seed=1, n_repeats=2, top=2)
    assert len(short) == 2 and short[0].feature == "f2"


def test_top_features_rejects_mismatched_input(
    only_f2_matters: tuple[LogisticRegression, NDArray[np.float64], NDArray[np.int_]],
) -> None:
    model, x_test, y_test = only_f2_matters
    with pytest.raises(InvalidInputError) as err:
        top_features(model, x_test, y_test, NAMES[:3], seed=1)
    assert err.value.location == "feature_names"
    with pytest.raises(InvalidInputError) as err:
        top_features(model, x_test, np.zeros(len(y_test), dtype=np.int_), NAMES, seed=1)
    assert err.value.location == "y"
    with pytest.raises(InvalidInputError):
        top_features(model, x_test, y_test[:-1], NAMES, seed=1)


# ---- trust_warnings -------------------------------------------------------------------------------------------


def test_trust_warnings_in_plain_language() -> None:
    assert trust_warnings(1000, 250, auc_low=0.71) == []
    assert trust_warnings(41, 20) == [
        "only 41 held-out rows (fewer than 200): AUC and lift are too noisy to trust",
        "only 20 positive outcomes among the held-out rows (fewer than 30): "
        "each decile's rate rests on a handful of people",
        "only 21 held-out rows without the outcome (fewer than 30): the AUC rests on a handful of people",
    ]
    assert trust_warnings(1000, 250, auc_low=0.48) == [
        "the AUC interval reaches 0.5: the model may rank no better than chance"
    ]
    assert trust_warnings(1000, 250, auc_low=0.5) == trust_warnings(1000, 250, auc_low=0.48)
    only_rare = trust_warnings(5000, 12, auc_low=0.6)
    assert len(only_rare) == 1 and only_rare[0].startswith("only 12 positive outcomes")
    assert trust_warnings(150, 60, min_rows=100, min_positives=50) == []
    assert "check that no feature" in trust_warnings(1000, 250, auc=0.97)[0]
    assert trust_warnings(1000, 250, auc=0.9) == []


def test_trust_warnings_reject_impossible_counts() -> None:
    with pytest.raises(InvalidInputError):
        trust_warnings(10, 11)
    with pytest.raises(InvalidInputError):
        trust_warnings(10, -1)


# ---- the full report ------------------------------------------------------------------------------------------


def test_build_classifier_report_combines_the_parts(
    only_f2_matters: tuple[LogisticRegression, NDArray[np.float64], NDArray[np.int_]],
) -> None:
    model, x_test, y_test = only_f2_matters
    report = build_classifier_report(model, x_test, y_test, NAMES, seed=1)
    scores = model.predict_proba(x_test)[:, 1]
    assert report.auc == pytest.approx(evaluate_scores(y_test, scores).roc_auc)
    assert (report.auc, report.auc_low, report.auc_high) == auc_interval(y_test, scores)
    assert report.deciles == decile_lift(y_test, scores)
    assert report.top_features[0].feature == "f2"
    assert (report.rows, report.positives) == (400, int(y_test.sum()))
    assert report.base_rate == pytest.approx(y_test.mean())
    assert report.warnings == []
    with pytest.raises(ValueError, match="frozen"):
        report.auc = 0.5  # type: ignore[misc]


def test_build_classifier_report_warns_on_a_small_noisy_set() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 4))
    y = (rng.random(300) < 0.3).astype(np.int_)  # outcomes unrelated to the features
    model = LogisticRegression().fit(x[:259], y[:259])
    report = build_classifier_report(model, x[259:], y[259:], NAMES, seed=1)
    assert report.rows == 41
    assert report.auc_low <= 0.5
    assert "only 41 held-out rows (fewer than 200): AUC and lift are too noisy to trust" in report.warnings
    assert "the AUC interval reaches 0.5: the model may rank no better than chance" in report.warnings


def test_build_classifier_report_rejects_one_class() -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(InvalidInputError) as err:
        build_classifier_report(model, [[0.2], [0.4]], [1, 1], ["f0"], seed=1)
    assert err.value.location == "y_test"


def test_render_text_shows_the_key_numbers(
    only_f2_matters: tuple[LogisticRegression, NDArray[np.float64], NDArray[np.int_]],
) -> None:
    model, x_test, y_test = only_f2_matters
    report = build_classifier_report(model, x_test, y_test, NAMES, seed=1)
    text = render_text(report, "Purchase propensity (30 days)")
    assert text.startswith("Purchase propensity (30 days)\n=============================\n")
    assert f"AUC {report.auc:.3f} (95% interval {report.auc_low:.3f}-{report.auc_high:.3f})" in text
    assert f"Held-out rows: 400 ({report.positives} positive, base rate {report.base_rate:.1%})" in text
    first, last = report.deciles[0], report.deciles[-1]
    assert f"{first.lift:.2f}x" in text and f"{last.lift:.2f}x" in text
    assert f"{first.cumulative_capture:.1%}" in text
    assert f"  1. f2  {report.top_features[0].mean_drop:+.3f}" in text
    assert "Warnings\n  (none)\n" in text
    assert len(text.splitlines()) == 4 + 3 + 10 + 2 + 4 + 2 + 1


def test_render_text_lists_warnings_and_copes_without_features() -> None:
    report = ClassifierReport(
        rows=41,
        positives=9,
        base_rate=9 / 41,
        confidence=0.95,
        auc=0.62,
        auc_low=0.41,
        auc_high=0.83,
        deciles=decile_lift([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]),
        top_features=[],
        warnings=trust_warnings(41, 9, auc_low=0.41),
    )
    text = render_text(report, "Campaign response")
    assert "AUC 0.620 (95% interval 0.410-0.830)" in text
    assert "  (none computed)" in text
    assert "  - only 41 held-out rows (fewer than 200): AUC and lift are too noisy to trust" in text
    assert "  - the AUC interval reaches 0.5: the model may rank no better than chance" in text
