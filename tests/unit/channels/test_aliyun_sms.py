"""The Alibaba Cloud SMS sender against the loopback fake in-process: the RPC signature v1 (Alibaba Cloud's own
published examples), the SendSms fields, and how every ending maps onto the channel port."""

# ruff: noqa: RUF001 - Chinese template texts, with full-width punctuation

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.channels.aliyun_sms import (
    AliyunSmsChannel,
    canonical_query,
    percent_encode,
    phone_numbers,
    sign,
    string_to_sign,
)
from cdp.channels.models import OutboundMessage
from cdp.channels.ports import DeliveryRejected
from cdp.channels.retries import Backoff, RetryingChannel
from cdp.connectors.feedback import parse_out_id
from cdp.connectors.sender_accounts import AliyunSms
from cdp.errors import ChannelError
from cdp.shared.http import HttpAnswer, HttpUnreachable
from cdp_local.fakes.aliyun_sms import ACCESS_KEY_SECRET, FakeAliyunSms

NOW = datetime(2026, 3, 2, 2, 0, 5, tzinfo=UTC)
PHONE = "+8613800138000"
MESSAGE_ID = "5d9e2f4a-7b1c-5e3d-8f6a-1b2c3d4e5f60"
TEMPLATE = "SMS_468190012"


@pytest.fixture
def fake() -> Iterator[FakeAliyunSms]:
    fake = FakeAliyunSms(clock=lambda: NOW, daily_limit=5)
    fake.register_template(TEMPLATE, "亲爱的${name}，春季新品${product}上市，回TD退订")
    yield fake
    fake.stop()


def message(**overrides: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "campaign_id": "spring-launch",
        "run_id": "r1",
        "step": "touch1",
        "channel": "sms",
        "person_id": "p1",
        "brand_id": "demo-brand",
        "address": PHONE,
        "body": "【本地测试】亲爱的小王，春季新品草莓蛋糕上市，回TD退订",
        "template_ref": TEMPLATE,
        "fields": {"name": "小王", "product": "草莓蛋糕"},
        "created_at": NOW,
    }
    return OutboundMessage(**{**base, **overrides})


def channel(fake: FakeAliyunSms, nonce: str | None = None, at: datetime = NOW, **account: Any) -> AliyunSmsChannel:
    """The sender on `fake` in-process at `at`; with `nonce`, every request signs with that nonce (else a new one)."""
    fixed: dict[str, Any] = {} if nonce is None else {"nonce": lambda: nonce}
    return AliyunSmsChannel(AliyunSms(**fake.account(**account)), transport=fake.transport(), clock=lambda: at, **fixed)


def rejected(fake: FakeAliyunSms, msg: OutboundMessage | None = None, **kwargs: Any) -> DeliveryRejected:
    with pytest.raises(DeliveryRejected) as caught:
        channel(fake, **kwargs).send(msg or message())
    assert "13800138000" not in str(caught.value)  # never the number
    assert ACCESS_KEY_SECRET not in str(caught.value)  # never the secret
    return caught.value


# ---- signature method v1 --------------------------------------------------------------------------------------

# Alibaba Cloud's signature mechanism page: DescribeRegions with AccessKey ID testid and secret testsecret.
DESCRIBE_REGIONS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "TimeStamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}


def test_the_documented_describe_regions_example() -> None:
    assert string_to_sign(DESCRIBE_REGIONS, "GET") == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    )
    assert sign(DESCRIBE_REGIONS, "testsecret", "GET") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="
    # the same request with the parameter spelled Timestamp, as in the later pages of the same example
    spelled = {("Timestamp" if k == "TimeStamp" else k): v for k, v in DESCRIBE_REGIONS.items()}
    assert sign(spelled, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_the_documented_send_sms_example_with_a_chinese_sign_name() -> None:
    """SMS's "HTTP protocol and signature" page: its SendSms request is signed zJDF+Lrzhj/ThnlvIToysFRq6t4=."""
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert sign(params, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert sign({**params, "Signature": "ignored"}, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_percent_encoding_follows_rfc_3986_with_alibabas_rules() -> None:
    assert percent_encode("a b") == "a%20b"  # a space is %20, never +
    assert percent_encode("*") == "%2A"
    assert percent_encode("~-_.AZaz09") == "~-_.AZaz09"  # unreserved: left alone (~ is not %7E)
    assert percent_encode("+/=&:") == "%2B%2F%3D%26%3A"
    assert percent_encode("中") == "%E4%B8%AD"  # UTF-8 bytes
    assert percent_encode("!'()") == "%21%27%28%29"


def test_the_canonical_string_and_signature_of_a_fixed_input() -> None:
    params = {"b": "x y*~", "a": "中", "A": "+/", "Signature": "left out"}
    # sorted by name in byte order (upper case first), each name and value encoded, joined with = and &
    assert canonical_query(params) == "A=%2B%2F&a=%E4%B8%AD&b=x%20y%2A~"
    # then encoded once more (% -> %25) after "POST&%2F&"
    assert string_to_sign(params, "POST") == "POST&%2F&A%3D%252B%252F%26a%3D%25E4%25B8%25AD%26b%3Dx%2520y%252A~"
    # base64(HMAC-SHA1("k&", the string above))
    assert sign(params, "k") == "nSuUfRbOQ/29PfW28rC9JKlVlxA="
    assert sign(params, "k", "GET") != sign(params, "k", "POST")


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+8613800138000", "13800138000"),  # mainland: 11 digits, no 86
        ("+8619912345678", "19912345678"),
        ("+85291234567", "85291234567"),  # Hong Kong: country code and number, no +
        ("+14155550100", "14155550100"),
    ],
)
def test_phone_numbers(e164: str, expected: str) -> None:
    assert phone_numbers(e164) == expected


@pytest.mark.parametrize("bad", ["13800138000", "+86 138 0013 8000", "+861380013800", "+862112345678", "+0123", ""])
def test_phone_numbers_refuses_what_is_not_a_number_it_can_send_to(bad: str) -> None:
    with pytest.raises(ValueError):
        phone_numbers(bad)


# ---- what is sent ------------------------------------------------------------------------------------------------


def test_an_accepted_message_and_the_fields_sent(fake: FakeAliyunSms) -> None:
    receipt = channel(fake, nonce="6f0a1e3c4b5d").send(message())

    assert receipt.provider == "aliyun" and receipt.channel == "sms" and receipt.message_id == MESSAGE_ID
    assert receipt.accepted_at == NOW
    [sent] = fake.sent
    assert receipt.provider_id == sent.biz_id
    [call] = fake.calls()
    assert call == {
        "AccessKeyId": fake.access_key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "6f0a1e3c4b5d",
        "SignatureVersion": "1.0",
        "Timestamp": "2026-03-02T02:00:05Z",
        "Version": "2017-05-25",
        "PhoneNumbers": "13800138000",
        "SignName": "本地测试",
        "TemplateCode": TEMPLATE,
        "TemplateParam": '{"name":"小王","product":"草莓蛋糕"}',  # JSON of the fields, not \\u-escaped
        "OutId": f"{MESSAGE_ID}|spring-launch",
    }
    assert json.loads(call["TemplateParam"]) == {"name": "小王", "product": "草莓蛋糕"}
    assert parse_out_id(call["OutId"]) == (MESSAGE_ID, "spring-launch")
    assert sent.text == "【本地测试】亲爱的小王，春季新品草莓蛋糕上市，回TD退订"
    assert sent.out_id == call["OutId"] and sent.phone == "13800138000"


def test_the_messages_sign_name_overrides_the_accounts(fake: FakeAliyunSms) -> None:
    fake.register_template("SMS_2", "您的会员积分即将到期")
    fake.register_sign("甜心烘焙")
    channel(fake).send(message(sign_name="甜心烘焙", template_ref="SMS_2", fields={}))
    [call] = fake.calls()
    assert call["SignName"] == "甜心烘焙" and "TemplateParam" not in call  # no variables: none sent
    assert fake.sent[0].text == "【甜心烘焙】您的会员积分即将到期"


def test_a_message_without_a_template_is_refused_for_good_without_a_call(fake: FakeAliyunSms) -> None:
    refused = rejected(fake, message(template_ref=None))
    assert (refused.code, refused.permanent, refused.invalid_address) == ("template_missing", True, False)
    assert fake.calls() == []


def test_an_address_that_is_no_e164_number_is_a_dead_address_without_a_call(fake: FakeAliyunSms) -> None:
    refused = rejected(fake, message(address="13800138000"))
    assert refused.invalid_address and refused.permanent
    assert fake.calls() == []


# ---- how it ends -------------------------------------------------------------------------------------------------


def test_throttling_is_transient_and_tried_once(fake: FakeAliyunSms) -> None:
    fake.throttle_next()
    refused = rejected(fake)
    assert (refused.code, refused.permanent) == ("isv.BUSINESS_LIMIT_CONTROL", False)
    assert len(fake.calls()) == 1 and fake.sent == []


def test_the_retrying_wrapper_sends_it_after_a_throttled_attempt(fake: FakeAliyunSms) -> None:
    fake.throttle_next()
    waits: list[float] = []
    retrying = RetryingChannel(channel(fake), Backoff(attempts=3, waits_s=(0.2,)), sleep=waits.append)
    assert retrying.send(message()).provider_id == fake.sent[0].biz_id
    assert waits == [0.2] and len(fake.calls()) == 2


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (503, b"<html>Service Temporarily Unavailable</html>", "http_503"),
        (502, b"", "http_502"),
        (429, b"", "http_429"),
        (500, b'{"Code":"InternalError","Message":"The request processing has failed."}', "InternalError"),
        (503, b'{"Code":"ServiceUnavailable","Message":"The request has failed."}', "ServiceUnavailable"),
        (200, b'{"Code":"isp.SYSTEM_ERROR","Message":"isp.SYSTEM_ERROR"}', "isp.SYSTEM_ERROR"),
        (
            400,
            b'{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}',
            "Throttling.User",
        ),
    ],
)
def test_platform_failures_are_transient(fake: FakeAliyunSms, status: int, body: bytes, code: str) -> None:
    fake.fail_next(status, body)
    refused = rejected(fake)
    assert (refused.code, refused.permanent, refused.invalid_address) == (code, False, False)


def test_a_reused_nonce_is_transient(fake: FakeAliyunSms) -> None:
    sender = channel(fake, nonce="always-the-same")
    sender.send(message())
    with pytest.raises(DeliveryRejected) as caught:
        sender.send(message(message_id="second"))
    assert (caught.value.code, caught.value.permanent) == ("SignatureNonceUsed", False)


def test_a_number_the_provider_calls_illegal_is_a_dead_address(fake: FakeAliyunSms) -> None:
    refused = rejected(fake, message(address="+85291234567"))  # the fake sends to mainland China only
    assert (refused.code, refused.invalid_address, refused.permanent) == ("isv.MOBILE_NUMBER_ILLEGAL", True, True)


def _daily_limit(fake: FakeAliyunSms) -> None:
    for i in range(fake.daily_limit):
        channel(fake).send(message(message_id=f"m{i}"))


@pytest.mark.parametrize(
    ("setup", "overrides", "account", "code"),
    [
        (None, {"sign_name": "未报备签名"}, {}, "isv.SMS_SIGNATURE_ILLEGAL"),
        (None, {"template_ref": "SMS_000000"}, {}, "isv.SMS_TEMPLATE_ILLEGAL"),
        (None, {"fields": {"name": "小王"}}, {}, "isv.TEMPLATE_MISSING_PARAMETERS"),
        (_daily_limit, {}, {}, "isv.DAY_LIMIT_CONTROL"),
        (None, {}, {"access_key_secret": "not-the-secret"}, "SignatureDoesNotMatch"),
        (None, {}, {"access_key_id": "LTAI-unknown"}, "InvalidAccessKeyId.NotFound"),
    ],
)
def test_template_sign_parameter_quota_and_credential_refusals_are_permanent(
    fake: FakeAliyunSms, setup: Any, overrides: dict[str, Any], account: dict[str, Any], code: str
) -> None:
    if setup:
        setup(fake)
    refused = rejected(fake, message(**overrides), **account)
    assert (refused.code, refused.permanent, refused.invalid_address) == (code, True, False)


@pytest.mark.parametrize(
    "code", ["isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isv.INVALID_PARAMETERS", "isv.MOBILE_COUNT_OVER_LIMIT"]
)
def test_balance_and_parameter_codes_are_permanent(fake: FakeAliyunSms, code: str) -> None:
    fake.fail_next(200, json.dumps({"Code": code, "Message": "x", "RequestId": "r"}).encode())
    refused = rejected(fake)
    assert (refused.code, refused.permanent) == (code, True)


def test_a_clock_off_by_more_than_15_minutes_is_refused_for_good(fake: FakeAliyunSms) -> None:
    refused = rejected(fake, at=NOW - timedelta(minutes=16))
    assert (refused.code, refused.permanent) == ("InvalidTimeStamp.Expired", True)
    channel(fake, at=NOW - timedelta(minutes=14)).send(message())  # within the window


def test_a_signature_refusal_does_not_repeat_the_string_signed(fake: FakeAliyunSms) -> None:
    """SignatureDoesNotMatch shows the server's string to sign, with PhoneNumbers in it: not in our error."""
    refused = rejected(fake, access_key_secret="not-the-secret")
    assert "string to sign" not in str(refused) and "PhoneNumbers" not in str(refused)
    assert "SignatureDoesNotMatch" in str(refused)


def test_a_provider_message_naming_the_number_is_redacted(fake: FakeAliyunSms) -> None:
    answer = {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号 13800138000 (+8613800138000)"}
    fake.fail_next(200, json.dumps(answer, ensure_ascii=False).encode())
    refused = rejected(fake)
    assert "非法手机号" in str(refused) and "0013800" not in str(refused)


@pytest.mark.parametrize(
    "body", [b"<html>ok</html>", b"", b"[]", b'{"Message":"OK"}', b'{"Code":"OK","Message":"OK","RequestId":"r"}']
)
def test_a_2xx_answer_that_is_not_sendsms_leaves_the_outcome_unknown(fake: FakeAliyunSms, body: bytes) -> None:
    fake.fail_next(200, body)
    with pytest.raises(ChannelError) as caught:
        channel(fake).send(message())
    assert not isinstance(caught.value, DeliveryRejected)


def test_a_4xx_without_an_alibaba_answer_is_permanent(fake: FakeAliyunSms) -> None:
    fake.fail_next(403, b"<html>Forbidden</html>")
    refused = rejected(fake)
    assert (refused.code, refused.permanent) == ("http_403", True)


def _unreachable(sent: bool | None) -> Any:
    def transport(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        raise HttpUnreachable(url, "timed out" if sent is None else "connection refused", sent)

    return transport


def test_no_connection_is_transient_and_no_answer_is_unknown(fake: FakeAliyunSms) -> None:
    account = AliyunSms(**fake.account())
    with pytest.raises(DeliveryRejected) as refused:
        AliyunSmsChannel(account, transport=_unreachable(False)).send(message())
    assert (refused.value.code, refused.value.permanent) == ("unreachable", False)

    with pytest.raises(ChannelError) as unknown:
        AliyunSmsChannel(account, transport=_unreachable(None)).send(message())
    assert not isinstance(unknown.value, DeliveryRejected)
    assert "outcome unknown" in str(unknown.value)
