"""A fake Alibaba Cloud SMS on the loopback, speaking dysmsapi `SendSms` (API version 2017-05-25, RPC style), the
protocol `cdp.channels.aliyun_sms.AliyunSmsChannel` sends.

Every request (a POST form or a GET query, `/`) goes through what the API gateway checks, in its order, with its
answers (HTTP 4xx, `{RequestId, HostId, Code, Message, Recommend}`): the common parameters (Missing{Name}), the
version and action, the AccessKey ID (404 InvalidAccessKeyId.NotFound), the Timestamp within 15 minutes of the
fake's clock (400 InvalidTimeStamp.Expired), the signature method v1 HMAC-SHA1 under this fake's own AccessKey
secret (400 SignatureDoesNotMatch, whose message shows the string the server signed, as the real one does) and a
SignatureNonce not seen before (400 SignatureNonceUsed). Then SendSms itself answers HTTP 200 `{Code, Message,
RequestId[, BizId]}`: `throttle_next(times)` answers isv.BUSINESS_LIMIT_CONTROL; an unregistered sign name
isv.SMS_SIGNATURE_ILLEGAL (`register_sign`); an unknown template code isv.SMS_TEMPLATE_ILLEGAL (`register_template`
with its text, `${name}` placeholders); TemplateParam that is not a JSON object of strings isv.INVALID_JSON_PARAM;
a placeholder without a value isv.TEMPLATE_MISSING_PARAMETERS; a number that is not a mainland mobile number (11
digits starting with 1; the fake sends to mainland China only) isv.MOBILE_NUMBER_ILLEGAL; more than `daily_limit`
messages to one number on one China day isv.DAY_LIMIT_CONTROL. Otherwise the message is accepted: recorded in
`sent` (the text the person reads is "【sign】" + the rendered template) and answered `Code OK` with a BizId.

`receipts(...)` turns what was sent into the delivery receipts Alibaba Cloud reports (SmsReport items: phone_number,
send_time, report_time in China time "YYYY-MM-DD HH:MM:SS", success, err_code, err_msg, sms_size, biz_id, out_id),
the shape `cdp.connectors.feedback.SmsReceiptConnector` reads. The base's `fail_next` / `delay_next` script HTTP
failures and slow answers (a client timeout).

The signature is computed again here (not imported from the adapter) so the fake checks the adapter, not itself.
"""

# ruff: noqa: RUF001 - Alibaba Cloud's own messages and the sign name's full-width brackets 【】

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cdp.channels.segments import china_sms_length
from cdp.shared.http import HttpAnswer
from cdp.shared.time import utc_now
from cdp_local.fakes.server import LoopbackFake

ACCESS_KEY_ID = "LTAI5tFakeLocalSms0001"
ACCESS_KEY_SECRET = "fake-local-aliyun-sms-secret-0001"  # noqa: S105 - a loopback fake's own key
DEFAULT_SIGN = "本地测试"
API_VERSION = "2017-05-25"
CHINA_TIME = timezone(timedelta(hours=8))
TIMESTAMP_WINDOW = timedelta(minutes=15)
MAX_NUMBERS = 1000
COMMON = ("AccessKeyId", "Action", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp", "Version")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_MAINLAND = re.compile(r"^1[0-9]{10}$")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_JSON = {"content-type": "application/json;charset=utf-8"}


def percent_encode(text: str) -> str:
    """RFC 3986 byte by byte over UTF-8: only A-Z a-z 0-9 - _ . ~ stay literal."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    query = "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params) if k != "Signature")
    return f"{method}&%2F&{percent_encode(query)}"


def signature(method: str, params: Mapping[str, str], secret: str) -> str:
    mac = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class SentSms:
    """One accepted message to one number."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str
    text: str
    at: datetime


class _Refused(Exception):
    """An answer of the provider refusing the request (raised to end the checks early)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


class FakeAliyunSms(LoopbackFake):
    name = "fake-aliyun-sms"

    def __init__(
        self,
        port: int = 0,
        access_key_id: str = ACCESS_KEY_ID,
        access_key_secret: str = ACCESS_KEY_SECRET,
        sign_name: str = DEFAULT_SIGN,
        daily_limit: int = 50,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(port)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.daily_limit = daily_limit
        self._clock = clock
        self._state = threading.Lock()
        self._signs: set[str] = {sign_name}
        self._templates: dict[str, str] = {}
        self._nonces: set[str] = set()
        self._sent: list[SentSms] = []
        self._calls: list[dict[str, str]] = []
        self._throttled = 0
        self._biz_ids = itertools.count(1)

    # ---- what a test sets up and reads ----------------------------------------------------------------------

    def account(self, **changes: Any) -> dict[str, Any]:
        """The `sender_accounts.AliyunSms` account dict pointing at this fake (validate it with `AliyunSms`)."""
        return {
            "provider": "aliyun",
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "sign_name": self.sign_name,
            "endpoint": self.url,
            "region_id": "cn-hangzhou",
            **changes,
        }

    def register_sign(self, name: str) -> None:
        with self._state:
            self._signs.add(name)

    def register_template(self, code: str, text: str) -> None:
        """A template the account may send: its text with `${name}` placeholders."""
        with self._state:
            self._templates[code] = text

    def throttle_next(self, times: int = 1) -> None:
        """The next `times` SendSms calls that pass the gateway answer isv.BUSINESS_LIMIT_CONTROL."""
        with self._state:
            self._throttled += times

    @property
    def sent(self) -> list[SentSms]:
        with self._state:
            return list(self._sent)

    def calls(self) -> list[dict[str, str]]:
        """The parameters of every request that reached the fake (accepted or not), oldest first."""
        with self._state:
            return [dict(c) for c in self._calls]

    def receipts(
        self,
        failed_phones: Iterable[str] = (),
        err_code: str = "MK:0001",
        err_msg: str = "空号",
        delay: timedelta = timedelta(seconds=3),
    ) -> list[dict[str, Any]]:
        """The delivery receipts (SmsReport items) of everything sent: failed for `failed_phones` (11 digits, as
        sent), delivered otherwise."""
        failed = set(failed_phones)
        receipts = []
        for sms in self.sent:
            ok = sms.phone not in failed
            receipts.append(
                {
                    "phone_number": sms.phone,
                    "send_time": _china(sms.at),
                    "report_time": _china(sms.at + delay),
                    "success": ok,
                    "err_code": "DELIVERED" if ok else err_code,
                    "err_msg": "用户接收成功" if ok else err_msg,
                    "sms_size": str(
                        china_sms_length(sms.text.removeprefix(f"【{sms.sign_name}】"), sms.sign_name).segments
                    ),
                    "biz_id": sms.biz_id,
                    "out_id": sms.out_id,
                }
            )
        return receipts

    # ---- the protocol -----------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        request_id = str(uuid.uuid4()).upper()
        try:
            params = self._params(method, path, headers, body)
            with self._state:
                self._calls.append({k: v for k, v in params.items() if k != "Signature"})
            self._gateway(method, params)
            return _json(200, {"RequestId": request_id, **self._send_sms(params)})
        except _Refused as refused:
            document: dict[str, str] = {"RequestId": request_id, "Code": refused.code, "Message": refused.message}
            if refused.status != 200:
                document.update(HostId="dysmsapi.aliyuncs.com", Recommend="https://api.aliyun.com/troubleshoot")
            return _json(refused.status, document)

    def _params(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        parts = urlsplit(path)
        if parts.path != "/" or method not in ("GET", "POST"):
            raise _Refused(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if method == "POST" and body:
            if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                raise _Refused(400, "InvalidParameter.Format", "Specified parameter format is not valid.")
            try:
                pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError) as exc:
                raise _Refused(400, "InvalidParameter.Format", "Specified parameter format is not valid.") from exc
        return dict(pairs)

    def _gateway(self, method: str, params: dict[str, str]) -> None:
        """What the API gateway checks before the operation runs."""
        for name in (*COMMON, "Signature"):
            if not params.get(name):
                raise _Refused(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Version"] != API_VERSION:
            raise _Refused(400, "InvalidVersion", f"Specified parameter Version is not valid: {params['Version']}")
        if params["Action"] != "SendSms":
            raise _Refused(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise _Refused(400, "InvalidSignatureMethod", "Specified signature method is not valid.")
        if params["AccessKeyId"] != self.access_key_id:
            raise _Refused(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        self._check_timestamp(params["Timestamp"])
        expected = signature(method, params, self.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise _Refused(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
            )
        with self._state:
            if params["SignatureNonce"] in self._nonces:
                raise _Refused(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces.add(params["SignatureNonce"])

    def _check_timestamp(self, value: str) -> None:
        try:
            at = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _Refused(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from exc
        if abs(self._clock() - at) > TIMESTAMP_WINDOW:
            raise _Refused(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _send_sms(self, params: dict[str, str]) -> dict[str, str]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise _Refused(400, f"Missing{name}", f"{name} is mandatory for this action.")
        phones = params["PhoneNumbers"].split(",")
        with self._state:
            if self._throttled:
                self._throttled -= 1
                raise _Refused(200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
            if params["SignName"] not in self._signs:
                raise _Refused(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
            template = self._templates.get(params["TemplateCode"])
            if template is None:
                raise _Refused(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
            values = _template_params(params.get("TemplateParam"))
            missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
            if missing:
                raise _Refused(200, "isv.TEMPLATE_MISSING_PARAMETERS", f"模板变量缺少对应参数值: {', '.join(missing)}")
            if len(phones) > MAX_NUMBERS:
                raise _Refused(200, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
            if not all(_MAINLAND.match(phone) for phone in phones):
                raise _Refused(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            now = self._clock()
            today = _china(now)[:10]
            for phone in phones:
                already = sum(1 for s in self._sent if s.phone == phone and _china(s.at)[:10] == today)
                if already >= self.daily_limit:
                    raise _Refused(200, "isv.DAY_LIMIT_CONTROL", "触发日发送限额")
            biz_id = f"{900_000_000_000_000_000 + next(self._biz_ids)}^0"
            text = f"【{params['SignName']}】" + _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
            for phone in phones:
                self._sent.append(
                    SentSms(
                        biz_id=biz_id,
                        phone=phone,
                        sign_name=params["SignName"],
                        template_code=params["TemplateCode"],
                        params=values,
                        out_id=params.get("OutId", ""),
                        text=text,
                        at=now,
                    )
                )
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}


def _template_params(raw: str | None) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Refused(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Refused(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
    return value


def _china(at: datetime) -> str:
    return at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _json(status: int, document: Mapping[str, str]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(document, ensure_ascii=False).encode(), dict(_JSON))
