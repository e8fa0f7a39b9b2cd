"""Next best product category (cdp.models.next_product): a hand-checked tiny model, out-of-time evaluation against
the most-popular baseline in worlds with and without co-purchase structure, the leakage rule, and persistence."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import joblib
import numpy as np
import pytest
from scipy.stats import binomtest

from cdp.errors import InvalidInputError
from cdp.models.next_product import (
    Basket,
    NextProductModel,
    evaluate_next_product,
    train_next_product,
    wilson_interval,
)

HORIZON = datetime(2025, 6, 30, tzinfo=UTC)
CUTOFF = HORIZON - timedelta(days=60)
FILLERS = {"milk": 0.12, "eggs": 0.1, "fruit": 0.1, "cheese": 0.08, "pasta": 0.08, "jam": 0.06, "tea": 0.06}


def basket(day: float, *categories: str) -> Basket:
    """A basket `day` days into the year that ends at HORIZON."""
    return Basket(HORIZON - timedelta(days=365 - day), frozenset(categories))


def shop_world(persons: int, seed: int, structure: bool) -> dict[str, list[Basket]]:
    """A year of baskets. With structure: 30% are celebrators (one cake, then candles in 60% of later baskets) and
    30% drink coffee (in 80% of their baskets); without: cake, candles and coffee land in baskets at random with the
    same overall rates. Everyone buys popular bread (40% of baskets) and a few fillers."""
    rng = np.random.default_rng(seed)
    world: dict[str, list[Basket]] = {}
    for i in range(persons):
        days = np.sort(rng.uniform(0, 365, size=2 + rng.poisson(5)))
        cake_at = int(rng.integers(0, len(days) - 1)) if rng.random() < 0.3 else None
        coffee = rng.random() < 0.3
        baskets = []
        for j, day in enumerate(days):
            categories = {c for c, p in FILLERS.items() if rng.random() < p}
            if rng.random() < 0.4:
                categories.add("bread")
            if structure:
                if cake_at is not None and j == cake_at:
                    categories.add("cake")
                if cake_at is not None and j > cake_at and rng.random() < 0.6:
                    categories.add("candles")
                if coffee and rng.random() < 0.8:
                    categories.add("coffee")
            else:
                categories |= {c for c, p in (("cake", 0.05), ("candles", 0.1), ("coffee", 0.24)) if rng.random() < p}
            baskets.append(basket(float(day), *categories))
        world[f"p{i:04d}"] = baskets
    return world


@pytest.fixture(scope="module")
def tiny() -> NextProductModel:
    """Four persons: two buy cake then candles (one with bread), one buys bread twice, one coffee twice (then bread)."""
    return NextProductModel.fit(
        {
            "p1": [basket(1, "cake"), basket(2, "candles")],
            "p2": [basket(1, "cake", "bread"), basket(2, "candles")],
            "p3": [basket(1, "bread"), basket(2, "bread")],
            "p4": [basket(1, "coffee"), basket(2, "coffee", "bread")],
        }
    )


def test_tiny_model_by_hand(tiny: NextProductModel) -> None:
    # popularity: persons who bought it / 4
    assert tiny.popularity == {"cake": 0.5, "candles": 0.5, "bread": 0.75, "coffee": 0.25}
    # cake -> candles: P = (2 + 10 x 0.5) / (2 + 10) = 7/12, gain (7/12 - 1/2) / (1/2) = 1/6
    # coffee -> bread: P = (1 + 10 x 0.75) / (1 + 10), gain (8.5/11 - 3/4) / (1/4) = 1/11
    # bread -> coffee: P = (1 + 10 x 0.25) / (3 + 10), gain (3.5/13 - 1/4) / (3/4) = 1/39
    # nothing points back in time (candles -> cake), and cake -> bread is below bread's own 3/4
    assert tiny.association == {
        "cake": {"candles": pytest.approx(1 / 6)},
        "coffee": {"bread": pytest.approx(1 / 11)},
        "bread": {"coffee": pytest.approx(1 / 39)},
    }
    # repeat: coffee's buyer came back for it: (1 + 10 x 0.25) / (1 + 10) = 3.5/11, gain (3.5/11 - 1/4) / (3/4) = 1/11
    assert tiny.repeat == {"coffee": pytest.approx(1 / 11)}

    # a cake buyer: candles 0.5/6 + 0.2 x 0.5; bread 0.2 x 0.75; cake 0.2 x 0.5 (no repeat); coffee 0.2 x 0.25
    cake_buyer = [basket(10, "cake")]
    assert tiny.recommend(cake_buyer, k=4) == [
        ("candles", pytest.approx(0.5 / 6 + 0.1)),
        ("bread", pytest.approx(0.15)),
        ("cake", pytest.approx(0.1)),
        ("coffee", pytest.approx(0.05)),
    ]
    assert [c for c, _ in tiny.recommend(cake_buyer, k=2, exclude=frozenset({"candles"}))] == ["bread", "cake"]
    # a coffee drinker: bread 0.5/11 + 0.15; cake and candles tie at 0.1 (by name); coffee 0.3/11 + 0.05
    assert tiny.recommend([basket(10, "coffee")], k=4) == [
        ("bread", pytest.approx(0.5 / 11 + 0.15)),
        ("cake", pytest.approx(0.1)),
        ("candles", pytest.approx(0.1)),
        ("coffee", pytest.approx(0.3 / 11 + 0.05)),
    ]


def test_empty_or_unknown_history_falls_back_to_popularity(tiny: NextProductModel) -> None:
    assert tiny.most_popular(3) == [("bread", 0.75), ("cake", 0.5), ("candles", 0.5)]
    assert tiny.recommend([], k=3) == tiny.most_popular(3)
    assert tiny.recommend([basket(5, "kombucha")], k=3) == tiny.most_popular(3)
    assert tiny.recommend([], k=3, exclude=frozenset({"bread"})) == [("cake", 0.5), ("candles", 0.5), ("coffee", 0.25)]


def test_scores_are_normalized_and_ordered() -> None:
    model = NextProductModel.fit(shop_world(300, seed=1, structure=True))
    for history in ([basket(1, "cake")], [basket(1, "coffee"), basket(9, "coffee", "bread")], []):
        recommended = model.recommend(history, k=5)
        assert len(recommended) == 5
        assert all(0.0 <= score <= 1.0 for _, score in recommended)
        assert [s for _, s in recommended] == sorted((s for _, s in recommended), reverse=True)


def test_co_purchase_structure_beats_most_popular() -> None:
    # Given a world where cake buyers later buy candles and coffee drinkers repeat coffee
    world = shop_world(800, seed=2, structure=True)
    # When evaluated out of time: fit before the cutoff, judged on the 60 days after it
    metrics = evaluate_next_product(world, CUTOFF, horizon_days=60, k=3)
    # Then the model finds more of what people buy next than the most popular categories do, beyond noise
    assert metrics.persons_evaluated > 300 and metrics.warnings == []
    assert metrics.hit_rate > metrics.baseline_hit_rate
    assert metrics.difference_interval[0] > 0
    assert metrics.hit_rate_difference == pytest.approx(metrics.hit_rate - metrics.baseline_hit_rate)
    assert metrics.precision_at_k > metrics.baseline_precision_at_k
    low, high = metrics.hit_rate_interval
    assert low < metrics.hit_rate < high
    # and it learned the structure: candles for a cake buyer, coffee for a coffee drinker
    model = NextProductModel.fit(world)
    assert model.recommend([basket(300, "cake")], k=1)[0][0] == "candles"
    assert model.recommend([basket(200, "coffee"), basket(300, "coffee")], k=1)[0][0] == "coffee"


def test_no_structure_is_not_worse_than_most_popular() -> None:
    world = shop_world(800, seed=3, structure=False)
    metrics = evaluate_next_product(world, CUTOFF, horizon_days=60, k=3)
    assert metrics.hit_rate >= metrics.baseline_hit_rate - 0.02
    assert metrics.difference_interval[1] >= 0


def test_baskets_at_or_after_the_cutoff_never_reach_the_evaluated_model() -> None:
    # Given a world, and the same world with leaks planted: at the cutoff exactly, every person "buys" what they will
    # buy in the horizon plus a new category, and after the horizon they buy that new category again
    world = shop_world(300, seed=4, structure=True)
    end = CUTOFF + timedelta(days=60)
    leaked = {}
    for person, baskets in world.items():
        future = frozenset().union(*(b.categories for b in baskets if CUTOFF < b.at <= end))
        planted = [Basket(CUTOFF, future | {"leak"}), Basket(end + timedelta(days=1), frozenset({"leak"}))]
        leaked[person] = [*baskets, *planted]
    # When both are evaluated / Then every metric is the same
    assert evaluate_next_product(leaked, CUTOFF, 60) == evaluate_next_product(world, CUTOFF, 60)
    # while a model that was given those baskets would have learned from them
    assert "leak" in NextProductModel.fit(leaked).popularity


def test_train_evaluates_on_the_holdout_then_refits_up_to_the_horizon() -> None:
    world = shop_world(300, seed=5, structure=True)
    world["newcomer"] = [basket(340, "gift cards")]  # only inside the holdout window
    world["late"] = [basket(100, "bread"), Basket(HORIZON + timedelta(days=1), frozenset({"future"}))]
    model, metrics = train_next_product(world, HORIZON, holdout_days=60, k=3)
    assert metrics == evaluate_next_product(world, CUTOFF, 60, 3)
    assert metrics.cutoff == CUTOFF and metrics.training_persons < model.persons
    assert "gift cards" in model.popularity and "future" not in model.popularity


def test_few_persons_warn_and_none_is_refused() -> None:
    world = shop_world(60, seed=6, structure=True)
    metrics = evaluate_next_product(world, CUTOFF, 60)
    assert metrics.persons_evaluated < 100
    assert len(metrics.warnings) == 1 and "persons evaluated" in metrics.warnings[0]
    with pytest.raises(InvalidInputError):
        evaluate_next_product(world, HORIZON + timedelta(days=30), 60)  # nobody buys after it
    with pytest.raises(InvalidInputError):
        evaluate_next_product(world, HORIZON - timedelta(days=400), 60)  # nothing before it
    with pytest.raises(InvalidInputError):
        evaluate_next_product(world, CUTOFF, 0)


def test_wilson_interval() -> None:
    # the same as scipy's (not a runtime dependency of this module)
    expected = binomtest(81, 263).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(81, 263) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_round_trip_through_joblib_gives_the_same_recommendations() -> None:
    model = NextProductModel.fit(shop_world(200, seed=7, structure=True))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert loaded == model
    history = [basket(10, "cake"), basket(20, "coffee")]
    assert loaded.recommend(history, k=5) == model.recommend(history, k=5)
    assert replace(model, weights=(1.0, 0.0, 0.0)) != model
