"""Pools running low under moto: a draw that leaves a pool under a tenth of its total, or a refused draw that finds
it so, is told to the ledger's watch (the functions count it for the `BudgetPoolLow` alarm); carving from a plan,
which leaves the pools as they are, tells nothing, and neither does a ledger without a watch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.dynamodb import DynamoBudgetLedger
from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool, PoolBalance, running_low
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb

BRAND = "bakery"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)


def pool(pool_id: str, total: int) -> BudgetPool:
    return BudgetPool(brand_id=BRAND, pool_id=pool_id, total_minor=total, currency="CNY")


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws(), atomic_dynamodb():
        found = boto3.client("dynamodb", region_name="us-east-1")
        create_table(found, topology.OFFERS_TABLE)
        yield found


class Watch:
    def __init__(self) -> None:
        self.told: list[tuple[str, int]] = []

    def __call__(self, balance: PoolBalance) -> None:
        self.told.append((balance.pool.pool_id, balance.available_minor))


def test_running_low_is_under_a_tenth_of_the_total_and_an_unfunded_pool_is_not() -> None:
    def balance(available: int, reserved: int, committed: int) -> PoolBalance:
        return PoolBalance(
            pool=pool("p", 0), available_minor=available, reserved_minor=reserved, committed_minor=committed
        )

    assert not running_low(balance(100, 600, 300)) and running_low(balance(99, 601, 300))
    assert running_low(balance(0, 0, 1_000)) and running_low(balance(-5, 0, 1_005))  # spent out, or past by a late one
    assert not running_low(balance(0, 0, 0))


def test_reserves_and_charges_that_leave_a_pool_low_are_told_and_the_others_are_not(client: Any) -> None:
    # Given a campaign's pool and a store's, and a ledger with a watch
    watch = Watch()
    ledger = DynamoBudgetLedger(topology.OFFERS_TABLE.local_name, client=client, watch=watch)
    ledger.define(pool("xmas", 10_000))
    ledger.define(pool("sh01", 100_000))
    # When a run's plan leaves a fifth of the campaign's pool / Then nothing is told
    ledger.reserve(BRAND, "plan:r1", {"xmas": 8_000, "sh01": 1_000}, T0)
    assert watch.told == []
    # When the next draws leave it under a tenth / Then each names that pool and what it has left, not the store's
    ledger.reserve(BRAND, "plan:r2", {"xmas": 1_500, "sh01": 1_000}, T0)
    ledger.charge(BRAND, "msg:1", {"xmas": 100}, T0)
    assert watch.told == [("xmas", 500), ("xmas", 400)]
    # When a draw is refused for want of money there / Then it is told as well (the pool is still running low)
    with pytest.raises(BudgetExhaustedError):
        ledger.reserve(BRAND, "plan:r3", {"xmas": 1_000}, T0)
    assert watch.told[-1] == ("xmas", 400)
    # When a hold is carved from a plan (the pools do not move) / Then nothing more is told
    told = len(watch.told)
    ledger.carve(BRAND, "plan:r2", "c1", {"xmas": 100}, T0)
    assert len(watch.told) == told
    # And once topped up, a draw leaves it above a tenth and tells nothing
    ledger.top_up(BRAND, "xmas", 10_000, "topup-1")
    ledger.charge(BRAND, "msg:2", {"xmas": 100}, T0)
    assert len(watch.told) == told


def test_an_issue_straight_from_a_pool_is_watched_and_a_store_without_a_watch_reads_nothing_more(client: Any) -> None:
    # Given a 50-yuan coupon paid from a pool of 260 yuan
    watch = Watch()
    store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client, watch=watch)
    store.budgets.define(pool("xmas", 26_000))
    offer = store.define(
        Offer.model_validate(
            {
                "brand_id": BRAND,
                "offer_id": "xmas50",
                "name": "50 off 300",
                "currency": "CNY",
                "coupon": {"amount_off_minor": 5_000, "threshold_minor": 30_000, "code_prefix": "XM"},
                "validity": {"days": 14},
                "budget_pools": ["xmas"],
            }
        ),
        "marketer",
        T0,
    )
    # When a store without a watch issues one / Then it does not read the pool back
    reads: list[str] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.GetItem", lambda **kw: reads.append(kw["params"]["Key"]["sk"]["S"])
    )
    DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client).issue(offer, "p0", "xmas:p0", T0)
    assert reads and not [key for key in reads if key.startswith("POOL#")]  # the issue's own reads only
    # When the watched store issues four more / Then only the last, leaving 10 of 260 yuan, is told
    for n in range(1, 5):
        store.issue(offer, f"p{n}", f"xmas:p{n}", T0)
    assert watch.told == [("xmas", 1_000)]
