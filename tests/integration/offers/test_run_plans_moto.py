"""A campaign run reserves its coupons' worst case for every treated person before its first send (one plan hold per
offer, all or nothing), each coupon issued for the run is carved from the plan (the pool does not move again), and
the run's end gives the plan's rest back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import OfferService, RunPlans, plan_id_for
from cdp.org import load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
T0 = datetime(2026, 12, 7, 4, tzinfo=UTC)


class Quiet(EventPublisher):
    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        return ["0" for _ in events]


@pytest.fixture
def world() -> Iterator[tuple[OfferService, RunPlans, DynamoOfferStore]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        people = InMemoryProfiles(
            [
                Profile(
                    person_id=f"p{i}",
                    brand_id=BRAND,
                    created_at=T0,
                    updated_at=T0,
                    identifiers=[f"phone:+861380013800{i}"],
                )
                for i in range(4)
            ]
        )
        service = OfferService(store, store.budgets, people, Quiet(), load_org(), now=lambda: T0)
        store.budgets.define(BudgetPool(brand_id=BRAND, pool_id="winter", total_minor=10_000, currency="CNY"))
        for offer_id in ("c20", "c30"):
            raw: dict[str, Any] = {
                "brand_id": BRAND,
                "offer_id": offer_id,
                "name": offer_id,
                "currency": "CNY",
                "coupon": {"amount_off_minor": int(offer_id[1:]) * 100},
                "validity": {"days": 7},
                "budget_pools": ["winter"],
            }
            store.define(Offer.model_validate(raw), "test", T0)
        yield service, RunPlans(store, store.budgets), store


def available(store: DynamoOfferStore) -> tuple[int, int, int]:
    found = store.budgets.balance(BRAND, "winter")
    assert found is not None
    return found.available_minor, found.reserved_minor, found.committed_minor


def test_a_run_reserves_its_plan_issues_carve_from_it_and_its_end_gives_the_rest_back(world: Any) -> None:
    service, plans, store = world
    # 3 treated persons x 20.00 reserved before the first send
    assert plans.reserve(BRAND, "run-1", ["c20"], 3, T0) == 6_000
    assert available(store) == (4_000, 6_000, 0)
    # two coupons issued for the run: carved from the plan, the pool does not move
    for person in ("p0", "p1"):
        service.issue_to(BRAND, "c20", person, "run-1", plan_id=plan_id_for("run-1", "c20"))
    assert available(store) == (4_000, 6_000, 0)
    # one is redeemed (2,000 spent), the run ends: the plan's unused 2,000 goes back; the other coupon keeps its hold
    entry = store.entry(BRAND, "p0", service.issued_entry(BRAND, "c20", "p0", "run-1").issue_id)
    store.redeem(entry, "order-1", 2_000, T0)
    plans.release(BRAND, "run-1", ["c20"], T0)
    assert available(store) == (6_000, 2_000, 2_000)
    # an issue after the run ended draws from the pool as any issue does
    service.issue_to(BRAND, "c20", "p2", "run-1", plan_id=plan_id_for("run-1", "c20"))
    assert available(store) == (4_000, 4_000, 2_000)


def test_a_plan_the_pools_cannot_cover_fails_the_selection_with_nothing_held(world: Any) -> None:
    _, plans, store = world
    with pytest.raises(BudgetExhaustedError, match="winter"):
        plans.reserve(BRAND, "run-2", ["c20", "c30"], 3, T0)  # 6,000 + 9,000 > 10,000
    assert available(store) == (10_000, 0, 0)


def test_more_issues_than_the_plan_holds_are_refused_naming_the_plan(world: Any) -> None:
    service, plans, _ = world
    plans.reserve(BRAND, "run-3", ["c20"], 1, T0)
    plan = plan_id_for("run-3", "c20")
    service.issue_to(BRAND, "c20", "p0", "run-3", plan_id=plan)
    with pytest.raises(BudgetExhaustedError, match="plan plan:run-3:c20"):
        service.issue_to(BRAND, "c20", "p1", "run-3", plan_id=plan)


def test_what_a_runs_offers_cost_is_read_from_their_plans(world: Any) -> None:
    service, plans, store = world
    raw = {
        "brand_id": BRAND,
        "offer_id": "mug",
        "name": "a mug",
        "currency": "CNY",
        "gift": {"sku": "MUG-1", "name": "mug"},
        "unit_cost_minor": 1_500,
        "validity": {"days": 7},
        "budget_pools": ["winter"],
    }
    store.define(Offer.model_validate(raw), "test", T0)
    plans.reserve(BRAND, "run-4", ["c20", "mug"], 2, T0)
    for offer_id, persons in (("c20", ("p0", "p1")), ("mug", ("p0", "p2"))):
        for person in persons:
            service.issue_to(BRAND, offer_id, person, "run-4", plan_id=plan_id_for("run-4", offer_id))

    def redeem(offer_id: str, person: str, order: str, amount: int) -> None:
        entry = store.entry(BRAND, person, service.issued_entry(BRAND, offer_id, person, "run-4").issue_id)
        store.redeem(entry, order, amount, T0)

    # two coupons take 20.00 and 12.50 off (one redemption delivered twice); two mugs are handed over
    redeem("c20", "p0", "o1", 2_000)
    redeem("c20", "p0", "o1", 2_000)
    redeem("c20", "p1", "o2", 1_250)
    redeem("mug", "p0", "o1", 1_500)
    redeem("mug", "p2", "o3", 1_500)
    plans.release(BRAND, "run-4", ["c20", "mug"], T0)
    spent = {s.offer_id: (s.kind, s.spent_minor, s.in_cost) for s in plans.spent(BRAND, "run-4", ["c20", "mug"])}
    # the coupons' discounts are what the orders' revenue already lost: reported, not counted in the cost again
    assert spent == {"c20": ("coupon", 3_250, False), "mug": ("gift", 3_000, True)}
    assert plans.spent(BRAND, "run-none", ["c20"]) == []  # a run that reserved no plan
