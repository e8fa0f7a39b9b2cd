"""Red packets paid out as they are issued: the offer service on the offers table under moto, the WeChat Pay adapter
over real HTTP to the fake WeChat Pay server on the loopback (signature checked, packets kept by mch_billno).

Paid: the packet is sent once, the wallet entry is redeemed and its cost committed. Refused for good (NOTENOUGH, no
OpenID): the entry is failed, and the budget, the offer's stock and the person's limit are as if it had never been
issued. Transient (SYSTEMERROR, a timeout): sent again under the same bill, paid once; when every attempt failed, the
bill is looked up before anything is released, and when even that fails the hold stays for a later retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetPool
from cdp.connectors.sources import WeChatPayMerchant
from cdp.ingest.ports import ApiClient
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.providers import PayoutUnavailableError, RetryPolicy
from cdp.offers.red_packets import RedPacketPayer, RedPacketProvider, RedPacketProviders
from cdp.offers.service import IssueRequest, OfferService, PayoutPendingError, RedPacketNotPaidError
from cdp.offers.wechat_pay import WeChatPayRedPackets, https_transport
from cdp.org import load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.fake_wechat_pay import FakeWeChatPay
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from tests.fakes.profiles import InMemoryProfiles

BRAND = "demo-brand"
T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)
ADMIN = ApiClient("marketer", frozenset({"offers:read", "offers:write", "offers:issue"}))
APP = "wx-local-oa"
ANN_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        for pack in events:
            self.events.extend(getattr(pack, "events", []))
        return [str(i) for i in range(len(events))]


class Merchants(RedPacketProviders):
    def __init__(self, provider: RedPacketProvider | None) -> None:
        self.provider = provider

    def for_brand(self, brand_id: str) -> RedPacketProvider | None:
        return self.provider if brand_id == BRAND else None


@dataclass
class World:
    service: OfferService
    fake: FakeWeChatPay
    bus: Bus
    slept: list[float]
    merchants: Merchants
    people: InMemoryProfiles

    def issue(self, person: str, issue_id: str, offer_id: str = "review-888") -> Any:
        return self.service.issue(BRAND, offer_id, IssueRequest(person_id=person, issue_id=issue_id), ADMIN)

    def pool(self) -> tuple[int, int, int]:
        (balance,) = self.service.pools(BRAND, ADMIN).pools
        return balance.available_minor, balance.reserved_minor, balance.committed_minor

    def issued(self, offer_id: str = "review-888") -> int:
        return self.service.get(BRAND, offer_id, ADMIN).issued

    def sends(self) -> list[dict[str, str]]:
        return self.fake.calls()


def merchant(fake: FakeWeChatPay, **changes: Any) -> WeChatPayMerchant:
    return WeChatPayMerchant.model_validate(fake.merchant(timeout_s=0.5, **changes))


@pytest.fixture
def world() -> Iterator[World]:
    # moto's DynamoDB serialised one request at a time (as the service applies each): issues run on parallel threads
    with mock_aws(), atomic_dynamodb(), FakeWeChatPay(wxappid=APP, balance_minor=100_000) as fake:
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        people = InMemoryProfiles(
            [
                Profile(person_id=p, brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=ids)
                for p, ids in (
                    ("ann", ["phone:+8613800138000", f"wechat_openid:{APP}:{ANN_OPENID}"]),
                    ("bob", ["phone:+8613911118888", "wechat_openid:wx-another-app:oBOB"]),
                )
            ]
        )
        bus, slept = Bus(), []
        merchants = Merchants(WeChatPayRedPackets(merchant(fake)))
        payer = RedPacketPayer(merchants, RetryPolicy(attempts=3, backoff_s=(0.01,)), slept.append, lambda: T0)
        service = OfferService(store, store.budgets, people, bus, load_org(), now=lambda: T0, payer=payer)
        pool = BudgetPool(brand_id=BRAND, pool_id="reviews", total_minor=10_000, currency="CNY", form="red_packet")
        service.define_pool(pool, ADMIN)
        offer = {
            "brand_id": BRAND,
            "offer_id": "review-888",
            "name": "好评红包",
            "currency": "CNY",
            "red_packet": {"amount_minor": 888, "wishing": "感谢您的好评"},
            "validity": {"days": 7},
            "stock": 5,
            "budget_pools": ["reviews"],
        }
        service.define(Offer.model_validate(offer), ADMIN)
        yield World(service, fake, bus, slept, merchants, people)


def test_a_red_packet_is_paid_once_and_its_cost_committed(world: World) -> None:
    # When ann is issued the review red packet, then the same issue is asked again
    first = world.issue("ann", "review-1")
    again = world.issue("ann", "review-1")
    # Then one packet of 8.88 went to her OpenID under one bill, the entry is redeemed (paid) and 8.88 is spent
    assert first.new and not again.new
    assert (first.payout.status, first.entry.state) == ("paid", "redeemed")
    assert again.entry == first.entry
    (packet,) = world.fake.packets.values()
    assert (packet.re_openid, packet.total_amount, packet.mch_billno) == (ANN_OPENID, 888, first.payout.bill_no)
    assert packet.params["wishing"] == "感谢您的好评" and packet.params["act_name"] == "好评红包"
    assert first.payout.provider_ref == packet.send_listid and len(world.sends()) == 1
    assert world.pool() == (9_112, 0, 888)
    issued = [e for e in world.bus.events if e.event_type == "coupon_issued"]
    assert {e.properties.kind for e in issued} == {"red_packet"} and len({e.event_id for e in issued}) == 1


def test_systemerror_once_is_retried_under_the_same_bill_and_paid(world: World) -> None:
    world.fake.fail_next("SYSTEMERROR")
    result = world.issue("ann", "review-2")
    assert (result.payout.status, result.payout.attempts, world.slept) == ("paid", 2, [0.01])
    bills = {call["mch_billno"] for call in world.sends()}
    assert bills == {result.payout.bill_no} and len(world.fake.packets) == 1
    assert world.pool() == (9_112, 0, 888)


def test_a_lost_answer_or_a_timeout_is_retried_and_paid_once(world: World) -> None:
    # Given WeChat Pay sends the packet and its answer is lost (SYSTEMERROR after sending), then answers too late
    world.fake.fail_next("SYSTEMERROR", sent=True)
    world.fake.delay_next(1.0)  # the client waits 0.5 s
    result = world.issue("ann", "review-3")
    # Then the third call under the same bill is answered with the packet already sent: paid, once
    assert (result.payout.status, result.payout.attempts) == ("paid", 3)
    assert len(world.sends()) == 3 and len(world.fake.packets) == 1
    assert world.fake.state.balance_minor == 100_000 - 888


def test_notenough_undoes_the_issue_and_releases_the_budget(world: World) -> None:
    # Given the merchant's balance cannot pay 8.88
    world.fake.set_balance(500)
    with pytest.raises(RedPacketNotPaidError) as refused:
        world.issue("ann", "review-4")
    # Then the 409's reason is WeChat Pay's; the entry is failed with why; nothing is held; stock and limit are back
    assert refused.value.reason == "NOTENOUGH" and "帐号余额不足" in str(refused.value)
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (entry.state, entry.payout and entry.payout.reason) == ("failed", "NOTENOUGH")
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0
    assert len(world.sends()) == 1  # a final refusal is not sent again
    # And asked again under the same issue id it is the same refusal, without calling WeChat Pay
    with pytest.raises(RedPacketNotPaidError):
        world.issue("ann", "review-4")
    assert len(world.sends()) == 1
    # And once the merchant tops up, a new issue id pays (her per-person limit of 1 was given back)
    world.fake.set_balance(100_000)
    assert world.issue("ann", "review-5").payout.status == "paid"
    assert world.pool() == (9_112, 0, 888) and world.issued() == 1
    # And the expiry tick never releases the failed entry's hold a second time
    assert world.service.expire_due(now=datetime(2027, 1, 1, tzinfo=UTC)) == 0
    assert world.pool() == (9_112, 0, 888)


def test_systemerror_every_time_and_never_sent_is_looked_up_then_released(world: World) -> None:
    world.fake.fail_next("SYSTEMERROR", times=3)
    with pytest.raises(RedPacketNotPaidError) as refused:
        world.issue("ann", "review-6")
    assert refused.value.reason == "SYSTEMERROR"
    assert len(world.fake.calls("/mmpaymkttransfers/gethbinfo")) == 1 and not world.fake.packets
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0


def test_when_even_the_lookup_fails_the_hold_stays_and_a_retry_settles_it(world: World) -> None:
    # Given every send times out (WeChat Pay did send the first) and the lookup is refused too
    world.fake.fail_next("SYSTEMERROR", times=3, sent=True)
    world.fake.fail_lookups(1)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "review-7")
    # Then nothing is released: the entry is issued with its payout pending, 8.88 still reserved
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (entry.state, entry.payout and entry.payout.status) == ("issued", "pending")
    assert world.pool() == (9_112, 888, 0)
    # When the same issue is asked again, WeChat Pay answers the bill it sent: paid, once
    result = world.issue("ann", "review-7")
    assert (result.payout.status, len(world.fake.packets)) == ("paid", 1)
    assert world.pool() == (9_112, 0, 888)


def test_the_tick_settles_a_pending_red_packet_by_its_bill(world: World) -> None:
    # Given a packet WeChat Pay sent, with every answer and the lookup lost
    world.fake.fail_next("SYSTEMERROR", times=3, sent=True)
    world.fake.fail_lookups(1)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "review-12")
    # When the tick settles pending payouts
    settled = world.service.settle_pending()
    # Then the bill is paid (once), its cost spent, and nothing is left to ask
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (settled.done, entry.state, len(world.fake.packets)) == (1, "redeemed", 1)
    assert world.pool() == (9_112, 0, 888) and world.service.settle_pending().done == 0


def test_a_person_without_an_openid_of_the_merchants_app_is_refused_before_anything_is_issued(world: World) -> None:
    # Given bob, known to WeChat only under another app
    with pytest.raises(RedPacketNotPaidError) as refused:
        world.issue("bob", "review-8")
    # Then no call, no wallet entry, nothing held
    assert refused.value.reason == "no_openid" and refused.value.entry is None and world.sends() == []
    assert world.service.wallet(BRAND, "bob", ADMIN).entries == []
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0
    # When he follows the merchant's account (his profile gains its OpenID), the same issue id pays
    bob = world.people.profiles["bob"]
    world.people.profiles["bob"] = bob.model_copy(
        update={"identifiers": [*bob.identifiers, f"wechat_openid:{APP}:oBOB1"]}
    )
    assert world.issue("bob", "review-8").payout.status == "paid"
    assert [p.re_openid for p in world.fake.packets.values()] == ["oBOB1"]


def test_a_wrong_merchant_key_is_refused_by_the_signature_check_and_released(world: World) -> None:
    world.merchants.provider = WeChatPayRedPackets(merchant(world.fake, key="0" * 32))
    with pytest.raises(RedPacketNotPaidError) as refused:
        world.issue("ann", "review-9")
    assert refused.value.reason == "RETURN_FAIL" and "签名错误" in str(refused.value)
    assert not world.fake.packets and world.pool() == (10_000, 0, 0)


def test_without_a_provider_the_red_packet_is_recorded_and_said_not_paid_out(world: World) -> None:
    world.merchants.provider = None
    result = world.issue("ann", "review-10")
    assert (result.entry.state, result.payout.status, result.payout.reason) == (
        "issued",
        "not_configured",
        "no_provider",
    )
    assert "not paid out" in (result.payout.message or "")
    assert world.pool() == (9_112, 888, 0) and world.sends() == []  # held until it expires, as any issued offer
    # When a merchant is configured later, the same issue asked again is paid
    world.merchants.provider = WeChatPayRedPackets(merchant(world.fake))
    assert world.issue("ann", "review-10").payout.status == "paid"
    assert world.pool() == (9_112, 0, 888)


def test_concurrent_issues_of_one_claim_pay_one_packet(world: World) -> None:
    # Given eight requests for the same issue at once (a double-tapped claim button, a retried request)
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        try:
            results.append(world.issue("ann", "review-11"))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every answer is the one paid entry, and WeChat Pay sent one packet
    assert not errors, errors
    assert {r.entry.issue_id for r in results} == {results[0].entry.issue_id}
    assert {r.entry.state for r in results} == {"redeemed"}
    assert len(world.fake.packets) == 1 and world.pool() == (9_112, 0, 888)


def test_an_unreachable_endpoint_is_a_transient_failure(world: World) -> None:
    # a closed port: a transient failure (the payer would retry), never an unhandled socket error
    post = https_transport(merchant(world.fake, endpoint="http://127.0.0.1:9"))
    with pytest.raises(PayoutUnavailableError, match="UNREACHABLE"):
        post("http://127.0.0.1:9/mmpaymkttransfers/sendredpack", b"<xml/>")
