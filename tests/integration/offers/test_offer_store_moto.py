"""Offers issued to members' accounts on the offers table under moto: a code allocated exactly once, the stock, the
per-person limit and the budget all hold under parallel issues; an issue asked again is the same issue; imported
codes are taken in order; a redemption spends the real discount once and releases the rest; expiry releases the
whole hold; a late redemption of an expired coupon is still charged."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.wallet import OfferUnavailableError, RedemptionError
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb

BRAND = "bakery"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)


def coupon(offer_id: str = "xmas50", **changes: Any) -> Offer:
    raw: dict[str, Any] = {
        "brand_id": BRAND,
        "offer_id": offer_id,
        "name": "50 off 300",
        "currency": "CNY",
        "coupon": {"amount_off_minor": 5_000, "threshold_minor": 30_000, "code_prefix": "XM"},
        "validity": {"days": 14},
        "budget_pools": ["xmas"],
    }
    raw.update(changes)
    return Offer.model_validate(raw)


@pytest.fixture
def store() -> Iterator[DynamoOfferStore]:
    with mock_aws(), atomic_dynamodb():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        found = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        found.budgets.define(BudgetPool(brand_id=BRAND, pool_id="xmas", total_minor=100_000, currency="CNY"))
        yield found


def balance(store: DynamoOfferStore, pool: str = "xmas") -> tuple[int, int, int]:
    found = store.budgets.balance(BRAND, pool)
    assert found is not None
    return found.available_minor, found.reserved_minor, found.committed_minor


def test_an_issue_allocates_a_code_reserves_the_budget_and_is_the_same_issue_when_asked_again(
    store: DynamoOfferStore,
) -> None:
    offer = store.define(coupon(), "marketer", T0)
    entry, new = store.issue(offer, "p1", "xmas:p1", T0)
    assert new and entry.code is not None and entry.code.startswith("XM") and len(entry.code) == 12
    assert (entry.valid_from, entry.valid_until) == (T0, T0 + timedelta(days=14))
    again, new_again = store.issue(offer, "p1", "xmas:p1", T0 + timedelta(minutes=1))
    assert (again, new_again) == (entry, False)
    assert balance(store) == (95_000, 5_000, 0)
    stored = store.get(BRAND, "xmas50")
    assert stored is not None and stored.issued == 1
    assert store.by_code(BRAND, entry.code) == entry
    assert store.wallet(BRAND, "p1") == [entry]


def test_the_per_person_limit_the_stock_and_retirement_stop_issues(store: DynamoOfferStore) -> None:
    offer = store.define(coupon(stock=3, per_person_limit=2), "marketer", T0)
    store.issue(offer, "p1", "a", T0)
    store.issue(offer, "p1", "b", T0)
    with pytest.raises(OfferUnavailableError, match="already has 2") as limit:
        store.issue(offer, "p1", "c", T0)
    assert limit.value.reason == "person_limit"
    store.issue(offer, "p2", "d", T0)
    with pytest.raises(OfferUnavailableError, match="out of stock") as stock:
        store.issue(offer, "p3", "e", T0)
    assert stock.value.reason == "out_of_stock"
    other = store.define(coupon("other"), "marketer", T0)
    store.retire(BRAND, "other")
    with pytest.raises(OfferUnavailableError, match="retired"):
        store.issue(other, "p1", "f", T0)
    assert balance(store) == (85_000, 15_000, 0)  # only the three issued hold budget


def test_parallel_issues_never_pass_the_stock_the_budget_or_a_persons_limit(store: DynamoOfferStore) -> None:
    # Given a budget for 8 coupons more than the stock of 30 allows, and 16 workers issuing at once
    store.budgets.define(BudgetPool(brand_id=BRAND, pool_id="flash", total_minor=40_000, currency="CNY"))
    offer = store.define(coupon("flash", budget_pools=["flash"], stock=30), "marketer", T0)
    start = threading.Barrier(16)
    issued: list[str] = []
    refused: list[str] = []

    def worker(w: int) -> None:
        start.wait()
        for i in range(4):
            try:
                entry, _ = store.issue(offer, f"w{w}-p{i}", f"w{w}-{i}", T0)
                issued.append(entry.code or "")
            except (BudgetExhaustedError, OfferUnavailableError) as exc:
                refused.append(type(exc).__name__)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(worker, range(16)))
    # Then the budget (8 x 5,000) bounds them: 8 issued, each with its own code, and the pool balances
    assert len(issued) == 8 == len(set(issued)) and len(refused) == 56
    assert balance(store, "flash") == (0, 40_000, 0)
    # and one person asked for by 8 workers at once, limit 2, gets 2
    limited = store.define(coupon("limited", per_person_limit=2), "marketer", T0)
    start2 = threading.Barrier(8)
    got: list[bool] = []

    def same_person(w: int) -> None:
        start2.wait()
        with contextlib.suppress(OfferUnavailableError):
            got.append(store.issue(limited, "vip", f"vip-{w}", T0)[1])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(same_person, range(8)))
    assert got == [True, True]


def test_imported_codes_are_taken_in_order_until_none_is_left(store: DynamoOfferStore) -> None:
    raw = coupon("pos-codes").model_dump()
    raw["coupon"] |= {"codes": "imported", "code_prefix": ""}
    store.define(Offer.model_validate(raw), "marketer", T0)
    offer = store.import_codes(BRAND, "pos-codes", ["POS-001", "POS-002", "POS-003"])
    assert offer.codes_imported == 3
    codes = [store.issue(offer, f"p{i}", f"i{i}", T0)[0].code for i in range(3)]
    assert codes == ["POS-001", "POS-002", "POS-003"]
    with pytest.raises(OfferUnavailableError, match="no imported code left"):
        store.issue(offer, "p9", "i9", T0)


def test_a_redemption_spends_the_real_discount_once_and_expiry_releases_the_rest(store: DynamoOfferStore) -> None:
    raw = coupon("pct").model_dump()
    raw["coupon"] = {"percent_off": 20, "max_discount_minor": 8_000}
    offer = store.define(Offer.model_validate(raw), "marketer", T0)
    redeemed, kept, late = (store.issue(offer, p, f"pct:{p}", T0)[0] for p in ("ann", "bob", "cem"))
    assert balance(store) == (76_000, 24_000, 0)
    # When ann's code comes back on an order that took 32 yuan off (and the till sends it twice)
    assert redeemed.code is not None
    found = store.by_code(BRAND, redeemed.code)
    assert found is not None
    done, first = store.redeem(found, "order-1", 3_200, T0 + timedelta(days=2))
    assert first and done.state == "redeemed" and store.redeem(found, "order-1", 3_200, T0)[1] is False
    with pytest.raises(RedemptionError, match="redeemed for order order-1"):
        store.redeem(found, "order-2", 3_200, T0)
    assert balance(store) == (80_800, 16_000, 3_200)  # 3,200 spent, the other 4,800 of her hold back
    # When the 14 days are up: bob's and cem's expire and their holds go back
    due = store.due_expiries(T0 + timedelta(days=14), 100)
    assert sorted(e.person_id for e in due) == ["bob", "cem"]
    assert all(store.expire(e, T0 + timedelta(days=14)) for e in due)
    assert store.due_expiries(T0 + timedelta(days=30), 100) == []
    assert balance(store) == (96_800, 0, 3_200)
    assert [e.state for e in store.wallet(BRAND, "bob")] == ["expired"]
    # And a till that took cem's expired code anyway: the discount is charged, once
    store.redeem(late, "order-9", 1_000, T0 + timedelta(days=15))
    store.redeem(late, "order-9", 1_000, T0 + timedelta(days=15))
    assert balance(store) == (95_800, 0, 4_200)
    assert kept.state == "issued"


def test_an_ended_offer_issues_nothing_and_a_code_the_brand_already_uses_is_skipped(store: DynamoOfferStore) -> None:
    ended = store.define(coupon("ended", validity={"ends_at": "2026-12-01T00:00:00Z"}), "marketer", T0)
    with pytest.raises(OfferUnavailableError, match="ended") as caught:
        store.issue(ended, "p1", "e1", T0)
    assert caught.value.reason == "ended"
    # Given two offers importing the same till code: the second skips it and issues its next one
    for offer_id in ("pos-a", "pos-b"):
        raw = coupon(offer_id).model_dump()
        raw["coupon"] |= {"codes": "imported", "code_prefix": ""}
        store.define(Offer.model_validate(raw), "marketer", T0)
    a = store.import_codes(BRAND, "pos-a", ["SAME-1"])
    b = store.import_codes(BRAND, "pos-b", ["SAME-1", "B-2"])
    assert store.issue(a, "p1", "a1", T0)[0].code == "SAME-1"
    assert store.issue(b, "p2", "b1", T0)[0].code == "B-2"
    assert store.by_code(BRAND, "SAME-1") is not None and store.by_code(BRAND, "SAME-1").person_id == "p1"  # type: ignore[union-attr]
