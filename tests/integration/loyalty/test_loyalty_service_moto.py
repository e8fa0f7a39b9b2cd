"""The loyalty engine on the offers table under moto: orders earn points at the line's highest multiplier, once per
order; returns give their share back; burns take the oldest lot first; the tick reminds before points and levels
expire, then expires and reviews them; merged persons' accounts fold into the survivor's; conversions move both
accounts at once; every change goes on the bus as canonical events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.identity.events import ResolvedOrder
from cdp.ingest.ports import ApiClient
from cdp.loyalty.accounts import InsufficientPointsError
from cdp.loyalty.dynamodb import DynamoAccountStore
from cdp.loyalty.service import LoyaltyService, PointsRequest
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

BRAND = "shop"
ANN, BOB = "phone:+8613800138000", "phone:+8613911118888"
STAFF = ApiClient("staff", frozenset({"loyalty:read", "loyalty:write"}))

ORG = OrgDirectory.model_validate(
    {
        "brands": {
            BRAND: {
                "group_id": "g",
                "timezone": "Asia/Shanghai",
                "loyalty": {
                    "level_order": ["basic", "silver", "gold"],
                    "programs": {
                        "club": {
                            "system_of_record": "platform",
                            "earn": {
                                "points_per_unit": 1,
                                "multipliers": [
                                    {"times": 2, "weekdays": ["wed"]},
                                    {"times": 3, "categories": ["smart_home"]},
                                ],
                            },
                            "expire_after_months": 12,
                            "remind_days_before": 30,
                            "levels": [
                                {"level": "basic", "qualifying_spend_minor": 0},
                                {"level": "silver", "qualifying_spend_minor": 100_000, "benefits": ["birthday-gift"]},
                                {
                                    "level": "gold",
                                    "qualifying_spend_minor": 300_000,
                                    "benefits": ["birthday-gift", "free-delivery"],
                                },
                            ],
                            "converts_to": {"miles": [10, 1]},
                        },
                        "miles": {"system_of_record": "platform"},
                        "pos": {"system_of_record": "reported"},
                    },
                },
            }
        }
    }
)

MON = datetime(2026, 12, 7, 4, tzinfo=UTC)  # a Monday noon in Shanghai
WED = datetime(2026, 12, 9, 4, tzinfo=UTC)


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        for pack in events:
            self.events.extend(getattr(pack, "events", []))
        return [str(i) for i in range(len(events))]

    def of(self, event_type: str) -> list[Any]:
        return [e for e in self.events if e.event_type == event_type]


class Clock:
    def __init__(self) -> None:
        self.at = MON

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def world() -> Iterator[tuple[LoyaltyService, Bus, Clock, InMemoryProfiles]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        people = InMemoryProfiles(
            [
                Profile(person_id=p, brand_id=BRAND, created_at=MON, updated_at=MON, identifiers=[phone])
                for p, phone in (("ann", ANN), ("bob", BOB))
            ]
        )
        bus, clock = Bus(), Clock()
        store = DynamoAccountStore(topology.OFFERS_TABLE.local_name, client=client)
        yield LoyaltyService(store, people, bus, ORG, now=clock), bus, clock, people


def order(
    order_id: str, at: datetime, lines: list[tuple[str, str, int]], total: int | None = None, person: str = "ann"
) -> ResolvedOrder:
    raw_lines = [{"sku": s, "category": c, "quantity": 1, "unit_price_minor": p} for s, c, p in lines]
    event = {
        "event_id": f"o-{order_id}",
        "event_type": "order_placed",
        "source": "pos",
        "brand_id": BRAND,
        "occurred_at": at.isoformat(),
        "identifiers": [{"type": "phone", "value": "+8613800138000"}],
        "properties": {
            "order_id": order_id,
            "lines": raw_lines,
            "total_minor": total if total is not None else sum(p for _, _, p in lines),
            "currency": "CNY",
        },
    }
    return ResolvedOrder(person_id=person, anchor=ANN if person == "ann" else BOB, event=event)


def returned(order_id: str, at: datetime, refund: int, n: int = 1) -> ResolvedOrder:
    event = {
        "event_id": f"r-{order_id}-{n}",
        "event_type": "order_returned",
        "source": "pos",
        "brand_id": BRAND,
        "occurred_at": at.isoformat(),
        "identifiers": [{"type": "phone", "value": "+8613800138000"}],
        "properties": {"order_id": order_id, "refund_minor": refund, "currency": "CNY"},
    }
    return ResolvedOrder(person_id="ann", anchor=ANN, event=event)


def points(service: LoyaltyService, person: str = "ann", program: str = "club") -> int:
    found = service.accounts(BRAND, person, STAFF).accounts
    return next((a.balance for a in found if a.program == program), 0)


def test_an_order_earns_at_each_lines_highest_multiplier_once(world: Any) -> None:
    service, bus, clock, _ = world
    clock.at = WED
    # Given a Wednesday (member day x2) order with a smart-home line (x3) and a pastry line
    resolved = order("A1", WED, [("HUB", "smart_home", 20_000), ("CAKE", "pastry", 10_000)])
    # When it arrives, and again (a redelivery)
    first = service.on_order(resolved)
    again = service.on_order(resolved)
    # Then the hub earns 200 x 3, the cake 100 x 2 (multipliers do not stack), once
    assert [r.points for r in first] == [800] and first[0].new
    assert [r.new for r in again] == [False] and points(service) == 800
    changed = bus.of("points_changed")
    assert {e.event_id for e in changed} == {changed[0].event_id}  # the redelivery re-sends the same event
    assert changed[0].properties.delta == 800 and changed[0].properties.reason == "purchase"
    assert changed[0].identifiers[0].key == ANN
    # And joining puts the member at the entry level (the account shows it; no event for joining)
    assert service.accounts(BRAND, "ann", STAFF).accounts[0].level == "basic" and not bus.of("level_changed")


def test_a_discounted_order_earns_on_what_was_paid_and_other_currencies_earn_nothing(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("CAKE", "pastry", 10_000), ("BREAD", "pastry", 10_000)], total=15_000))
    assert points(service) == 150
    usd = order("A2", MON, [("CAKE", "pastry", 10_000)])
    usd.event["properties"]["currency"] = "USD"
    assert service.on_order(usd) == []


def test_spend_raises_the_level_at_once_and_grants_its_benefits(world: Any) -> None:
    service, bus, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 60_000)]))
    service.on_order(order("A2", MON, [("TV", "appliance", 50_000)]))
    levels = [
        (e.properties.previous_level, e.properties.level, e.properties.direction) for e in bus.of("level_changed")
    ]
    assert levels == [("basic", "silver", "up")]
    assert [(e.properties.benefit_id, e.properties.granted) for e in bus.of("benefit_changed")] == [
        ("birthday-gift", True)
    ]
    view = service.accounts(BRAND, "ann", STAFF).accounts[0]
    assert view.level == "silver" and view.next_level == "gold" and view.spend_to_next_minor == 190_000
    assert view.level_until == datetime(2027, 12, 31, 16, tzinfo=UTC)  # the end of Dec 2027 in Shanghai


def test_returns_give_back_their_share_once_and_never_more_than_the_order_earned(world: Any) -> None:
    service, bus, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 100_000)]))  # 1,000 points
    service.on_order(returned("A1", MON, 40_000))
    service.on_order(returned("A1", MON, 40_000))  # redelivered: the same return event
    assert points(service) == 600
    service.on_order(returned("A1", MON, 100_000, n=2))  # a second return asks for more than is left
    assert points(service) == 0
    filed = {e.event_id: e.properties.delta for e in bus.of("points_changed")}  # identity files an id once
    assert list(filed.values()) == [1_000, -400, -600]
    # a return of an order the programme never counted changes nothing
    assert service.on_order(returned("NEVER", MON, 5_000)) == []


def test_a_return_after_the_points_were_spent_writes_off_what_is_gone(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 100_000)]))
    service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=900, op_id="b1"), STAFF)
    service.on_order(returned("A1", MON, 100_000))
    assert points(service) == 0


def test_burns_take_the_oldest_lot_first_once_and_refuse_more_than_the_balance(world: Any) -> None:
    service, bus, clock, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 10_000)]))  # 100 points, lot ending Dec 2027
    clock.at = datetime(2027, 2, 1, 4, tzinfo=UTC)
    service.on_order(order("A2", clock.at, [("TV", "appliance", 10_000)]))  # 100 points, lot ending Feb 2028
    request = PointsRequest(brand_id=BRAND, person_id="ann", points=150, op_id="redeem-1")
    first = service.burn("club", request, STAFF)
    again = service.burn("club", request, STAFF)
    assert (first.points, first.balance, first.new) == (-150, 50, True)
    assert (again.points, again.new) == (-150, False)
    lots = service.accounts(BRAND, "ann", STAFF).accounts[0].lots
    assert [(lot.expires_at, lot.points) for lot in lots] == [(datetime(2028, 2, 29, 16, tzinfo=UTC), 50)]
    with pytest.raises(InsufficientPointsError, match="holds 50 points"):
        service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=51, op_id="r2"), STAFF)
    assert bus.of("points_changed")[-1].properties.reason == "redemption"


def test_the_tick_reminds_then_expires_lots_and_reviews_the_level(world: Any) -> None:
    service, bus, clock, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 120_000)]))  # 1,200 points; silver until end Dec 2027
    # a month before the lot ends: nothing yet
    assert service.run_due(datetime(2027, 11, 15, tzinfo=UTC)).reminded == 0
    # within 30 days of the end of December 2027: one reminder for the points, one for the level
    report = service.run_due(datetime(2027, 12, 5, tzinfo=UTC))
    assert report.reminded == 2
    reminders = {e.properties.what: e for e in bus.of("loyalty_expiring")}
    assert reminders["points"].properties.points == 1_200
    assert reminders["level"].properties.level == "silver"
    assert reminders["points"].properties.expires_at == datetime(2027, 12, 31, 16, tzinfo=UTC)
    assert service.run_due(datetime(2027, 12, 6, tzinfo=UTC)).reminded == 0  # once
    # when December ends in Shanghai: the lot expires and silver falls to basic (no spend in the window)
    clock.at = datetime(2027, 12, 31, 16, 1, tzinfo=UTC)
    report = service.run_due(clock.at)
    assert (report.expired_points, report.reviewed) == (1_200, 1)
    assert points(service) == 0
    assert bus.of("points_changed")[-1].properties.reason == "expiry"
    assert bus.of("level_changed")[-1].properties.direction == "down"
    assert [(e.properties.benefit_id, e.properties.granted) for e in bus.of("benefit_changed")][-1] == (
        "birthday-gift",
        False,
    )
    assert service.run_due(clock.at) == type(report)()  # nothing left to do


def test_a_member_who_keeps_spending_keeps_the_level(world: Any) -> None:
    service, bus, clock, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 120_000)]))
    clock.at = datetime(2027, 6, 1, 4, tzinfo=UTC)
    service.on_order(order("A2", clock.at, [("TV", "appliance", 120_000)]))
    service.run_due(datetime(2027, 12, 31, 16, 1, tzinfo=UTC))
    last = bus.of("level_changed")[-1].properties
    assert (last.level, last.direction) == ("silver", "kept")
    assert last.valid_until == datetime(2028, 12, 31, 16, tzinfo=UTC)


def test_a_survivor_takes_over_the_accounts_of_the_persons_merged_into_them(world: Any) -> None:
    service, _, _, people = world
    service.on_order(order("B1", MON, [("TV", "appliance", 50_000)], person="bob"))
    service.on_order(order("A1", MON, [("TV", "appliance", 10_000)]))
    # bob merges into ann; ann's next order folds bob's account into hers
    people.profiles["ann"] = people.profiles["ann"].model_copy(update={"merged_from": ["bob"]})
    resolved = order("A2", MON, [("TV", "appliance", 60_000)])
    resolved.merged_from = ["bob"]
    service.on_order(resolved)
    view = service.accounts(BRAND, "ann", STAFF).accounts[0]
    assert (view.balance, view.level) == (1_200, "silver")  # 500 + 100 + 600; spend 1,200 together


def test_points_convert_into_another_programme_at_its_rate_in_one_move(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 100_000)]))
    request = PointsRequest(brand_id=BRAND, person_id="ann", points=500, op_id="c1", to_program="miles")
    result = service.convert("club", request, STAFF)
    assert (result.points, result.balance) == (-500, 500)
    assert points(service, program="miles") == 50
    with pytest.raises(InvalidInputError, match="multiple of 10"):
        service.convert("club", request.model_copy(update={"points": 55, "op_id": "c2"}), STAFF)
    with pytest.raises(InvalidInputError, match="converts into"):
        service.convert("club", request.model_copy(update={"to_program": "pos", "op_id": "c3"}), STAFF)


def test_adjustments_staff_scope_and_unknown_programmes(world: Any) -> None:
    service, _, _, _ = world
    added = service.adjust("club", PointsRequest(brand_id=BRAND, person_id="ann", points=300, op_id="goodwill"), STAFF)
    assert added.balance == 300
    taken = service.adjust("club", PointsRequest(brand_id=BRAND, person_id="ann", points=-100, op_id="fix"), STAFF)
    assert taken.balance == 200
    with pytest.raises(NotFoundError, match="keeps no programme pos"):
        service.burn("pos", PointsRequest(brand_id=BRAND, person_id="ann", points=1, op_id="x"), STAFF)
    store_key = ApiClient("till", frozenset({"loyalty:write"}), org_scope=ScopeRef(brand_id=BRAND, store_id="s1"))
    with pytest.raises(ForbiddenError):
        service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=1, op_id="y"), store_key)
    with pytest.raises(NotFoundError):
        service.accounts(BRAND, "nobody", STAFF)


# ---- edge cases: returns, merges, replays, the clock ---------------------------------------------------------------


def test_a_return_that_gives_back_nothing_does_not_block_the_next_one(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 10_000)]))  # 100 points
    service.on_order(returned("A1", MON, 50))  # 0.50 CNY: 0 points back
    service.on_order(returned("A1", MON, 5_000, n=2))
    assert points(service) == 50


def test_returning_the_multiplied_line_gives_back_what_it_earned_and_refunds_never_eat_other_orders(
    world: Any,
) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("HUB", "smart_home", 100_000), ("CAKE", "pastry", 100_000)]))  # 3,000 + 1,000
    hub_back = returned("A1", MON, 100_000)
    hub_back.event["properties"]["skus"] = ["HUB"]
    service.on_order(hub_back)
    assert points(service) == 1_000
    service.on_order(order("A2", MON, [("TV", "appliance", 100_000)]))
    service.on_order(returned("A1", MON, 200_000, n=2))  # asks more than A1 has left to refund
    view = service.accounts(BRAND, "ann", STAFF).accounts[0]
    assert view.qualifying_spend_minor == 100_000  # A2's spend stands
    assert view.balance == 1_000  # A1's last 1,000 given back, A2's 1,000 kept


def test_a_level_an_order_raised_falls_back_when_the_order_is_returned(world: Any) -> None:
    service, bus, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 300_000)]))  # gold at once
    assert service.accounts(BRAND, "ann", STAFF).accounts[0].level == "gold"
    service.on_order(returned("A1", MON, 300_000))
    view = service.accounts(BRAND, "ann", STAFF).accounts[0]
    assert (view.level, view.balance, view.benefits) == ("basic", 0, [])
    assert bus.of("level_changed")[-1].properties.direction == "down"
    assert {(e.properties.benefit_id, e.properties.granted) for e in bus.of("benefit_changed")} >= {
        ("free-delivery", False),
        ("birthday-gift", False),
    }


def test_returns_are_told_apart_by_their_source_as_well_as_their_id(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 100_000)]))
    service.on_order(returned("A1", MON, 50_000))
    web = returned("A1", MON, 50_000)
    web.event["source"] = "web"  # the same event id from another channel is another return
    service.on_order(web)
    assert points(service) == 0


def test_an_order_dated_ahead_of_the_clock_earns_as_of_now(world: Any) -> None:
    service, _, _, _ = world
    service.on_order(order("A1", datetime(2099, 1, 6, tzinfo=UTC), [("TV", "appliance", 300_000)]))
    view = service.accounts(BRAND, "ann", STAFF).accounts[0]
    assert view.lots[0].expires_at == datetime(2027, 12, 31, 16, tzinfo=UTC)
    assert view.level_until == datetime(2027, 12, 31, 16, tzinfo=UTC)


def test_points_folded_in_from_a_merged_person_still_expire(world: Any) -> None:
    service, _, clock, people = world
    service.on_order(order("B1", MON, [("TV", "appliance", 50_000)], person="bob"))  # lot ending Dec 2027
    clock.at = datetime(2027, 3, 1, 4, tzinfo=UTC)
    service.on_order(order("A1", clock.at, [("TV", "appliance", 10_000)]))  # lot ending Mar 2028
    people.profiles["ann"] = people.profiles["ann"].model_copy(update={"merged_from": ["bob"]})
    service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=10, op_id="b1"), STAFF)
    report = service.run_due(datetime(2028, 1, 1, tzinfo=UTC))
    assert report.expired_points == 490 and points(service) == 100


def test_an_order_of_a_person_merged_away_meanwhile_earns_for_the_survivor(world: Any) -> None:
    service, _, _, people = world
    service.on_order(order("B1", MON, [("TV", "appliance", 50_000)], person="bob"))
    people.profiles["ann"] = people.profiles["ann"].model_copy(update={"merged_from": ["bob"]})
    people.profiles["bob"] = people.profiles["bob"].model_copy(update={"merged_into": "ann"})
    resolved = order("A1", MON, [("TV", "appliance", 10_000)])
    resolved.merged_from = ["bob"]
    service.on_order(resolved)  # ann folds bob's account
    service.on_order(order("B2", MON, [("TV", "appliance", 30_000)], person="bob"))  # resolved to bob before
    assert points(service) == 900


def test_an_op_id_used_for_another_member_or_amount_is_refused(world: Any) -> None:
    service, _, _, _ = world
    for person in ("ann", "bob"):
        service.adjust("club", PointsRequest(brand_id=BRAND, person_id=person, points=300, op_id=f"g-{person}"), STAFF)
    service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=100, op_id="r1"), STAFF)
    with pytest.raises(ConflictError, match="used for another operation"):
        service.burn("club", PointsRequest(brand_id=BRAND, person_id="bob", points=100, op_id="r1"), STAFF)
    with pytest.raises(ConflictError, match="used for another operation"):
        service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=200, op_id="r1"), STAFF)
    again = service.burn("club", PointsRequest(brand_id=BRAND, person_id="ann", points=100, op_id="r1"), STAFF)
    assert (again.new, points(service, "bob")) == (False, 300)


def test_reminders_go_out_a_batch_a_tick_until_every_member_has_one(world: Any) -> None:
    service, bus, _, _ = world
    service.on_order(order("A1", MON, [("TV", "appliance", 10_000)]))
    service.on_order(order("B1", MON, [("TV", "appliance", 10_000)], person="bob"))
    at = datetime(2027, 12, 5, tzinfo=UTC)
    first, second = service.run_due(at, limit=1), service.run_due(at, limit=1)
    assert first.reminded == 1 and second.reminded == 1
    assert service.run_due(at).reminded == 0
    assert {e.identifiers[0].key for e in bus.of("loyalty_expiring")} == {ANN, BOB}


# ---- the month index: written once per store and month, never missed by the tick ---------------------------------


class CountingClient:
    """The DynamoDB client, counting the month index items the loyalty transactions write."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.month_writes = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        updates = [i["Update"]["Key"]["pk"]["S"] for i in kwargs["TransactItems"] if "Update" in i]
        self.month_writes += sum(pk.startswith("LOYALTYMONTHS#") for pk in updates)
        return self._inner.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Made = tuple[LoyaltyService, DynamoAccountStore, CountingClient, Clock]


@pytest.fixture
def stores() -> Iterator[Any]:
    """Makes loyalty engines on one table, each with its own store (a process of its own) and clock."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        people = InMemoryProfiles([])

        def make(at: datetime = MON) -> Made:
            counting, clock = CountingClient(client), Clock()
            clock.at = at
            store = DynamoAccountStore(topology.OFFERS_TABLE.local_name, client=counting)  # type: ignore[arg-type]
            return LoyaltyService(store, people, Bus(), ORG, now=clock), store, counting, clock

        yield make


def persons_due(store: DynamoAccountStore, month: str) -> set[str]:
    return {t.person_id for t in store.timers(BRAND, month, limit=100)}


def test_a_month_already_indexed_is_not_written_again_and_a_cold_start_indexes_it_again(stores: Any) -> None:
    service, store, counting, clock = stores()
    # Given ann's order, whose lot (and level hold) end in December 2027: a timer, and the month indexed
    service.on_order(order("A1", MON, [("TV", "appliance", 10_000)]))
    assert counting.month_writes == 1 and store.months(BRAND, "2027-12") == [("2027-12", False)]
    # When bob's order adds a second timer in that month, from the same store
    clock.at = datetime(2026, 12, 7, 4, 5, tzinfo=UTC)
    service.on_order(order("B1", clock.at, [("TV", "appliance", 10_000)], person="bob"))
    # Then the timer is written, the month index is not
    assert counting.month_writes == 1 and persons_due(store, "2027-12") == {"ann", "bob"}
    # And when the index is gone (say, lost), a new store (a cold start) writes it with its first timer in the month
    store._db.delete_item(TableName=store._table, Key={"pk": {"S": f"LOYALTYMONTHS#{BRAND}"}, "sk": {"S": "2027-12"}})
    cold, cold_store, cold_counting, _ = stores(clock.at)
    cold.on_order(order("C1", clock.at, [("TV", "appliance", 10_000)], person="cat"))
    assert cold_counting.month_writes == 1 and cold_store.months(BRAND, "2027-12") == [("2027-12", False)]
    # and the tick finds every timer of the month
    assert cold.run_due(datetime(2028, 1, 1, tzinfo=UTC)).expired_points == 300
    assert persons_due(cold_store, "2027-12") == set() and cold_store.months(BRAND, "2027-12") == []


def test_a_timer_written_without_the_index_in_a_month_the_tick_is_closing_still_expires(stores: Any) -> None:
    writer, store, counting, clock = stores()
    tick, _, _, _ = stores()  # the tick is another process: its store never saw the writer's months
    t0 = MON
    # Given an order from long ago: its lot ended with November 2026, before now
    writer.on_order(order("A1", datetime(2025, 11, 10, 4, tzinfo=UTC), [("TV", "appliance", 10_000)]))
    assert counting.month_writes == 1 and persons_due(store, "2026-11") == {"ann"}
    # When the tick closes the month a minute later, it expires ann's lot but keeps the month (touched just now)
    assert tick.run_due(t0 + timedelta(minutes=1)).expired_points == 100
    assert store.months(BRAND, "2026-11") == [("2026-11", False)]
    # and the writer, which indexed the month moments ago, adds bob's old order without writing the index
    clock.at = t0 + timedelta(minutes=2)
    writer.on_order(order("B1", datetime(2025, 11, 13, 4, tzinfo=UTC), [("TV", "appliance", 20_000)], person="bob"))
    assert counting.month_writes == 1
    # Then the next tick still finds the month, and bob's lot expires too
    assert tick.run_due(t0 + timedelta(minutes=3)).expired_points == 200
    # And once nothing has touched the month for a while, the tick removes it
    tick.run_due(t0 + timedelta(minutes=20))
    assert store.months(BRAND, "2026-11") == []
    # and a timer in it after that (the writer's index is stale by then) indexes it again: it expires as well
    clock.at = t0 + timedelta(minutes=21)
    writer.on_order(order("C1", datetime(2025, 11, 15, 4, tzinfo=UTC), [("TV", "appliance", 30_000)], person="cat"))
    assert counting.month_writes == 2 and store.months(BRAND, "2026-11") == [("2026-11", False)]
    assert tick.run_due(t0 + timedelta(minutes=22)).expired_points == 300


def test_a_timer_written_without_the_index_while_the_months_reminders_go_out_is_reminded(stores: Any) -> None:
    writer, store, counting, clock = stores()
    tick, _, _, _ = stores()
    t0 = MON
    # Given an order from a year ago: its lot ends with December 2026, within the 30 days' reminder lead
    writer.on_order(order("A1", datetime(2025, 12, 10, 4, tzinfo=UTC), [("TV", "appliance", 10_000)]))
    # When the tick reminds ann, it leaves the month open (touched just now)
    assert tick.run_due(t0 + timedelta(minutes=1)).reminded >= 1
    assert store.months(BRAND, "2026-12") == [("2026-12", False)]
    # and bob's timer comes without the index
    clock.at = t0 + timedelta(minutes=2)
    writer.on_order(order("B1", datetime(2025, 12, 11, 4, tzinfo=UTC), [("TV", "appliance", 10_000)], person="bob"))
    assert counting.month_writes == 1
    # Then the next tick reminds bob, and once the month has been quiet a while it is marked reminded
    assert tick.run_due(t0 + timedelta(minutes=3)).reminded >= 1
    assert tick.run_due(t0 + timedelta(minutes=20)).reminded == 0
    assert store.months(BRAND, "2026-12") == [("2026-12", True)]
    # And a timer after that (the writer's index stale) reopens the month: cat is reminded as well
    clock.at = t0 + timedelta(minutes=21)
    writer.on_order(order("C1", datetime(2025, 12, 12, 4, tzinfo=UTC), [("TV", "appliance", 10_000)], person="cat"))
    assert store.months(BRAND, "2026-12") == [("2026-12", False)]
    assert tick.run_due(t0 + timedelta(minutes=22)).reminded >= 1
    assert store.timers(BRAND, "2026-12", limit=10, unreminded=True) == []
