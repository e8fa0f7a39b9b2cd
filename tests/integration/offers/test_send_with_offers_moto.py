"""A send step's catalog offer is issued as each message leaves, on the real offer store under moto: each recipient
gets a code of their own in the rendered message and a wallet entry; when the offer runs out of stock the message is
not sent (suppressed_offer) and its claim and frequency-cap place are given back; a retried batch shows the same
code and issues nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetPool
from cdp.channels.models import SendBatchRequest
from cdp.channels.offers import WalletOffers
from cdp.channels.service import send_batch
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import OfferService
from cdp.org import load_org
from cdp.profile.models import ConsentState, Profile
from cdp_local.runtime.core import create_table
from tests.fakes.channels import InMemorySendLedger, RecordingChannel
from tests.fakes.profiles import InMemoryProfiles
from tests.integration.offers.test_offer_service_moto import Bus

BRAND = "demo-brand"
T0 = datetime(2026, 12, 6, 4, tzinfo=UTC)


def person(person_id: str, phone: str) -> Profile:
    consent = {"sms": ConsentState(granted=True, changed_at=T0 - timedelta(days=3), source="app")}
    return Profile(
        person_id=person_id,
        brand_id=BRAND,
        created_at=T0,
        updated_at=T0,
        identifiers=[f"phone:{phone}"],
        consent=consent,
    )


@pytest.fixture
def world() -> Iterator[tuple[OfferService, InMemoryProfiles, Bus]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        profiles = InMemoryProfiles([person("ann", "+8613800138000"), person("bob", "+8613911118888")])
        bus = Bus()
        service = OfferService(store, store.budgets, profiles, bus, load_org(), now=lambda: T0)
        store.budgets.define(BudgetPool(brand_id=BRAND, pool_id="xmas", total_minor=50_000, currency="CNY"))
        offer: dict[str, Any] = {
            "brand_id": BRAND,
            "offer_id": "xmas50",
            "name": "50 off 300",
            "currency": "CNY",
            "coupon": {"amount_off_minor": 5000, "threshold_minor": 30000, "code_prefix": "XM"},
            "validity": {"days": 14},
            "stock": 1,
            "budget_pools": ["xmas"],
        }
        store.define(Offer.model_validate(offer), "marketer", T0)
        yield service, profiles, bus


def request() -> SendBatchRequest:
    return SendBatchRequest.model_validate(
        {
            "campaign_id": "xmas_cakes",
            "run_id": "xmas_cakes-v1-20261206T0400Z",
            "brand_id": BRAND,
            "step": "touch1",
            "channel": "sms",
            "template": {"body": "Your code {{ offer.code }}, valid until {{ offer.valid_until[:10] }}"},
            "offer": {"offer_id": "xmas50"},
            "person_ids": ["ann", "bob"],
        }
    )


def test_each_recipient_gets_their_own_code_and_an_offer_out_of_stock_sends_nothing(world: Any) -> None:
    service, profiles, bus = world
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    offers = WalletOffers(service)
    result = send_batch(request(), profiles, profiles, ledger, {"sms": channel}, T0, offers=offers)
    # Then ann (first) got the one coupon in stock, rendered in her message; bob's message did not leave
    assert (result.sent, result.suppressed_offer) == (1, 1)
    [wallet_entry] = service.store.wallet(BRAND, "ann")
    assert channel.sent[0].body == f"Your code {wallet_entry.code}, valid until 2026-12-20"
    assert channel.sent[0].coupon_id == "xmas50"
    assert [m.status for m in profiles.message_log if m.person_id == "bob"] == ["suppressed_offer"]
    assert [e.event_type for e in bus.events] == ["coupon_issued"]
    # When the batch runs again (a retry): nothing new leaves, nothing is issued twice
    again = send_batch(request(), profiles, profiles, ledger, {"sms": channel}, T0, offers=offers)
    assert (again.sent, again.duplicates_skipped, again.suppressed_offer) == (0, 1, 1)
    stored = service.store.get(BRAND, "xmas50")
    assert stored is not None and stored.issued == 1 and len(bus.events) == 1


def test_a_step_naming_a_catalog_offer_without_an_issuer_wired_sends_nothing(world: Any) -> None:
    _, profiles, _ = world
    channel = RecordingChannel()
    result = send_batch(request(), profiles, profiles, InMemorySendLedger(), {"sms": channel}, T0)
    assert (result.sent, result.suppressed_offer) == (0, 2) and channel.sent == []


def test_an_offer_store_failure_fails_the_person_and_gives_the_claim_back(world: Any) -> None:
    from cdp.channels.ports import IssuedOffer, OfferIssuer
    from cdp.errors import ChannelError, StoreError

    _, profiles, _ = world

    class Failing(OfferIssuer):
        def issue(
            self, brand_id: str, offer_id: str, person_id: str, issue_id: str, plan_id: str | None = None
        ) -> IssuedOffer:
            raise StoreError("the offers table throttled")

    channel, ledger = RecordingChannel(), InMemorySendLedger()
    with pytest.raises(ChannelError, match="issuing the step's offer failed"):  # nothing left: the batch retries
        send_batch(request(), profiles, profiles, ledger, {"sms": channel}, T0, offers=Failing())
    assert channel.sent == []
    # and a retry of the batch with the store back sends it (the claims were given back, not leased away)
    again = send_batch(request(), profiles, profiles, ledger, {"sms": channel}, T0, offers=WalletOffers(world[0]))
    assert (again.sent, again.in_flight_skipped) == (1, 0)
