"""WeChat Pay's cash coupons (代金券, API v3): the `ExternalCouponSystem` of a brand's merchant account.

`POST {endpoint}/v3/marketing/favor/users/{openid}/coupons` with the JSON body `stock_id`, `out_request_no`, `appid`
and `stock_creator_mchid` answers `200 {"coupon_id": ...}`. The same `out_request_no` answers the coupon issued for
it before (the call is re-entrant), so a retry after a lost answer never issues a second coupon.

Every request is signed by the merchant: `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
signature="..",timestamp="..",serial_no=".."`, the signature being SHA256 with RSA (PKCS #1 v1.5) over
`{method}\\n{path}\\n{timestamp}\\n{nonce}\\n{body}\\n`, in base64, with the merchant's API private key. WeChat Pay
signs every answer over `{Wechatpay-Timestamp}\\n{Wechatpay-Nonce}\\n{body}\\n` (headers `Wechatpay-Signature` and
`Wechatpay-Serial`): an answer that does not verify under the configured WeChat Pay key, names another key, or is
more than five minutes off is not trusted (treated as no answer: the same request is asked again).

Refusals come as HTTP 4xx with `{"code", "message"}`: the stock used up (NOT_ENOUGH), the person's limit (RULE_LIMIT),
the account or stock not usable (USER_ACCOUNT_ABNORMAL, REQUEST_BLOCKED, NO_AUTH, RESOURCE_NOT_EXISTS), the request
(PARAM_ERROR, INVALID_REQUEST, SIGN_ERROR) are final; HTTP 429 and 5xx (FREQUENCY_LIMITED, SYSTEM_ERROR) are tried
again.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from cdp.connectors.sources import WeChatPayApiV3, WeChatPayMerchant
from cdp.offers.external_coupons import CouponGrant, ExternalCouponSystem, GrantedCoupon
from cdp.offers.providers import PayoutRefusedError, PayoutUnavailableError
from cdp.offers.wechat_pay import bill_no
from cdp.shared.time import utc_now

COUPONS_PATH = "/v3/marketing/favor/users/{openid}/coupons"
SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S = 300
MAX_ANSWER_BYTES = 64 * 1024
TRANSIENT = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "FREQUENCY_LIMIT_EXCEED"})

HttpTransport = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, str], bytes]]
"""Send (method, url, headers, body); the answer's status, headers (names in lower case) and body
(PayoutUnavailableError when there is none)."""


def sign_message(private_key: RSAPrivateKey, message: str) -> str:
    return base64.b64encode(private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def verified(public_key: RSAPublicKey, message: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


class WeChatPayCoupons(ExternalCouponSystem):
    name = "wechat_pay"

    def __init__(
        self,
        merchant: WeChatPayMerchant,
        transport: HttpTransport | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if merchant.api_v3 is None:
            raise ValueError(f"merchant {merchant.mch_id} has no api_v3 credentials: cash coupons need them")
        self._merchant = merchant
        self._v3: WeChatPayApiV3 = merchant.api_v3
        private = load_pem_private_key(self._v3.private_key_pem.get_secret_value().encode(), password=None)
        public = load_pem_public_key(self._v3.wechatpay_public_key_pem.encode())
        assert isinstance(private, RSAPrivateKey) and isinstance(public, RSAPublicKey)  # validated by WeChatPayApiV3
        self._private, self._public = private, public
        self._transport = transport or json_transport(merchant)
        self._base = merchant.endpoint.rstrip("/")
        self._now = now

    @property
    def app_id(self) -> str:
        return self._merchant.wxappid

    def request_no(self, brand_id: str, issue_id: str, issued_at: datetime) -> str:
        # the merchant id, the day, then a digest: WeChat Pay's "商户id+日期+流水号" shape (a red packet's bill of the
        # same issue is another digest)
        return bill_no(self._merchant.mch_id, brand_id, f"coupon\n{issue_id}", issued_at)

    def grant(self, grant: CouponGrant) -> GrantedCoupon:
        body = {
            "stock_id": grant.stock_id,
            "out_request_no": grant.request_no,
            "appid": self._merchant.wxappid,
            "stock_creator_mchid": grant.creator_mch_id or self._merchant.mch_id,
        }
        answer = self._call("POST", COUPONS_PATH.format(openid=quote(grant.openid, safe="")), body)
        coupon_id = answer.get("coupon_id")
        if not isinstance(coupon_id, str) or not coupon_id:
            raise PayoutUnavailableError("BAD_ANSWER", "the answer has no coupon_id")
        return GrantedCoupon(coupon_id=coupon_id)

    def authorization(self, method: str, path: str, body: str) -> str:
        timestamp, nonce = str(int(self._now().timestamp())), secrets.token_hex(16)
        signature = sign_message(self._private, f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n")
        fields = {
            "mchid": self._merchant.mch_id,
            "nonce_str": nonce,
            "signature": signature,
            "timestamp": timestamp,
            "serial_no": self._v3.serial_no,
        }
        return SCHEMA + " " + ",".join(f'{k}="{v}"' for k, v in fields.items())

    def _call(self, method: str, path: str, payload: Mapping[str, str]) -> dict[str, object]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "authorization": self.authorization(method, path, body),
            "accept": "application/json",
            "content-type": "application/json",
            "user-agent": "cdp-offers/1 (WeChat Pay API v3)",
        }
        status, answer_headers, raw = self._transport(method, self._base + path, headers, body.encode())
        self._check_signature(answer_headers, raw)
        try:
            answer = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PayoutUnavailableError("BAD_ANSWER", f"the answer is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise PayoutUnavailableError("BAD_ANSWER", "the answer is not a JSON object")
        if 200 <= status < 300:
            return answer
        code = str(answer.get("code") or f"HTTP_{status}")
        message = str(answer.get("message") or code)[:300]
        if status == 429 or status >= 500 or code in TRANSIENT:
            raise PayoutUnavailableError(code, message)
        raise PayoutRefusedError(code, message)

    def _check_signature(self, headers: Mapping[str, str], raw: bytes) -> None:
        """The answer came from WeChat Pay (see the module), else PayoutUnavailableError."""
        timestamp, nonce = headers.get("wechatpay-timestamp", ""), headers.get("wechatpay-nonce", "")
        signature, serial = headers.get("wechatpay-signature", ""), headers.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature):
            raise PayoutUnavailableError("UNSIGNED_ANSWER", "the answer carries no Wechatpay-Signature")
        if serial != self._v3.wechatpay_key_id:
            raise PayoutUnavailableError("UNKNOWN_KEY", f"the answer names key {serial!r}, not the configured one")
        if not timestamp.isdigit() or abs(self._now().timestamp() - int(timestamp)) > MAX_SKEW_S:
            raise PayoutUnavailableError("STALE_ANSWER", f"the answer's timestamp {timestamp!r} is over 5 minutes off")
        message = f"{timestamp}\n{nonce}\n{raw.decode('utf-8', errors='replace')}\n"
        if not verified(self._public, message, signature):
            raise PayoutUnavailableError("BAD_SIGNATURE", "the answer's signature does not verify")


def json_transport(merchant: WeChatPayMerchant) -> HttpTransport:
    """urllib requests (https; the loopback fake: plain http): API v3 authenticates by signatures, not client TLS."""
    timeout = merchant.timeout_s

    def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https or loopback
                return response.status, _lower(response.headers.items()), response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:  # 4xx/5xx carry WeChat Pay's signed error document
            return exc.code, _lower(exc.headers.items()), exc.read(MAX_ANSWER_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PayoutUnavailableError("UNREACHABLE", f"{url}: {exc}") from exc

    return send


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}
