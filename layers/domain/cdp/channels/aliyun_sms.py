"""Alibaba Cloud SMS (dysmsapi, API version 2017-05-25): `SendSms` of a registered template under a registered sign.

One `POST {endpoint}/` with an `application/x-www-form-urlencoded` body of the RPC common parameters (`AccessKeyId`,
`Action=SendSms`, `Format=JSON`, `RegionId`, `SignatureMethod=HMAC-SHA1`, `SignatureNonce`, `SignatureVersion=1.0`,
`Timestamp` in UTC `yyyy-MM-ddTHH:mm:ssZ`, `Version=2017-05-25`), the operation's own (`PhoneNumbers`, `SignName`,
`TemplateCode`, `TemplateParam` = the template's variables as a JSON object of strings, `OutId` = our message id and
campaign, which the delivery receipts carry back: `cdp.connectors.feedback.sms_out_id`) and `Signature`.

Signature method v1: sort the parameters (all but `Signature`) by name, percent-encode each name and value per RFC
3986 in UTF-8 (only A-Z a-z 0-9 - _ . ~ stay as they are; a space is %20, never +; * is %2A; ~ is not encoded),
join them as `name=value` with `&` (the canonicalized query string), and sign `{METHOD}&%2F&{percent-encoded
canonicalized query string}` with HMAC-SHA1 under the key `{AccessKeySecret}&`, in base64.

`PhoneNumbers`: a number in mainland China is its 11 digits without +86; any other is the country code and number
without + (E.164 without the +).

The answer is JSON `{Code, Message, BizId, RequestId}`: `Code` OK means accepted (BizId names the send in the
receipts). The API gateway refuses a bad request before the operation runs with an HTTP 4xx and `{Code, Message,
RequestId, HostId, Recommend}` (SignatureDoesNotMatch, InvalidAccessKeyId.NotFound, InvalidTimeStamp.Expired,
SignatureNonceUsed, Throttling.User, ...), and fails with HTTP 5xx (InternalError, ServiceUnavailable). How each
ending maps onto the channel port: see `TRANSIENT`, `INVALID_ADDRESS` and `classify`. An answer we cannot read with a
2xx status leaves the outcome unknown (`ChannelError`): the provider may have sent it.

Not idempotent at the provider (SendSms has no request token), so this adapter makes exactly one attempt: transient
refusals are retried by `cdp.channels.retries.RetryingChannel`, unknown outcomes never.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.connectors.feedback import sms_out_id
from cdp.connectors.sender_accounts import AliyunSms
from cdp.errors import ChannelError
from cdp.shared.http import MAX_ANSWER_BYTES, HttpAnswer, HttpTransport, HttpUnreachable, urllib_transport
from cdp.shared.time import utc_now

API_VERSION = "2017-05-25"
PROVIDER = "aliyun"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MAINLAND_MOBILE = re.compile(r"^1[0-9]{10}$")
_LONG_DIGITS = re.compile(r"[0-9]{7,}")
MAX_DETAIL = 200

# Refusals of the moment (a later attempt may be accepted): flow control (isv.BUSINESS_LIMIT_CONTROL: a per-number
# rate; the gateway's Throttling, Throttling.User, ...: any code starting Throttling), the platform's own failures,
# and a nonce the gateway has seen (the next attempt signs with a new one). An unknown code with HTTP 429 or 5xx is
# transient too.
TRANSIENT = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "InternalError", "ServiceUnavailable", "SignatureNonceUsed"}
)
# The number itself is wrong: the person is not sent to there again.
INVALID_ADDRESS = frozenset({"isv.MOBILE_NUMBER_ILLEGAL"})
# Everything else the provider answers with a code is permanent: the template, sign or parameters it refuses
# (isv.SMS_TEMPLATE_ILLEGAL, isv.SMS_SIGNATURE_ILLEGAL, isv.TEMPLATE_MISSING_PARAMETERS, isv.INVALID_PARAMETERS,
# isv.INVALID_JSON_PARAM, isv.PARAM_LENGTH_LIMIT, isv.MOBILE_COUNT_OVER_LIMIT, ...), the account's balance and
# quotas (isv.AMOUNT_NOT_ENOUGH, isv.OUT_OF_SERVICE, isv.DAY_LIMIT_CONTROL, isv.MONTH_LIMIT_CONTROL), and our
# credentials (SignatureDoesNotMatch, InvalidAccessKeyId.NotFound, isp.RAM_PERMISSION_DENY, InvalidTimeStamp.Expired:
# our clock): the same request again gets the same answer.


def percent_encode(value: str) -> str:
    """RFC 3986 in UTF-8: only A-Z a-z 0-9 - _ . ~ stay (what Java's URLEncoder gives after + -> %20, * -> %2A and
    %7E -> ~)."""
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(name)}={percent_encode(params[name])}" for name in sorted(params) if name != "Signature"
    )


def string_to_sign(params: Mapping[str, str], method: str = "POST") -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(params: Mapping[str, str], access_key_secret: str, method: str = "POST") -> str:
    """Signature method v1 (HMAC-SHA1) of the request's parameters (a `Signature` among them is left out)."""
    key = f"{access_key_secret}&".encode()
    digest = hmac.new(key, string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def phone_numbers(e164: str) -> str:
    """`PhoneNumbers` of one E.164 number: a mainland mobile as its 11 digits, any other without the +.
    ValueError when it is not E.164 (or +86 but not a mainland mobile number)."""
    if not _E164.match(e164):
        raise ValueError("not an E.164 phone number")
    digits = e164[1:]
    if digits.startswith("86"):
        national = digits[2:]
        if not _MAINLAND_MOBILE.match(national):
            raise ValueError("a +86 number that is not a mainland mobile number (11 digits starting with 1)")
        return national
    return digits


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_nonce() -> str:
    return uuid.uuid4().hex


class AliyunSmsChannel(Channel):
    name: ChannelName = "sms"

    def __init__(
        self,
        account: AliyunSms,
        transport: HttpTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        self._account = account
        self._transport = transport or urllib_transport(account.timeout_s)
        self._url = account.endpoint.rstrip("/") + "/"
        self._clock = clock
        self._nonce = nonce

    def request(self, message: OutboundMessage) -> dict[str, str]:
        """The signed parameters of `message`'s SendSms (DeliveryRejected when it cannot be asked)."""
        if not message.template_ref:
            raise DeliveryRejected(
                f"message {message.message_id}: Alibaba Cloud SMS sends registered templates only and it names none",
                code="template_missing",
                permanent=True,
            )
        try:
            phone = phone_numbers(message.address)
        except ValueError as exc:
            raise DeliveryRejected(
                f"message {message.message_id}: the address is not a number Alibaba Cloud SMS can send to: {exc}",
                code="invalid_number",
                invalid_address=True,
            ) from exc
        params = {
            "AccessKeyId": self._account.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": self._account.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": timestamp(self._clock()),
            "Version": API_VERSION,
            "PhoneNumbers": phone,
            "SignName": message.sign_name or self._account.sign_name,
            "TemplateCode": message.template_ref,
            "OutId": sms_out_id(message.message_id, message.campaign_id),
        }
        if message.fields:
            params["TemplateParam"] = json.dumps(message.fields, ensure_ascii=False, separators=(",", ":"))
        params["Signature"] = sign(params, self._account.access_key_secret.get_secret_value(), "POST")
        return params

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        params = self.request(message)
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items()).encode()
        headers = {
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "accept": "application/json",
            "user-agent": "cdp-channels/1 (Alibaba Cloud SMS SendSms)",
        }
        what = f"Alibaba Cloud SMS SendSms of message {message.message_id}"
        try:
            answer = self._transport("POST", self._url, headers, body)
        except HttpUnreachable as exc:
            if exc.sent is False:
                raise DeliveryRejected(f"{what}: not reachable", code="unreachable") from exc
            raise ChannelError(f"{what}: no answer (outcome unknown)") from exc
        return self._receipt(message, answer, what)

    def _receipt(self, message: OutboundMessage, answer: HttpAnswer, what: str) -> DeliveryReceipt:
        document = _document(answer.body)
        code = document.get("Code")
        if not isinstance(code, str) or not code:
            raise unreadable(answer.status, what)
        if code != "OK":
            raise classify(code, answer.status, _detail(document, message.address), what)
        biz_id = document.get("BizId")
        if not 200 <= answer.status < 300 or not isinstance(biz_id, str) or not biz_id:
            raise ChannelError(f"{what}: Code OK with HTTP {answer.status} and no usable BizId (outcome unknown)")
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=self.name,
            provider=PROVIDER,
            provider_id=biz_id,
            accepted_at=self._clock(),
        )


def classify(code: str, status: int, detail: str, what: str) -> DeliveryRejected:
    """The refusal `code` (answered with HTTP `status`) as the port's error."""
    text = f"{what} refused: {code}" + (f" ({detail})" if detail else "")
    if code in INVALID_ADDRESS:
        return DeliveryRejected(text, code=code, invalid_address=True)
    if transient(code, status):
        return DeliveryRejected(text, code=code)
    return DeliveryRejected(text, code=code, permanent=True)


def transient(code: str, status: int) -> bool:
    """Flow control and the platform's failures; an unknown code with HTTP 429 or 5xx (not a business refusal)."""
    if code in TRANSIENT or code.startswith("Throttling"):
        return True
    return (status == 429 or status >= 500) and not code.startswith("isv.")


def unreadable(status: int, what: str) -> ChannelError:
    """An answer without a Code: unknown after a 2xx (it may have been sent), refused otherwise."""
    if 200 <= status < 300:
        return ChannelError(f"{what}: HTTP {status} with an answer that is not SendSms's (outcome unknown)")
    if status in (408, 429) or status >= 500:
        return DeliveryRejected(f"{what}: HTTP {status}", code=f"http_{status}")
    return DeliveryRejected(f"{what}: HTTP {status}", code=f"http_{status}", permanent=True)


def _document(raw: bytes) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is none (too long, not JSON, not an object)."""
    if len(raw) > MAX_ANSWER_BYTES:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser
        return {}
    return value if isinstance(value, dict) else {}


def _detail(document: dict[str, Any], address: str) -> str:
    """The provider's Message, without anything that could be the number (SignatureDoesNotMatch echoes the string
    it signed, PhoneNumbers included) and short."""
    message = document.get("Message")
    if not isinstance(message, str):
        return ""
    message = re.split(r"(?i)string\s*to\s*sign", message, maxsplit=1)[0]
    message = message.replace(address, "***").replace(address.lstrip("+"), "***")
    return _LONG_DIGITS.sub("***", message).strip(" :,")[:MAX_DETAIL]
