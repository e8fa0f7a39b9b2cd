"""WeChat Pay's red packet adapter without a network: the v2 MD5 signature against WeChat Pay's own published example,
the bill number, the XML both ways, how each answer is classed (final refusal or send again), the merchant settings,
and the payer's policy (retries with the same bill, then asking what became of it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cdp.connectors.sources import WeChatPayMerchant
from cdp.offers.providers import PayoutRefusedError, PayoutUnavailableError, RetryPolicy, wechat_openid
from cdp.offers.red_packets import (
    BillStatus,
    PacketRequest,
    RedPacketOrder,
    RedPacketPayer,
    RedPacketProvider,
    RedPacketProviders,
    SentPacket,
)
from cdp.offers.wechat_pay import WeChatPayRedPackets, bill_no, from_xml, to_xml, wechat_pay_sign

KEY = "192006250b4c09247ec02edce69f6a2d"  # WeChat Pay's documented example key (安全规范, 签名算法)
T0 = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 01:30 on 7 December in China


def merchant(**changes: Any) -> WeChatPayMerchant:
    raw = {
        "mch_id": "1900000109",
        "wxappid": "wxd930ea5d5a258f4f",
        "key": KEY,
        "send_name": "Demo Bakery",
        "client_ip": "10.0.0.1",
        "endpoint": "http://127.0.0.1:9",
    }
    return WeChatPayMerchant.model_validate(raw | changes)


def test_the_signature_matches_wechat_pays_published_example() -> None:
    # Given the parameters and key of WeChat Pay's signing example
    params = {
        "appid": "wxd930ea5d5a258f4f",
        "mch_id": "10000100",
        "device_info": "1000",
        "body": "test",
        "nonce_str": "ibuaiVcKdpRxkhJA",
    }
    # Then the sign is the documented one; `sign` itself and empty values take no part
    assert wechat_pay_sign(params, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert wechat_pay_sign({**params, "sign": "X", "remark": ""}, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert wechat_pay_sign({**params, "body": "test2"}, KEY) != "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_a_bill_number_is_28_characters_stable_per_issue_and_dated_in_china_time() -> None:
    # Given an issue made at 01:30 on 7 December China time (still 6 December in UTC)
    first = bill_no("1900000109", "demo-brand", "offer:p-1:claim:abc", T0)
    # Then it is mch_id + the China date + an alphanumeric tail, 28 characters, the same on every call
    assert len(first) == 28 and first.isalnum() and first.startswith("190000010920261207")
    assert first == bill_no("1900000109", "demo-brand", "offer:p-1:claim:abc", T0)
    # And another issue or another brand names another bill
    assert first != bill_no("1900000109", "demo-brand", "offer:p-1:claim:abd", T0)
    assert first != bill_no("1900000109", "other-brand", "offer:p-1:claim:abc", T0)


def test_xml_is_escaped_going_out_and_read_safely_coming_back() -> None:
    raw = to_xml({"act_name": "蛋糕 <满300> & more", "total_amount": "888"})
    assert (
        raw == "<xml><act_name>蛋糕 &lt;满300&gt; &amp; more</act_name><total_amount>888</total_amount></xml>".encode()
    )
    assert from_xml(raw) == {"act_name": "蛋糕 <满300> & more", "total_amount": "888"}
    assert from_xml(b"<xml><a><![CDATA[SUCCESS]]></a></xml>") == {"a": "SUCCESS"}
    # an entity, a DTD or another root is refused (defusedxml), never expanded
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'
    for bad in (evil, b"<html>proxy error</html>", b"not xml"):
        with pytest.raises(ValueError):
            from_xml(bad)


Answer = dict[str, str]


def provider(*answers: Answer | bytes | Exception, **changes: Any) -> tuple[WeChatPayRedPackets, list[dict[str, str]]]:
    """The adapter on a transport that answers `answers` in turn and records what it was sent."""
    sent: list[dict[str, str]] = []
    queue = list(answers)

    def transport(url: str, body: bytes) -> bytes:
        sent.append({"url": url, **from_xml(body)})
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, bytes) else to_xml(answer)

    return WeChatPayRedPackets(merchant(**changes), transport), sent


ORDER = RedPacketOrder("190000010920261207T1H35VHZVK", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", 888, "好评红包", "谢谢", "r")
OK = {"return_code": "SUCCESS", "result_code": "SUCCESS", "send_listid": "100000000020150520314766074200"}


def refused(code: str) -> Answer:
    return {"return_code": "SUCCESS", "result_code": "FAIL", "err_code": code, "err_code_des": f"{code} text"}


def test_a_send_posts_every_field_signed_to_sendredpack() -> None:
    red_packets, sent = provider(OK)
    assert red_packets.send(ORDER) == SentPacket(ORDER.bill_no, "100000000020150520314766074200")
    (call,) = sent
    assert call["url"] == "http://127.0.0.1:9/mmpaymkttransfers/sendredpack"
    expected = {
        "mch_billno": ORDER.bill_no,
        "mch_id": "1900000109",
        "wxappid": "wxd930ea5d5a258f4f",
        "send_name": "Demo Bakery",
        "re_openid": ORDER.openid,
        "total_amount": "888",
        "total_num": "1",
        "wishing": "谢谢",
        "client_ip": "10.0.0.1",
        "act_name": "好评红包",
        "remark": "r",
    }
    assert {k: call[k] for k in expected} == expected
    assert len(call["nonce_str"]) == 32 and "scene_id" not in call
    assert call["sign"] == wechat_pay_sign({k: v for k, v in call.items() if k != "url"}, KEY)


@pytest.mark.parametrize("code", ["NOTENOUGH", "SENDNUM_LIMIT", "OPENID_ERROR", "MONEY_LIMIT", "SEND_FAILED"])
def test_final_refusals_are_permanent(code: str) -> None:
    red_packets, _ = provider(refused(code))
    with pytest.raises(PayoutRefusedError) as refusal:
        red_packets.send(ORDER)
    assert refusal.value.code == code


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (refused("SYSTEMERROR"), "SYSTEMERROR"),
        (refused("PROCESSING"), "PROCESSING"),
        (refused("FREQ_LIMIT"), "FREQ_LIMIT"),
        (refused("SOMETHING_NEW"), "SOMETHING_NEW"),  # unknown: not final, the payer asks about the bill
        ({"return_code": "FAIL", "return_msg": "系统繁忙", "err_code": "SYSTEMERROR"}, "SYSTEMERROR"),
        (PayoutUnavailableError("UNREACHABLE", "timed out"), "UNREACHABLE"),
    ],
)
def test_transient_answers_and_timeouts_may_be_sent_again(answer: Answer | Exception, code: str) -> None:
    red_packets, _ = provider(answer)
    with pytest.raises(PayoutUnavailableError) as unavailable:
        red_packets.send(ORDER)
    assert unavailable.value.code == code


def test_a_refused_call_and_a_garbled_or_forged_answer_are_told_apart() -> None:
    # return_code FAIL without an err_code: the call itself was refused (a bad sign), nothing was taken
    red_packets, _ = provider({"return_code": "FAIL", "return_msg": "签名错误"})
    with pytest.raises(PayoutRefusedError, match="RETURN_FAIL"):
        red_packets.send(ORDER)
    # an answer that is not XML (a proxy's page) may hide a sent packet: transient
    garbled, _ = provider(b"<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(PayoutUnavailableError, match="BAD_ANSWER"):
        garbled.send(ORDER)
    # an answer signed with another key is not believed
    forged = {**OK, "sign": "0" * 32}
    liar, _ = provider(forged)
    with pytest.raises(PayoutUnavailableError, match="BAD_SIGNATURE"):
        liar.send(ORDER)


def test_a_lookup_says_sent_failed_or_never_seen() -> None:
    found = {"return_code": "SUCCESS", "result_code": "SUCCESS", "status": "RECEIVED", "detail_id": "D1"}
    red_packets, sent = provider(found, refused("NOT_FOUND"), {**found, "status": "FAILED", "reason": "risk"})
    assert red_packets.lookup(ORDER.bill_no) == BillStatus(state="sent", provider_ref="D1")
    assert red_packets.lookup(ORDER.bill_no) == BillStatus(state="not_found")
    assert red_packets.lookup(ORDER.bill_no) == BillStatus(state="failed", reason="risk")
    assert sent[0]["url"].endswith("/mmpaymkttransfers/gethbinfo") and sent[0]["bill_type"] == "MCHT"
    assert sent[0]["appid"] == "wxd930ea5d5a258f4f" and sent[0]["mch_billno"] == ORDER.bill_no


def test_amounts_outside_1_to_200_yuan_need_a_scene() -> None:
    red_packets, _ = provider()
    assert red_packets.check(100) is None and red_packets.check(20_000) is None
    assert "1.00 to 200.00 CNY" in (red_packets.check(99) or "")
    assert "1.00 to 200.00 CNY" in (red_packets.check(20_001) or "")
    with_scene, _ = provider(scene_id="PRODUCT_2")
    assert with_scene.check(30) is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"endpoint": "http://api.mch.weixin.qq.com"}, "https URL"),
        ({"endpoint": "https://api.mch.weixin.qq.com"}, "API certificate"),
        ({"client_ip": "::1"}, "IPv4"),
        ({"key": "short"}, "32-character"),
        ({"mch_id": "19x"}, "mch_id"),
        ({"send_name": "x" * 33}, "send_name"),
        ({"scene_id": "PRODUCT_9"}, "scene_id"),
    ],
)
def test_a_merchant_that_could_never_pay_is_refused_when_the_secret_is_read(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        merchant(**changes)


# ---- the payer's policy, on a scripted provider --------------------------------------------------------------


class Scripted(RedPacketProvider, RedPacketProviders):
    name = "scripted"

    def __init__(self, sends: list[SentPacket | Exception], lookups: list[BillStatus | Exception] | None = None):
        self.sends, self.lookups = sends, lookups or []
        self.orders: list[RedPacketOrder] = []

    @property
    def app_id(self) -> str:
        return "WX-App"

    def bill_no(self, brand_id: str, issue_id: str, issued_at: datetime) -> str:
        return f"bill-{issue_id}"

    def check(self, amount_minor: int) -> str | None:
        return None if amount_minor <= 20_000 else "too much"

    def send(self, order: RedPacketOrder) -> SentPacket:
        self.orders.append(order)
        return _next(self.sends)

    def lookup(self, bill_no: str) -> BillStatus:
        return _next(self.lookups)

    def for_brand(self, brand_id: str) -> RedPacketProvider | None:
        return self if brand_id == "demo-brand" else None


def _next(queue: list[Any]) -> Any:
    item = queue.pop(0)
    if isinstance(item, Exception):
        raise item
    return item


PACKET = PacketRequest("demo-brand", "rp:p1:1", T0, 888, "CNY", "好评红包", "谢谢", "r")
PERSON = ["phone:+8613800138000", "wechat_openid:wx-app:oOPENID1"]
SYSTEMERROR = PayoutUnavailableError("SYSTEMERROR", "请求已受理")


def pay(scripted: Scripted, packet: PacketRequest = PACKET, person: list[str] = PERSON) -> tuple[Any, list[float]]:
    slept: list[float] = []
    payer = RedPacketPayer(scripted, RetryPolicy(attempts=3, backoff_s=(0.2, 1.0)), slept.append, lambda: T0)
    return payer.pay(packet, person), slept


def test_a_transient_failure_is_sent_again_under_the_same_bill_and_paid() -> None:
    scripted = Scripted([SYSTEMERROR, SentPacket("bill-rp:p1:1", "L1")])
    payout, slept = pay(scripted)
    assert (payout.status, payout.provider_ref, payout.attempts, slept) == ("paid", "L1", 2, [0.2])
    assert {o.bill_no for o in scripted.orders} == {"bill-rp:p1:1"} and scripted.orders[0].openid == "oOPENID1"


def test_when_every_attempt_fails_the_bill_is_looked_up_before_anything_is_released() -> None:
    sent = pay(Scripted([SYSTEMERROR] * 3, [BillStatus(state="sent", provider_ref="L9")]))[0]
    assert (sent.status, sent.provider_ref, sent.attempts) == ("paid", "L9", 3)
    never, slept = pay(Scripted([SYSTEMERROR] * 3, [BillStatus(state="not_found")]))
    assert (never.status, never.reason, slept) == ("failed", "SYSTEMERROR", [0.2, 1.0])
    unknown = pay(Scripted([SYSTEMERROR] * 3, [PayoutUnavailableError("SYSTEMERROR", "busy")]))[0]
    assert (unknown.status, unknown.bill_no) == ("pending", "bill-rp:p1:1")


def test_a_final_refusal_is_not_sent_again() -> None:
    scripted = Scripted([PayoutRefusedError("NOTENOUGH", "帐号余额不足")])
    payout, slept = pay(scripted)
    assert (payout.status, payout.reason, payout.attempts, slept, len(scripted.orders)) == (
        "failed",
        "NOTENOUGH",
        1,
        [],
        1,
    )


OTHER_APP_ONLY = ["phone:+8613800138000", "wechat_openid:wx-other:o2"]


@pytest.mark.parametrize(
    ("brand", "amount", "currency", "person", "status", "reason"),
    [
        ("demo-brand", 888, "CNY", OTHER_APP_ONLY, "failed", "no_openid"),
        ("demo-brand", 888, "USD", PERSON, "failed", "currency"),
        ("demo-brand", 50_000, "CNY", PERSON, "failed", "amount"),
        ("other-brand", 888, "CNY", PERSON, "not_configured", "no_provider"),
    ],
)
def test_what_is_refused_before_any_call(
    brand: str, amount: int, currency: str, person: list[str], status: str, reason: str
) -> None:
    scripted = Scripted([])
    payout, _ = pay(scripted, PacketRequest(brand, "i", T0, amount, currency, "a", "w", "r"), person)
    assert (payout.status, payout.reason, payout.attempts, scripted.orders) == (status, reason, 0, [])


def test_the_openid_is_the_one_scoped_to_the_merchants_app() -> None:
    keys = ["wechat_unionid:u1", "wechat_openid:wx-a:o-a", "wechat_openid:wx-b:o-b"]
    assert wechat_openid(keys, "WX-B") == "o-b"
    assert wechat_openid(keys, "wx-c") is None
