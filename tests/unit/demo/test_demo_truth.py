"""Pairwise identity-resolution scores and the linkable truth, on hand-made examples with known answers."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp_local.demo import SyntheticBrand, identifier_key, linkable_truth, pairwise_scores

TRUTH = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}


def test_perfect_resolution_scores_one_whatever_the_labels() -> None:
    # Given a resolution that groups exactly like the truth, under other names
    resolved = {"a1": "p9", "a2": "p9", "a3": "p9", "b1": "p3", "b2": "p3", "c1": "p1"}
    # When scored
    scores = pairwise_scores(TRUTH, resolved)
    # Then every pair is found and none is wrong
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs, scores.identifiers) == (4, 4, 4, 6)


def test_one_false_merge_costs_precision_only() -> None:
    # Given B and C wrongly merged into one profile
    resolved = {"a1": "p1", "a2": "p1", "a3": "p1", "b1": "p2", "b2": "p2", "c1": "p2"}
    # When scored
    scores = pairwise_scores(TRUTH, resolved)
    # Then the two pairs (b1,c1), (b2,c1) are false: precision 4/6, recall 1
    assert scores.predicted_pairs == 6
    assert scores.correct_pairs == 4
    assert scores.precision == pytest.approx(4 / 6)
    assert scores.recall == 1.0
    assert scores.f1 == pytest.approx(2 * (4 / 6) / (4 / 6 + 1))


def test_one_split_costs_recall_only() -> None:
    # Given A split into {a1, a2} and {a3}
    resolved = {"a1": "p1", "a2": "p1", "a3": "p4", "b1": "p2", "b2": "p2", "c1": "p3"}
    # When scored
    scores = pairwise_scores(TRUTH, resolved)
    # Then 2 of A's 3 pairs are missed: recall 2/4, precision 1
    assert scores.precision == 1.0
    assert scores.recall == pytest.approx(2 / 4)
    assert scores.f1 == pytest.approx(2 * 0.5 / 1.5)


def test_only_identifiers_in_both_maps_are_scored() -> None:
    # Given a resolution that never saw b2 and knows an identifier outside the truth
    resolved = {"a1": "p1", "a2": "p1", "a3": "p1", "b1": "p2", "c1": "p3", "zz": "p1"}
    # When scored
    scores = pairwise_scores(TRUTH, resolved)
    # Then b2 and zz are ignored and what remains is perfect
    assert scores.identifiers == 5
    assert (scores.true_pairs, scores.precision, scores.recall) == (3, 1.0, 1.0)


def test_no_pairs_at_all_means_nothing_wrong_and_nothing_missed() -> None:
    # Given singletons only (and then nothing in common)
    # When scored
    alone = pairwise_scores({"x": "X", "y": "Y"}, {"x": "1", "y": "2"})
    empty = pairwise_scores({}, {"x": "1"})
    # Then the conventions hold: precision and recall are 1.0 when there is no pair to judge
    assert (alone.precision, alone.recall, alone.f1, alone.true_pairs) == (1.0, 1.0, 1.0, 0)
    assert empty.identifiers == 0


def _brute_force(truth: dict[str, str], resolved: dict[str, str]) -> tuple[int, int, int]:
    common = sorted(k for k in truth if k in resolved)
    pairs = list(combinations(common, 2))
    true_pairs = sum(truth[a] == truth[b] for a, b in pairs)
    predicted = sum(resolved[a] == resolved[b] for a, b in pairs)
    correct = sum(truth[a] == truth[b] and resolved[a] == resolved[b] for a, b in pairs)
    return true_pairs, predicted, correct


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30),
)
def test_contingency_counts_match_the_quadratic_definition(labels: dict[int, tuple[int, int]]) -> None:
    # Given random truth and resolution labels for the same identifiers
    truth = {f"k{k}": f"T{t}" for k, (t, _) in labels.items()}
    resolved = {f"k{k}": f"R{r}" for k, (_, r) in labels.items()}
    # When scored with contingency counts
    scores = pairwise_scores(truth, resolved)
    # Then the pair counts equal the O(n^2) count over every pair
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == _brute_force(truth, resolved)


def _event(*ids: tuple[str, str]) -> dict[str, Any]:
    return {"identifiers": [{"type": t, "value": v} for t, v in ids]}


def test_linkable_truth_drops_lone_identifiers_and_splits_islands() -> None:
    # Given person A seen as phone+device, then e-mail alone (a typo-like island); person B shares a tablet with A
    phone_a, device_a, email_a = "13800138000", "dev-a", "a@qq.com"
    phone_b, member_b, tablet = "13900139000", "MC1", "tablet-1"
    keys = {
        "phone_a": identifier_key("phone", phone_a),
        "device_a": identifier_key("device_id", device_a),
        "email_a": identifier_key("email", email_a),
        "phone_b": identifier_key("phone", phone_b),
        "member_b": identifier_key("member_card", member_b),
    }
    truth = {keys["phone_a"]: "A", keys["device_a"]: "A", keys["email_a"]: "A", keys["phone_b"]: "B"}
    truth[keys["member_b"]] = "B"
    events = [
        _event(("phone", phone_a), ("device_id", device_a)),
        _event(("email", email_a)),
        _event(("phone", "+86 139 0013 9000"), ("member_card", member_b)),
        _event(("phone", phone_a), ("device_id", tablet)),
        _event(("phone", phone_b), ("device_id", tablet)),
    ]
    # When restricted to what the events can link (the tablet being shared)
    linkable = linkable_truth(truth, events, shared={identifier_key("device_id", tablet)})
    # Then the lone e-mail is gone, A and B keep their linked pairs, and the tablet links nobody
    assert set(linkable) == {keys["phone_a"], keys["device_a"], keys["phone_b"], keys["member_b"]}
    assert linkable[keys["phone_a"]] == linkable[keys["device_a"]]
    assert linkable[keys["phone_b"]] == linkable[keys["member_b"]]
    assert linkable[keys["phone_a"]] != linkable[keys["phone_b"]]


def test_linkable_truth_splits_a_person_seen_as_two_unconnected_islands() -> None:
    # Given one person whose app pair and marketplace pair never meet in any event
    truth = {
        identifier_key("phone", "13800138000"): "A",
        identifier_key("device_id", "d1"): "A",
        identifier_key("platform_buyer_id", "tb1", "tmall"): "A",
        identifier_key("email", "x@qq.com"): "A",
    }
    events = [
        _event(("phone", "13800138000"), ("device_id", "d1")),
        {
            "identifiers": [
                {"type": "platform_buyer_id", "value": "tb1", "scope": "tmall"},
                {"type": "email", "value": "x@qq.com"},
            ]
        },
    ]
    # When restricted
    linkable = linkable_truth(truth, events)
    # Then the person counts as two clusters: a resolver cannot be blamed for not joining them
    assert len(set(linkable.values())) == 2
    assert pairwise_scores(linkable, {k: "one" for k in truth}).precision == pytest.approx(2 / 6)


def test_brand_scores_its_own_truth_as_perfect_and_singletons_as_zero_recall(brand: SyntheticBrand) -> None:
    # Given the truth itself and a resolution that never merges anything
    # When both are scored against the brand
    perfect = brand.score(dict(brand.truth))
    nothing = brand.score({key: key for key in brand.truth})
    # Then the first is perfect on both views, the second finds no pair
    assert perfect.all.f1 == 1.0
    assert perfect.linkable.recall == 1.0
    assert nothing.all.recall == 0.0
    assert nothing.all.precision == 1.0
    # and the linkable view is smaller than the whole truth (lone typos, unbound marketplace buyers)
    assert 0 < len(brand.linkable_truth) < len(brand.truth)
    assert perfect.linkable.true_pairs < perfect.all.true_pairs
