"""The WeChat Pay cash coupon adapter (API v3) against the fake's protocol in-process (no sockets): the request's
signature, the answer's verification (key, freshness, signature) and the mapping of WeChat Pay's errors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from cdp.connectors.sources import WeChatPayMerchant
from cdp.offers.external_coupons import CouponGrant
from cdp.offers.providers import PayoutRefusedError, PayoutUnavailableError
from cdp.offers.wechat_pay_coupons import HttpTransport, WeChatPayCoupons
from cdp_local.fake_wechat_pay import MERCHANT_SERIAL, FakeWeChatPay

STOCK = "9856000"
T0 = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 01:30 on 7 December in China


@pytest.fixture
def fake() -> Iterator[FakeWeChatPay]:
    wechat_pay = FakeWeChatPay(wxappid="wx-local-oa")  # never started: called in-process
    wechat_pay.add_stock(STOCK, remaining=2)
    yield wechat_pay
    wechat_pay.stop()


def in_process(fake: FakeWeChatPay, tamper: Any = None) -> HttpTransport:
    def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        status, answer_headers, answer = fake.answer_v3(method, urlsplit(url).path, headers["authorization"], body)
        lowered = {k.lower(): v for k, v in answer_headers.items()}
        return tamper(status, lowered, answer) if tamper else (status, lowered, answer)

    return send


def coupons(fake: FakeWeChatPay, tamper: Any = None, **changes: Any) -> WeChatPayCoupons:
    merchant = WeChatPayMerchant.model_validate(fake.merchant(**changes))
    return WeChatPayCoupons(merchant, in_process(fake, tamper))


def grant(request_no: str = "1900000109202612070000000001", openid: str = "oANN") -> CouponGrant:
    return CouponGrant(request_no=request_no, openid=openid, stock_id=STOCK, creator_mch_id=None)


def test_a_signed_request_is_granted_and_the_same_request_number_answers_the_same_coupon(
    fake: FakeWeChatPay,
) -> None:
    system = coupons(fake)
    first, again = system.grant(grant()), system.grant(grant())
    assert first == again and len(fake.coupons) == 1
    (call, _) = fake.coupon_calls()
    assert call == {
        "openid": "oANN",
        "stock_id": STOCK,
        "out_request_no": "1900000109202612070000000001",
        "appid": "wx-local-oa",
        "stock_creator_mchid": "1900000109",
    }


def test_the_authorization_header_has_wechat_pays_shape() -> None:
    fake = FakeWeChatPay()
    header = coupons(fake).authorization("POST", "/v3/marketing/favor/users/o1/coupons", "{}")
    fake.stop()
    schema, _, rest = header.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    assert schema == "WECHATPAY2-SHA256-RSA2048"
    assert set(fields) == {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    assert fields["serial_no"] == MERCHANT_SERIAL and len(fields["nonce_str"]) == 32


def test_the_request_number_is_the_merchant_the_china_day_and_a_digest_of_the_issue(fake: FakeWeChatPay) -> None:
    system = coupons(fake)
    number = system.request_no("demo-brand", "wxpay-20:ann:1", T0)
    assert number.startswith("190000010920261207") and len(number) == 28
    assert number != system.request_no("demo-brand", "wxpay-20:ann:2", T0)


@pytest.mark.parametrize(("remaining", "expected"), [(0, "NOT_ENOUGH")])
def test_a_used_up_stock_is_a_final_refusal(fake: FakeWeChatPay, remaining: int, expected: str) -> None:
    fake.add_stock(STOCK, remaining=remaining)
    with pytest.raises(PayoutRefusedError) as refused:
        coupons(fake).grant(grant())
    assert refused.value.code == expected and "批次预算不足" in refused.value.message


def test_an_unknown_stock_and_a_bad_signature_are_final(fake: FakeWeChatPay) -> None:
    with pytest.raises(PayoutRefusedError, match="RESOURCE_NOT_EXISTS"):
        coupons(fake).grant(CouponGrant("r-1", "oANN", "111", None))
    other = FakeWeChatPay()
    try:
        wrong_key = other.merchant()["api_v3"]["private_key_pem"]
    finally:
        other.stop()
    v3 = {**fake.merchant()["api_v3"], "private_key_pem": wrong_key}
    with pytest.raises(PayoutRefusedError, match="SIGN_ERROR"):
        coupons(fake, api_v3=v3).grant(grant())
    assert fake.coupons == {}


@pytest.mark.parametrize(("status", "code"), [(500, "SYSTEM_ERROR"), (429, "FREQUENCY_LIMITED")])
def test_server_errors_and_rate_limits_may_be_asked_again(fake: FakeWeChatPay, status: int, code: str) -> None:
    fake.fail_coupons_next(code, status=status)
    with pytest.raises(PayoutUnavailableError, match=code):
        coupons(fake).grant(grant())


def _drop_signature(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {k: v for k, v in headers.items() if k != "wechatpay-signature"}, body


def _forge_body(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, headers, b'{"coupon_id":"1"}'


def _old(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {**headers, "wechatpay-timestamp": str(int(headers["wechatpay-timestamp"]) - 600)}, body


def _other_key(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {**headers, "wechatpay-serial": "PUB_KEY_ID_OTHER"}, body


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_drop_signature, "UNSIGNED_ANSWER"),
        (_forge_body, "BAD_SIGNATURE"),
        (_old, "STALE_ANSWER"),
        (_other_key, "UNKNOWN_KEY"),
    ],
)
def test_an_answer_wechat_pay_did_not_sign_is_not_trusted(fake: FakeWeChatPay, tamper: Any, code: str) -> None:
    with pytest.raises(PayoutUnavailableError, match=code):
        coupons(fake, tamper).grant(grant())


def test_bad_v3_keys_fail_the_sources_document_with_the_field_named(fake: FakeWeChatPay) -> None:
    v3 = {
        **fake.merchant()["api_v3"],
        "private_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    }
    with pytest.raises(ValidationError, match="private_key_pem is not an unencrypted PEM private key"):
        WeChatPayMerchant.model_validate(fake.merchant(api_v3=v3))
    v3 = {**fake.merchant()["api_v3"], "serial_no": "not hex"}
    with pytest.raises(ValidationError, match="serial_no"):
        WeChatPayMerchant.model_validate(fake.merchant(api_v3=v3))
