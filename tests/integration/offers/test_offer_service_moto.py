"""The offer service on the offers table under moto: the catalog checks its budget pools, issues put a
`coupon_issued` (or `points_changed`) event on the bus for the person's timeline, an order carrying the code redeems
it for the order's discount, expiry on time emits `coupon_expired`, and every route checks the key's scope and brand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetPool
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.events import parse_event
from cdp.ingest.ports import ApiClient
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import CodesRequest, IssueRequest, OfferService, TopUpRequest
from cdp.org import ScopeRef, load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)
ADMIN = ApiClient("marketer", frozenset({"offers:read", "offers:write", "offers:issue"}))


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        for pack in events:
            self.events.extend(getattr(pack, "events", []))
        return [str(i) for i in range(len(events))]


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def world() -> Iterator[tuple[OfferService, Bus, Clock]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        people = InMemoryProfiles(
            [
                Profile(person_id=p, brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=[phone])
                for p, phone in (("ann", "phone:+8613800138000"), ("bob", "phone:+8613911118888"))
            ]
        )
        bus, clock = Bus(), Clock()
        yield OfferService(store, store.budgets, people, bus, load_org(), now=clock), bus, clock


def offer(**changes: Any) -> Offer:
    raw: dict[str, Any] = {
        "brand_id": BRAND,
        "offer_id": "xmas50",
        "name": "50 off 300",
        "currency": "CNY",
        "coupon": {"amount_off_minor": 5_000, "threshold_minor": 30_000},
        "validity": {"days": 14},
        "budget_pools": ["xmas"],
        "campaign_id": "xmas_cakes",
    }
    return Offer.model_validate(raw | changes)


def pool(total: int = 20_000) -> BudgetPool:
    return BudgetPool(brand_id=BRAND, pool_id="xmas", total_minor=total, currency="CNY", form="coupon")


def test_an_offer_names_pools_that_exist_in_its_currency(world: Any) -> None:
    service, _, _ = world
    with pytest.raises(InvalidInputError, match="no budget pool xmas") as missing:
        service.define(offer(), ADMIN)
    assert missing.value.location == "budget_pools[0]"
    service.define_pool(pool().model_copy(update={"currency": "USD"}), ADMIN)
    with pytest.raises(InvalidInputError, match="pool xmas is in USD"):
        service.define(offer(), ADMIN)


def test_issue_redeem_by_order_and_expire_with_their_events(world: Any) -> None:
    service, bus, clock = world
    service.define_pool(pool(), ADMIN)
    service.define(offer(), ADMIN)
    ann = service.issue(BRAND, "xmas50", IssueRequest(person_id="ann", issue_id="api-1"), ADMIN)
    again = service.issue(BRAND, "xmas50", IssueRequest(person_id="ann", issue_id="api-1"), ADMIN)
    bob = service.issue(BRAND, "xmas50", IssueRequest(person_id="bob"), ADMIN)
    assert ann.new and not again.new and again.entry == ann.entry
    issued = [e for e in bus.events if e.event_type == "coupon_issued"]
    # one event id per issue: a request asked again publishes it again (identity applies an event id once)
    assert len({e.event_id for e in issued}) == 2 and len(issued) == 3
    assert issued[0].properties.code == ann.entry.code and issued[0].identifiers[0].value == "+8613800138000"
    # When ann's order uses her code: 368 of lines, 318 paid
    order = parse_event(
        {
            "event_id": "pos-1",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "occurred_at": (T0 + timedelta(days=1)).isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138000"}],
            "properties": {
                "order_id": "SH01-1",
                "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 36_800}],
                "total_minor": 31_800,
                "currency": "CNY",
                "coupon_code": ann.entry.code,
            },
        }
    )
    assert service.redeem_from(order) == f"{ann.entry.issue_id} redeemed for SH01-1"
    assert service.redeem_from(order) is None  # delivered again: once
    # When the 14 days are up, bob's expires
    clock.at = T0 + timedelta(days=14)
    assert service.expire_due() == 1
    assert [e.properties.issue_id for e in bus.events if e.event_type == "coupon_expired"] == [bob.entry.issue_id]
    balance = service.pools(BRAND, ADMIN).pools[0]
    assert (balance.available_minor, balance.reserved_minor, balance.committed_minor) == (15_000, 0, 5_000)
    wallet = service.wallet(BRAND, "ann", ADMIN)
    assert wallet.counts == {"redeemed": 1}


def test_points_are_granted_at_once_and_imported_codes_only_go_to_offers_that_take_them(world: Any) -> None:
    service, bus, _ = world
    service.define_pool(pool(), ADMIN)
    points = offer(offer_id="review-bonus", coupon=None, points={"points": 200, "program": "app"}, unit_cost_minor=200)
    service.define(points, ADMIN)
    granted = service.issue(BRAND, "review-bonus", IssueRequest(person_id="bob", issue_id="r1"), ADMIN).entry
    assert (granted.state, granted.order_id) == ("redeemed", "points:review-bonus:bob:r1")  # spent at once
    assert service.wallet(BRAND, "bob", ADMIN).counts == {"redeemed": 1}
    [event] = [e for e in bus.events if e.event_type == "points_changed"]
    assert (event.properties.delta, event.properties.program, event.properties.reason) == (200, "app", "bonus")
    with pytest.raises(Exception, match="does not take imported codes"):
        service.import_codes(BRAND, "review-bonus", CodesRequest(codes=["A1"]), ADMIN)
    assert service.top_up(BRAND, "xmas", TopUpRequest(amount_minor=1_000, op_id="po-1"), ADMIN).total_minor == 21_000


def test_scopes_brands_and_persons_are_checked(world: Any) -> None:
    service, _, _ = world
    reader = ApiClient("reader", frozenset({"offers:read"}))
    with pytest.raises(ForbiddenError, match="lacks scope offers:write"):
        service.define_pool(pool(), reader)
    store_key = ApiClient("till", frozenset({"offers:read"}), ScopeRef(brand_id=BRAND, store_id="sh01"))
    with pytest.raises(ForbiddenError, match="limited to"):
        service.offers(BRAND, store_key)
    service.define_pool(pool(), ADMIN)
    service.define(offer(), ADMIN)
    with pytest.raises(NotFoundError, match="no person carol"):
        service.issue(BRAND, "xmas50", IssueRequest(person_id="carol"), ADMIN)
    with pytest.raises(NotFoundError, match="no offer nope"):
        service.issue(BRAND, "nope", IssueRequest(person_id="ann"), ADMIN)


def test_a_long_issue_id_still_puts_the_event_on_the_timeline(world: Any) -> None:
    service, bus, _ = world
    service.define_pool(pool(), ADMIN)
    service.define(offer(offer_id="a-rather-long-offer-id-for-the-christmas-cakes"), ADMIN)
    long_id = "crm-" + "x" * 66  # the key would be 121 characters: its event id 134
    result = service.issue(
        BRAND, "a-rather-long-offer-id-for-the-christmas-cakes", IssueRequest(person_id="ann", issue_id=long_id), ADMIN
    )
    [event] = [e for e in bus.events if e.event_type == "coupon_issued"]
    assert len(event.event_id) <= 128 and event.properties.issue_id == result.entry.issue_id
    again = service.issue(
        BRAND, "a-rather-long-offer-id-for-the-christmas-cakes", IssueRequest(person_id="ann", issue_id=long_id), ADMIN
    )
    assert not again.new and again.entry == result.entry
