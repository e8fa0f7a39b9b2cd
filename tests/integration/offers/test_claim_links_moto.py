"""Claim links on the offers table under moto, on an injected clock: a link minted for one person claims the offer once
(`coupon_issued` then `coupon_claimed` on the bus, each with one event id), expires on time, and only a key holding
offers:issue on the whole brand mints one; the page maps each outcome to its status."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.app import claim_page
from cdp.errors import ForbiddenError, NotFoundError
from cdp.ingest.ports import ApiClient
from cdp.offers.catalog import Offer
from cdp.offers.claims import ClaimLinkExpiredError, ClaimLinkRequest, ClaimLinks, ClaimLinksNotConfiguredError
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import OfferService
from cdp.offers.wallet import OfferUnavailableError
from cdp.org import ScopeRef, load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)
SECRET = "test-redirect-secret"
MARKETER = ApiClient("marketer", frozenset({"offers:read", "offers:write", "offers:issue"}))


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


@dataclass
class World:
    links: ClaimLinks
    service: OfferService
    bus: Bus
    clock: Clock

    def link(self, person: str = "ann", **request: Any) -> Any:
        return self.links.create(BRAND, "thanks-20", ClaimLinkRequest(person_id=person, **request), MARKETER)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        ann = Profile(
            person_id="ann", brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=["phone:+8613800138000"]
        )
        eve = Profile(person_id="eve", brand_id="demo-outlet", created_at=T0, updated_at=T0)
        people = InMemoryProfiles([ann, eve])
        bus, clock = Bus(), Clock()
        service = OfferService(store, store.budgets, people, bus, load_org(), now=clock)
        coupon = {"amount_off_minor": 2_000, "threshold_minor": 10_000}
        offer = {"brand_id": BRAND, "offer_id": "thanks-20", "name": "Thanks", "currency": "CNY", "coupon": coupon}
        service.define(Offer.model_validate({**offer, "validity": {"days": 30}}), MARKETER)
        links = ClaimLinks(service, lambda: SECRET, "https://api.example.com/", now=clock)
        yield World(links, service, bus, clock)


def test_a_link_claims_once_and_expires_on_time(world: World) -> None:
    # Given a link minted at T0 for one day
    link = world.link(ref="review-1", valid_days=1)
    assert link.url == f"https://api.example.com/v1/claim/{link.token}" and link.expires_at == T0 + timedelta(days=1)
    assert world.links.view(link.token).entry is None
    # When it is claimed twelve hours later, and again
    world.clock.at = T0 + timedelta(hours=12)
    first = world.links.claim(link.token).result
    again = world.links.claim(link.token).result
    # Then one entry, issued under claim:review-1; the issue and the claim each went on the bus under one event id
    assert first.new and not again.new and again.entry == first.entry
    assert first.entry.issue_id.endswith(":claim:review-1") and world.links.view(link.token).entry == first.entry
    by_type = {e.event_type: set() for e in world.bus.events}
    for event in world.bus.events:
        by_type[event.event_type].add(event.event_id)
    assert {k: len(v) for k, v in by_type.items()} == {"coupon_issued": 1, "coupon_claimed": 1}
    (claimed,) = {e.event_id: e for e in world.bus.events if e.event_type == "coupon_claimed"}.values()
    assert claimed.properties.coupon_id == "thanks-20" and claimed.occurred_at == T0 + timedelta(hours=12)
    # When the day is over / Then the link is expired, on the page too
    world.clock.at = T0 + timedelta(days=1)
    with pytest.raises(ClaimLinkExpiredError):
        world.links.claim(link.token)
    assert claim_page.show(world.links, link.token).status == 410


def test_only_offers_issue_on_the_whole_brand_mints_a_link_for_the_brands_person(world: World) -> None:
    reader = ApiClient("reader", frozenset({"offers:read"}))
    till = ApiClient("till", frozenset({"offers:issue"}), ScopeRef(brand_id=BRAND, store_id="sh01"))
    for client in (reader, till):
        with pytest.raises(ForbiddenError):
            world.links.create(BRAND, "thanks-20", ClaimLinkRequest(person_id="ann"), client)
    with pytest.raises(NotFoundError):
        world.link("eve")  # a person of another brand
    with pytest.raises(NotFoundError):
        world.links.create(BRAND, "nope", ClaimLinkRequest(person_id="ann"), MARKETER)
    world.service.retire(BRAND, "thanks-20", MARKETER)
    with pytest.raises(OfferUnavailableError):
        world.link()


def test_each_link_without_a_ref_is_its_own_claim(world: World) -> None:
    first, second = world.link(), world.link()
    assert first.ref != second.ref
    world.links.claim(first.token)
    # the offer's per-person limit (1) refuses the second claim: a 409 page that says she has it already
    page = claim_page.claim(world.links, second.token)
    assert page.status == 409 and "You have claimed this already" in page.html


def test_without_the_tracked_link_secret_claim_links_are_unavailable(world: World) -> None:
    link = world.link()
    unconfigured = ClaimLinks(world.service, lambda: None, now=world.clock)
    with pytest.raises(ClaimLinksNotConfiguredError):
        unconfigured.create(BRAND, "thanks-20", ClaimLinkRequest(person_id="ann"), MARKETER)
    assert claim_page.show(unconfigured, link.token).status == 503
    assert claim_page.claim(unconfigured, link.token).status == 503
