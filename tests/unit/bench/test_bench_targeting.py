"""The targeting benchmark at a small size: each world's two picks are judged by its own truth and the summary over
worlds is built from those worlds (the figures themselves: `cdp bench --suite targeting`)."""

from __future__ import annotations

import statistics

import pytest

from cdp_local.bench_targeting import REACH_SHARE, one_world, targeting_benchmark

CUSTOMERS = 800  # the smallest brand whose randomized campaigns train both models


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, float | str]]:
    return targeting_benchmark(worlds=2, customers=CUSTOMERS)


def test_each_world_picks_the_same_number_by_both_rankings_and_judges_them_by_its_truth() -> None:
    # Given one seeded world
    world = one_world(7, CUSTOMERS)
    # Then both rankings picked the budget's share of its eligible persons
    assert world["persons_each"] == round(REACH_SHARE * world["eligible"]) > 0
    # And the difference is the truth of one pick minus the other's, inside its one-send interval
    expected = world["true_incremental_orders_uplift_ranking"] - world["true_incremental_orders_response_ranking"]
    assert world["difference"] == pytest.approx(expected, abs=0.11)
    low, high = world["difference_95"]
    assert low <= world["difference"] <= high


def test_the_summary_over_worlds_is_the_mean_of_the_worlds_with_its_interval(
    results: dict[str, dict[str, float | str]],
) -> None:
    value = {name: float(metric["value"]) for name, metric in results.items() if not isinstance(metric["value"], str)}
    per_world = [v for name, v in value.items() if name.startswith("targeting.world_")]
    assert len(per_world) == value["targeting.worlds"] == 2
    assert value["targeting.uplift_minus_response"] == pytest.approx(statistics.fmean(per_world), abs=0.06)
    assert value["targeting.uplift_minus_response_low"] <= value["targeting.uplift_minus_response"]
    assert value["targeting.uplift_minus_response"] <= value["targeting.uplift_minus_response_high"]
    assert value["targeting.worlds_uplift_ahead"] == sum(d > 0 for d in per_world)


def test_one_world_gives_no_interval_over_worlds() -> None:
    with pytest.raises(ValueError, match="at least 2 worlds"):
        targeting_benchmark(worlds=1, customers=CUSTOMERS)
