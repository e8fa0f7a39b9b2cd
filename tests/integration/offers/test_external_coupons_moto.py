"""External coupons (WeChat Pay cash coupons) issued through the offer service on the offers table under moto, the
API v3 adapter over real HTTP to the fake WeChat Pay on the loopback (request signatures checked, answers signed,
one coupon per out_request_no).

Granted: the coupon id becomes the wallet entry's code, and an order naming it redeems it. Refused for good (the
stock used up, the person's limit, no OpenID): the issue is undone, so the budget, the offer's stock and the person's
limit are as if it had never been issued. No answer: asked again under the same request number, one coupon in all;
when every attempt failed the hold stays, without a code, until the issue is asked again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetPool
from cdp.channels.models import SendBatchRequest
from cdp.channels.offers import WalletOffers
from cdp.channels.service import send_batch
from cdp.connectors.sources import WeChatPayMerchant
from cdp.ingest.events import parse_event
from cdp.ingest.ports import ApiClient
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.external_coupons import ExternalCouponIssuer, ExternalCouponSystem, ExternalCouponSystems
from cdp.offers.providers import RetryPolicy
from cdp.offers.service import CouponNotGrantedError, IssueRequest, OfferService, PayoutPendingError
from cdp.offers.wechat_pay_coupons import WeChatPayCoupons
from cdp.org import load_org
from cdp.profile.models import ConsentState, Profile
from cdp_local.fake_wechat_pay import FakeWeChatPay, IssuedCoupon
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from tests.fakes.channels import InMemorySendLedger, RecordingChannel
from tests.fakes.profiles import InMemoryProfiles
from tests.integration.offers.test_offer_service_moto import Bus

BRAND = "demo-brand"
T0 = datetime(2026, 12, 7, 2, tzinfo=UTC)
ADMIN = ApiClient("marketer", frozenset({"offers:read", "offers:write", "offers:issue"}))
APP = "wx-local-oa"
ANN_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
STOCK = "9856000"
SMS_OK = {"sms": ConsentState(granted=True, changed_at=T0 - timedelta(days=3), source="app")}


class Accounts(ExternalCouponSystems):
    def __init__(self, system: ExternalCouponSystem | None) -> None:
        self.system = system

    def coupons_for(self, brand_id: str, system: str) -> ExternalCouponSystem | None:
        return self.system if brand_id == BRAND and system == "wechat_pay" else None


@dataclass
class World:
    service: OfferService
    fake: FakeWeChatPay
    bus: Bus
    slept: list[float]
    accounts: Accounts
    people: InMemoryProfiles

    def issue(self, person: str, issue_id: str) -> Any:
        return self.service.issue(BRAND, "wxpay-20", IssueRequest(person_id=person, issue_id=issue_id), ADMIN)

    def pool(self) -> tuple[int, int, int]:
        (balance,) = self.service.pools(BRAND, ADMIN).pools
        return balance.available_minor, balance.reserved_minor, balance.committed_minor

    def issued(self) -> int:
        return self.service.get(BRAND, "wxpay-20", ADMIN).issued


def merchant(fake: FakeWeChatPay, **changes: Any) -> WeChatPayMerchant:
    return WeChatPayMerchant.model_validate(fake.merchant(timeout_s=0.5, **changes))


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), atomic_dynamodb(), FakeWeChatPay(wxappid=APP) as fake:
        fake.add_stock(STOCK, remaining=3, max_per_user=1)
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        people = InMemoryProfiles(
            [
                Profile(person_id=p, brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=ids, consent=SMS_OK)
                for p, ids in (
                    ("ann", ["phone:+8613800138000", f"wechat_openid:{APP}:{ANN_OPENID}"]),
                    ("bob", ["phone:+8613911118888", "wechat_openid:wx-another-app:oBOB"]),
                    ("cat", ["phone:+8613922229999", f"wechat_openid:{APP}:oCAT"]),
                    ("dan", ["phone:+8613933330000", f"wechat_openid:{APP}:oDAN"]),
                )
            ]
        )
        bus, slept = Bus(), []
        accounts = Accounts(WeChatPayCoupons(merchant(fake)))
        issuer = ExternalCouponIssuer(accounts, RetryPolicy(attempts=3, backoff_s=(0.01,)), slept.append, lambda: T0)
        service = OfferService(store, store.budgets, people, bus, load_org(), now=lambda: T0, coupons=issuer)
        pool = BudgetPool(brand_id=BRAND, pool_id="wxpay", total_minor=10_000, currency="CNY", form="coupon")
        service.define_pool(pool, ADMIN)
        offer = {
            "brand_id": BRAND,
            "offer_id": "wxpay-20",
            "name": "微信支付满100减20",
            "currency": "CNY",
            "coupon": {
                "amount_off_minor": 2_000,
                "threshold_minor": 10_000,
                "codes": "external",
                "external": {"system": "wechat_pay", "stock_id": STOCK},
            },
            "validity": {"days": 30},
            "budget_pools": ["wxpay"],
        }
        service.define(Offer.model_validate(offer), ADMIN)
        yield World(service, fake, bus, slept, accounts, people)


def _order(code: str, order_id: str) -> Any:
    return parse_event(
        {
            "event_id": f"mp-{order_id}",
            "event_type": "order_placed",
            "source": "mini_program",
            "brand_id": BRAND,
            "occurred_at": (T0 + timedelta(days=2)).isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138000"}],
            "properties": {
                "order_id": order_id,
                "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 12_800}],
                "total_minor": 10_800,
                "currency": "CNY",
                "coupon_code": code,
            },
        }
    )


def test_a_granted_coupon_carries_wechat_pays_id_as_its_code_and_an_order_naming_it_redeems_it(world: World) -> None:
    # When ann is issued the WeChat Pay coupon, then the same issue is asked again
    first = world.issue("ann", "wx-1")
    again = world.issue("ann", "wx-1")
    # Then WeChat Pay issued one coupon of the stock to her OpenID, and its id is the entry's code
    assert first.new and not again.new and again.entry == first.entry
    (coupon,) = world.fake.coupons.values()
    assert (coupon.openid, coupon.stock_id) == (ANN_OPENID, STOCK)
    assert (first.entry.state, first.entry.code) == ("issued", coupon.coupon_id)
    assert first.payout is not None and (first.payout.status, first.payout.provider_ref) == (
        "granted",
        coupon.coupon_id,
    )
    assert first.payout.bill_no == coupon.out_request_no and len(world.fake.coupon_calls()) == 1
    assert world.pool() == (8_000, 2_000, 0)
    (issued,) = {e.event_id: e for e in world.bus.events if e.event_type == "coupon_issued"}.values()
    assert issued.properties.code == coupon.coupon_id
    # When her mini-program order pays with it (128 of lines, 108 paid), twice delivered
    assert world.service.redeem_from(_order(coupon.coupon_id, "MP-1")) == f"{first.entry.issue_id} redeemed for MP-1"
    assert world.service.redeem_from(_order(coupon.coupon_id, "MP-1")) is None
    # Then 20 yuan is spent from the pool, once
    assert world.pool() == (8_000, 0, 2_000)


def test_a_stock_used_up_at_wechat_pay_undoes_the_issue(world: World) -> None:
    # Given the stock has no coupon left at WeChat Pay
    world.fake.add_stock(STOCK, remaining=0)
    with pytest.raises(CouponNotGrantedError) as refused:
        world.issue("ann", "wx-2")
    # Then the 409 carries WeChat Pay's reason, the entry is failed without a code, nothing is held or counted
    assert refused.value.reason == "NOT_ENOUGH" and refused.value.error_code == "coupon_not_granted"
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (entry.state, entry.code, entry.payout and entry.payout.reason) == ("failed", None, "NOT_ENOUGH")
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0
    assert len(world.fake.coupon_calls()) == 1  # a final refusal is not asked again
    # And the same issue id answers the same refusal without calling WeChat Pay
    with pytest.raises(CouponNotGrantedError):
        world.issue("ann", "wx-2")
    assert len(world.fake.coupon_calls()) == 1
    # And once the stock is topped up, a new issue id is granted (her per-person limit was given back)
    world.fake.add_stock(STOCK, remaining=5)
    assert world.issue("ann", "wx-3").entry.code is not None
    assert world.pool() == (8_000, 2_000, 0) and world.issued() == 1


def test_a_lost_answer_is_asked_again_under_the_same_request_and_one_coupon_is_issued(world: World) -> None:
    # Given WeChat Pay issues the coupon and then answers SYSTEM_ERROR (the answer is lost)
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, issued=True)
    result = world.issue("ann", "wx-4")
    # Then the retry names the same out_request_no and WeChat Pay answers the coupon it issued: one coupon
    calls = world.fake.coupon_calls()
    assert len(calls) == 2 and {c["out_request_no"] for c in calls} == {result.payout.bill_no}
    assert len(world.fake.coupons) == 1 and result.entry.code == next(iter(world.fake.coupons.values())).coupon_id
    assert (result.payout.attempts, world.slept) == (2, [0.01])


def test_no_answer_at_all_keeps_the_hold_without_a_code_until_asked_again(world: World) -> None:
    # Given WeChat Pay answers 500 to every attempt (having issued the coupon on the first)
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, issued=True)
    world.fake.fail_coupons_next("FREQUENCY_LIMITED", status=429, times=2)
    with pytest.raises(PayoutPendingError) as pending:
        world.issue("ann", "wx-5")
    # Then the entry stays issued, pending, without a code, and its cost stays held
    assert "coupon" in str(pending.value)
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (entry.state, entry.code, entry.payout and entry.payout.status) == ("issued", None, "pending")
    assert world.pool() == (8_000, 2_000, 0) and world.issued() == 1
    # When the same issue is asked again, WeChat Pay answers: the code is attached, one coupon
    result = world.issue("ann", "wx-5")
    assert result.entry.code is not None and len(world.fake.coupons) == 1
    assert world.pool() == (8_000, 2_000, 0)


def test_the_persons_limit_at_wechat_pay_is_a_final_refusal(world: World) -> None:
    # Given dan already holds the stock's one coupon per person, issued outside this platform
    world.fake.state.coupons["outside-1"] = IssuedCoupon("8000000001", STOCK, "oDAN", "outside-1")
    with pytest.raises(CouponNotGrantedError) as refused:
        world.issue("dan", "wx-7")
    # Then WeChat Pay's RULE_LIMIT undoes the issue: nothing held, the platform's count given back
    assert refused.value.reason == "RULE_LIMIT"
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0


def test_a_person_without_an_openid_of_the_merchants_app_is_refused_before_anything_is_issued(world: World) -> None:
    with pytest.raises(CouponNotGrantedError) as refused:
        world.issue("bob", "wx-8")
    assert refused.value.reason == "no_openid" and refused.value.entry is None
    assert world.fake.coupon_calls() == [] and world.service.wallet(BRAND, "bob", ADMIN).entries == []
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0


def test_without_an_account_external_coupons_are_refused_before_anything_is_held(world: World) -> None:
    world.accounts.system = None
    with pytest.raises(CouponNotGrantedError) as refused:
        world.issue("ann", "wx-9")
    assert refused.value.reason == "no_provider" and world.pool() == (10_000, 0, 0) and world.issued() == 0


def test_an_answer_not_signed_by_wechat_pay_is_not_trusted(world: World) -> None:
    # Given the configured WeChat Pay public key is another one (a man in the middle, a wrong key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    v3 = merchant(world.fake).api_v3
    assert v3 is not None
    pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    wrong = v3.model_copy(update={"wechatpay_public_key_pem": pem})
    world.accounts.system = WeChatPayCoupons(merchant(world.fake).model_copy(update={"api_v3": wrong}))
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "wx-10")
    # Then the coupon WeChat Pay did issue is not attached on an answer that does not verify: held, no code
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (entry.code, entry.payout and entry.payout.reason) == (None, "BAD_SIGNATURE")
    # When the right key is configured again, the same issue gets the one coupon
    world.accounts.system = WeChatPayCoupons(merchant(world.fake))
    assert world.issue("ann", "wx-10").entry.code is not None and len(world.fake.coupons) == 1


def test_concurrent_issues_of_one_claim_get_one_coupon(world: World) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def claim() -> None:
        start.wait()
        try:
            results.append(world.issue("cat", "wx-11"))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({r.entry.code for r in results}) == 1 and len(world.fake.coupons) == 1
    assert world.pool() == (8_000, 2_000, 0) and world.issued() == 1


def test_a_campaign_send_issues_each_recipient_a_wechat_pay_coupon_and_skips_who_cannot_get_one(world: World) -> None:
    # Given an SMS step whose offer is the WeChat Pay coupon, to ann (an OpenID of the merchant's app) and bob (none)
    step = SendBatchRequest.model_validate(
        {
            "campaign_id": "wxpay_week",
            "run_id": "wxpay_week-v1-20261207T0200Z",
            "brand_id": BRAND,
            "step": "touch1",
            "channel": "sms",
            "template": {"body": "微信支付券 {{ offer.code }} 已放入您的卡包"},
            "offer": {"offer_id": "wxpay-20"},
            "person_ids": ["ann", "bob"],
        }
    )
    channel, ledger = RecordingChannel(), InMemorySendLedger()
    result = send_batch(
        step, world.people, world.people, ledger, {"sms": channel}, T0, offers=WalletOffers(world.service)
    )
    # Then ann's message names the coupon WeChat Pay issued her; bob's message does not leave, nothing held for him
    (coupon,) = world.fake.coupons.values()
    assert (result.sent, result.suppressed_offer) == (1, 1)
    assert channel.sent[0].body == f"微信支付券 {coupon.coupon_id} 已放入您的卡包" and coupon.openid == ANN_OPENID
    assert world.pool() == (8_000, 2_000, 0) and world.issued() == 1


def test_the_tick_asks_again_about_a_pending_coupon_and_attaches_its_code(world: World) -> None:
    # Given a coupon WeChat Pay issued but never answered for (every attempt lost)
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, issued=True)
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, times=2)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "wx-12")
    assert not [e for e in world.bus.events if e.event_type == "coupon_issued"]
    # When the tick settles pending issues (WeChat Pay answers again)
    settled = world.service.settle_pending()
    # Then the one coupon's id is attached, its issue reaches the timeline, and nothing is left to ask
    (coupon,) = world.fake.coupons.values()
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (settled.done, settled.failed, settled.pending) == (1, 0, 0)
    assert (entry.code, entry.payout and entry.payout.status) == (coupon.coupon_id, "granted")
    assert [e.properties.code for e in world.bus.events if e.event_type == "coupon_issued"] == [coupon.coupon_id]
    assert world.service.settle_pending().done == 0 and world.pool() == (8_000, 2_000, 0)


def test_the_tick_undoes_a_pending_coupon_wechat_pay_then_refuses(world: World) -> None:
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, times=3)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "wx-13")
    world.fake.add_stock(STOCK, remaining=0)
    settled = world.service.settle_pending()
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (settled.failed, entry.state, entry.payout and entry.payout.reason) == (1, "failed", "NOT_ENOUGH")
    assert world.pool() == (10_000, 0, 0) and world.issued() == 0
    assert world.service.settle_pending().failed == 0  # nothing left to ask


def test_a_pending_coupon_stays_pending_when_its_second_asking_cannot_even_call(world: World) -> None:
    # Given a coupon WeChat Pay may have issued (no answer), then the merchant's v3 credentials leave the secret
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, issued=True)
    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, times=2)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "wx-14")
    world.accounts.system = None
    # When the tick asks again: nothing can be called, and nothing is undone (the coupon may exist at WeChat Pay)
    settled = world.service.settle_pending()
    (entry,) = world.service.wallet(BRAND, "ann", ADMIN).entries
    assert (settled.done, settled.failed, settled.pending) == (0, 0, 1)
    assert (entry.state, entry.payout and entry.payout.status) == ("issued", "pending")
    assert world.pool() == (8_000, 2_000, 0) and world.issued() == 1
    # And once the credentials are back, the same request gets the one coupon
    world.accounts.system = WeChatPayCoupons(merchant(world.fake))
    assert world.service.settle_pending().done == 1 and len(world.fake.coupons) == 1


def test_one_pending_entry_that_cannot_be_settled_does_not_stop_the_tick(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdp.errors import StoreError

    world.fake.fail_coupons_next("SYSTEM_ERROR", status=500, times=3)
    with pytest.raises(PayoutPendingError):
        world.issue("ann", "wx-15")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the offers table throttled")

    monkeypatch.setattr(world.service.store, "attach_code", broken)
    settled = world.service.settle_pending()  # no exception: logged, asked again next tick
    assert (settled.done, settled.failed, settled.pending) == (0, 0, 1)
