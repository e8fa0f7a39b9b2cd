"""A draw that leaves a budget pool running low is one `BudgetPoolLow` count on the function's metric set (no pool
dimension: pool ids are data), and a warning naming the brand and the pool to top up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdp import topology
from cdp.budgets.ledger import BudgetPool, PoolBalance
from cdp.observability import logger, metrics
from functions.budget_watch import count_low_pool


@pytest.fixture(autouse=True)
def _empty_metric_set() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def test_a_low_pool_is_counted_without_its_id_and_named_in_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[dict[str, object]] = []
    monkeypatch.setattr(logger, "warning", lambda message, **keys: warned.append({"message": message, **keys}))
    pool = BudgetPool(brand_id="bakery", pool_id="xmas.coupons", total_minor=10_000, currency="CNY")
    # When two draws leave the pool with 5% then 4% of its total
    for available in (500, 400):
        count_low_pool(PoolBalance(pool=pool, available_minor=available, reserved_minor=0, committed_minor=9_500))
    # Then the metric set counts them under the one name, dimensioned by the function's service only
    emf = metrics.serialize_metric_set()
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == topology.METRICS_NAMESPACE
    assert directive["Metrics"] == [{"Name": topology.BUDGET_POOL_LOW_METRIC, "Unit": "Count"}]
    assert directive["Dimensions"] == [["service"]]
    assert emf[topology.BUDGET_POOL_LOW_METRIC] == [1.0, 1.0]  # type: ignore[literal-required]
    # And each warning names the brand and the pool
    assert [(w["brand_id"], w["pool_id"], w["available_minor"]) for w in warned] == [
        ("bakery", "xmas.coupons", 500),
        ("bakery", "xmas.coupons", 400),
    ]
