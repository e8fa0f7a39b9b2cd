"""A points offer of a programme the platform keeps goes into the member's account (a lot that expires like earned
points, once per issue); one of a programme its source keeps stays a reported `points_changed` event."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.ingest.ports import ApiClient
from cdp.loyalty.dynamodb import DynamoAccountStore
from cdp.loyalty.service import LoyaltyService
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import OfferService
from cdp.org import load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
T0 = datetime(2026, 12, 7, 4, tzinfo=UTC)
STAFF = ApiClient("staff", frozenset({"loyalty:read"}))


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        for pack in events:
            self.events.extend(getattr(pack, "events", []))
        return ["0" for _ in events]


@pytest.fixture
def offers() -> Iterator[tuple[OfferService, LoyaltyService, Bus]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        people = InMemoryProfiles(
            [
                Profile(
                    person_id="ann", brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=["phone:+8613800138000"]
                )
            ]
        )
        bus, org = Bus(), load_org()
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        accounts = DynamoAccountStore(topology.OFFERS_TABLE.local_name, client=client)
        loyalty = LoyaltyService(accounts, people, bus, org, now=lambda: T0)
        yield OfferService(store, store.budgets, people, bus, org, now=lambda: T0, loyalty=loyalty), loyalty, bus


def points_offer(offer_id: str, program: str) -> Offer:
    return Offer.model_validate(
        {
            "brand_id": BRAND,
            "offer_id": offer_id,
            "name": "points for a review",
            "currency": "CNY",
            "points": {"points": 200, "program": program},
            "unit_cost_minor": 200,
            "validity": {"days": 365},
            "per_person_limit": 5,
        }
    )


def test_club_points_go_into_the_account_once_and_app_points_stay_reported(offers: Any) -> None:
    service, loyalty, bus = offers
    for offer in (points_offer("club-200", "club"), points_offer("app-200", "app")):
        service.store.define(offer, "test", T0)
    # the club's points: a lot in the account, with the engine's points_changed, once for a retried issue
    service.issue_to(BRAND, "club-200", "ann", "review-1")
    service.issue_to(BRAND, "club-200", "ann", "review-1")
    [club] = loyalty.accounts(BRAND, "ann", STAFF).accounts
    assert (club.program, club.balance) == ("club", 200)
    assert club.lots[0].expires_at is not None  # they expire like earned points
    # the app's (its source keeps them): a points_changed event as before, no account
    service.issue_to(BRAND, "app-200", "ann", "review-2")
    changed = {
        (e.properties.program, e.properties.delta, e.event_id) for e in bus.events if e.event_type == "points_changed"
    }
    assert {(program, delta) for program, delta, _ in changed} == {("club", 200), ("app", 200)}
    assert len({event_id for program, _, event_id in changed if program == "club"}) == 1
