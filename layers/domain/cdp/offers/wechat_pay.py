"""WeChat Pay's red packet API (v2, "现金红包"): the `RedPacketProvider` of a brand's merchant account.

`POST {endpoint}/mmpaymkttransfers/sendredpack` with an XML body: mch_billno, mch_id, wxappid, send_name, re_openid,
total_amount (fen), total_num (1), wishing, client_ip, act_name, remark, nonce_str and `sign`; `scene_id` when the
amount is under 1.00 or over 200.00 CNY. `sign` is MD5 over the non-empty parameters but `sign`, sorted by name and
joined as `k=v&k=v`, then `&key={the merchant's API key}`, in upper-case hex. The answer is XML: `return_code` (the
call itself), `result_code` and `err_code` (the business result), `send_listid` when sent. The API authenticates the
merchant with its API certificate (client TLS), which the https transport presents.

WeChat Pay pays one `mch_billno` at most once ("接口根据商户订单号支持重入"): a call that timed out, or was answered
SYSTEMERROR / PROCESSING / FREQ_LIMIT, is sent again under the same bill; every other refusal is final
(`PERMANENT`: NOTENOUGH, SENDNUM_LIMIT, OPENID_ERROR, ...). What became of a bill is asked with
`POST {endpoint}/mmpaymkttransfers/gethbinfo` (mch_billno, bill_type=MCHT): a status, or err_code NOT_FOUND.

The bill number is `mch_id + yyyymmdd + 10 or more base-36 characters` of a hash of the brand and issue id, 28
characters, as WeChat Pay asks (the date is the issue's, in China time, so a retry the next day names the same bill).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from cdp.connectors.sources import WeChatPayMerchant
from cdp.ingest.security import same
from cdp.offers.providers import PayoutRefusedError, PayoutUnavailableError
from cdp.offers.red_packets import (
    BillStatus,
    RedPacketOrder,
    RedPacketProvider,
    SentPacket,
)

SEND_PATH = "/mmpaymkttransfers/sendredpack"
LOOKUP_PATH = "/mmpaymkttransfers/gethbinfo"
BILL_NO_LENGTH = 28
CHINA = ZoneInfo("Asia/Shanghai")
MIN_WITHOUT_SCENE, MAX_WITHOUT_SCENE = 100, 20_000  # 1.00 to 200.00 CNY without a scene_id
# The answer says the request was taken and the outcome is to be asked with the same bill, or to call again later.
TRANSIENT = frozenset({"SYSTEMERROR", "PROCESSING", "FREQ_LIMIT"})
# Refusals sending the same bill again cannot change (balance, limits, the OpenID, the request, the account).
PERMANENT = frozenset(
    {
        "NOTENOUGH",
        "SENDNUM_LIMIT",
        "OPENID_ERROR",
        "NO_AUTH",
        "MONEY_LIMIT",
        "SEND_FAILED",
        "FATAL_ERROR",
        "PARAM_ERROR",
        "SIGN_ERROR",
        "CA_ERROR",
        "XML_ERROR",
        "ILLEGAL_APPID",
        "MSGAPPID_ERROR",
        "ACCEPTMODE_ERROR",
        "API_METHOD_CLOSED",
        "SENDAMOUNT_LIMIT",
        "RCVDAMOUNT_LIMIT",
    }
)
# gethbinfo statuses: the packet left the merchant's account (a refund of an unopened one comes back later)
SENT_STATUSES = frozenset({"SENDING", "SENT", "RECEIVED", "RFUND_ING", "REFUND"})
MAX_ANSWER_BYTES = 64 * 1024
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

XmlTransport = Callable[[str, bytes], bytes]
"""POST an XML body to a URL and return the answer's bytes (PayoutUnavailableError when there is none)."""


def wechat_pay_sign(params: Mapping[str, str], key: str) -> str:
    """WeChat Pay's v2 MD5 signature (see the module)."""
    joined = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v not in ("", None))
    # MD5 is what WeChat Pay v2 specifies for these calls (its protocol, not a choice of ours)
    return hashlib.md5(f"{joined}&key={key}".encode(), usedforsecurity=False).hexdigest().upper()


def to_xml(params: Mapping[str, str]) -> bytes:
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in params.items())
    return f"<xml>{body}</xml>".encode()


def from_xml(raw: bytes) -> dict[str, str]:
    """A flat WeChat Pay XML document as a dict (entities and DTDs refused: defusedxml)."""
    if len(raw) > MAX_ANSWER_BYTES:
        raise ValueError(f"the answer is over {MAX_ANSWER_BYTES} bytes")
    try:
        root = fromstring(raw)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"the answer is not XML: {exc}") from exc
    if root.tag != "xml":
        raise ValueError(f"the answer's root is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def bill_no(mch_id: str, brand_id: str, issue_id: str, issued_at: datetime) -> str:
    prefix = mch_id + issued_at.astimezone(CHINA).strftime("%Y%m%d")
    digest = int.from_bytes(hashlib.sha256(f"{brand_id}\n{issue_id}".encode()).digest(), "big")
    tail = []
    for _ in range(BILL_NO_LENGTH - len(prefix)):
        digest, digit = divmod(digest, 36)
        tail.append(_BASE36[digit])
    return prefix + "".join(tail)


def nonce() -> str:
    return secrets.token_hex(16)


class WeChatPayRedPackets(RedPacketProvider):
    name = "wechat_pay"

    def __init__(self, merchant: WeChatPayMerchant, transport: XmlTransport | None = None) -> None:
        self._merchant = merchant
        self._key = merchant.key.get_secret_value()
        self._transport = transport or https_transport(merchant)
        self._base = merchant.endpoint.rstrip("/")

    @property
    def app_id(self) -> str:
        return self._merchant.wxappid

    def bill_no(self, brand_id: str, issue_id: str, issued_at: datetime) -> str:
        return bill_no(self._merchant.mch_id, brand_id, issue_id, issued_at)

    def check(self, amount_minor: int) -> str | None:
        if self._merchant.scene_id is None and not MIN_WITHOUT_SCENE <= amount_minor <= MAX_WITHOUT_SCENE:
            return (
                f"WeChat Pay sends {MIN_WITHOUT_SCENE / 100:.2f} to {MAX_WITHOUT_SCENE / 100:.2f} CNY without a "
                f"scene_id; this packet is {amount_minor / 100:.2f} CNY"
            )
        return None

    def send(self, order: RedPacketOrder) -> SentPacket:
        m = self._merchant
        params = {
            "nonce_str": nonce(),
            "mch_billno": order.bill_no,
            "mch_id": m.mch_id,
            "wxappid": m.wxappid,
            "send_name": m.send_name,
            "re_openid": order.openid,
            "total_amount": str(order.amount_minor),
            "total_num": "1",
            "wishing": _clip(order.wishing, 128),
            "client_ip": m.client_ip,
            "act_name": _clip(order.act_name, 32),
            "remark": _clip(order.remark, 256),
        }
        if m.scene_id:
            params["scene_id"] = m.scene_id
        answer = self._call(SEND_PATH, params)
        if answer.get("result_code") == "SUCCESS":
            return SentPacket(bill_no=order.bill_no, provider_ref=answer.get("send_listid") or None)
        raise _refusal(answer)

    def lookup(self, bill_no: str) -> BillStatus:
        params = {"nonce_str": nonce(), "mch_billno": bill_no, "mch_id": self._merchant.mch_id}
        params |= {"appid": self._merchant.wxappid, "bill_type": "MCHT"}
        answer = self._call(LOOKUP_PATH, params)
        if answer.get("result_code") != "SUCCESS":
            code = answer.get("err_code") or "FAIL"
            if code == "NOT_FOUND":
                return BillStatus(state="not_found", reason=None)
            raise PayoutUnavailableError(code, answer.get("err_code_des") or answer.get("return_msg") or code)
        status = answer.get("status", "")
        if status in SENT_STATUSES:
            return BillStatus(state="sent", provider_ref=answer.get("detail_id") or None)
        if status == "FAILED":
            return BillStatus(state="failed", reason=answer.get("reason") or "FAILED")
        raise PayoutUnavailableError("UNKNOWN_STATUS", f"gethbinfo answered status {status!r}")

    def _call(self, path: str, params: dict[str, str]) -> dict[str, str]:
        params["sign"] = wechat_pay_sign(params, self._key)
        raw = self._transport(self._base + path, to_xml(params))
        try:
            answer = from_xml(raw)
        except ValueError as exc:  # a proxy's error page, a truncated answer: it may have been taken
            raise PayoutUnavailableError("BAD_ANSWER", str(exc)) from exc
        if answer.get("return_code") != "SUCCESS":
            if answer.get("err_code"):
                raise _refusal(answer)
            # the call itself was refused before any business (a bad sign, a malformed request): nothing was taken
            raise PayoutRefusedError("RETURN_FAIL", answer.get("return_msg") or "return_code FAIL")
        signed = answer.get("sign")
        if signed and not same(wechat_pay_sign(answer, self._key), signed):
            raise PayoutUnavailableError("BAD_SIGNATURE", "the answer's sign does not match the merchant key")
        return answer


def _refusal(answer: Mapping[str, str]) -> PayoutRefusedError | PayoutUnavailableError:
    code = answer.get("err_code") or "FAIL"
    message = answer.get("err_code_des") or answer.get("return_msg") or code
    if code in TRANSIENT:
        return PayoutUnavailableError(code, message)
    if code in PERMANENT:
        return PayoutRefusedError(code, message)
    # A code this adapter does not know: not sent again blindly; the payer then asks what became of the bill.
    return PayoutUnavailableError(code, message)


def _clip(text: str, limit: int) -> str:
    return text[:limit]


def https_transport(merchant: WeChatPayMerchant) -> XmlTransport:
    """urllib POSTs with the merchant's API certificate (the loopback fake: plain http, no certificate)."""
    context: ssl.SSLContext | None = None
    if merchant.endpoint.startswith("https://"):
        context = ssl.create_default_context()
        assert merchant.cert_pem is not None and merchant.key_pem is not None  # validated by WeChatPayMerchant
        _load_client_certificate(context, merchant.cert_pem.get_secret_value(), merchant.key_pem.get_secret_value())
    timeout = merchant.timeout_s

    def post(url: str, body: bytes) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the endpoint is https or loopback (WeChatPayMerchant)
            url, data=body, headers={"content-type": "text/xml; charset=utf-8"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
                return bytes(response.read(MAX_ANSWER_BYTES + 1))
        except urllib.error.HTTPError as exc:
            raise PayoutUnavailableError(f"HTTP_{exc.code}", f"{url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PayoutUnavailableError("UNREACHABLE", f"{url}: {exc}") from exc

    return post


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """ssl loads a certificate chain from files only: written to a private temporary directory, loaded, removed."""
    with tempfile.TemporaryDirectory() as folder:
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, text in ((cert, cert_pem), (key, key_pem)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(text)
        context.load_cert_chain(cert, key)
