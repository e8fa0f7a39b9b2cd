"""A fake WeChat Pay on the loopback, speaking the real protocols: the red packet API (v2, `cdp.offers.wechat_pay`)
and the cash coupon API (v3, `cdp.offers.wechat_pay_coupons`).

`POST /mmpaymkttransfers/sendredpack` and `POST /mmpaymkttransfers/gethbinfo` take the XML bodies WeChat Pay takes,
check the merchant id, the app id and the MD5 `sign` (a wrong one is answered `return_code` FAIL, as WeChat Pay
does), and keep every packet sent by its `mch_billno`: the same bill sent again is answered with the packet already
sent (never paid twice), a bill reused with another OpenID or amount is FATAL_ERROR. The merchant's balance goes
down by each packet (NOTENOUGH when it cannot pay), a person gets at most `daily_limit` packets (SENDNUM_LIMIT), and
the test (or `cdp serve`) can make the next calls fail: `fail_next("SYSTEMERROR")` answers without sending,
`fail_next("SYSTEMERROR", sent=True)` sends and then answers the error (the lost answer a real retry must survive),
`delay_next(seconds)` answers late (a client timeout), `fail_lookups(n)` makes gethbinfo answer SYSTEMERROR.

`POST /v3/marketing/favor/users/{openid}/coupons` checks the merchant's `Authorization` signature (SHA256-RSA2048
with the merchant key pair this fake made: `merchant()` hands its private key out), the app and the stock creator,
issues one coupon per `out_request_no` (asked again, the same coupon), refuses an unknown stock
(RESOURCE_NOT_EXISTS), an exhausted one (NOT_ENOUGH) and a person's limit (RULE_LIMIT), and signs every answer with
its own platform key, as WeChat Pay does. `add_stock(...)` makes a stock; `fail_coupons_next(code, status)` answers
the next grants with an error (after issuing, when `issued`: the lost answer a retry must survive).
"""

# ruff: noqa: RUF001 - WeChat Pay's own messages, in Chinese with full-width punctuation

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from xml.etree.ElementTree import ParseError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from cdp.shared.time import utc_now

COUPONS_PATH = re.compile(r"^/v3/marketing/favor/users/([^/?]+)/coupons$")
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A72"
PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001092026120700000000000001"
SEND_PATH = "/mmpaymkttransfers/sendredpack"
LOOKUP_PATH = "/mmpaymkttransfers/gethbinfo"
SEND_FIELDS = (
    "nonce_str",
    "mch_billno",
    "mch_id",
    "wxappid",
    "send_name",
    "re_openid",
    "total_amount",
    "total_num",
    "wishing",
    "client_ip",
    "act_name",
    "remark",
)
MESSAGES = {
    "NOTENOUGH": "帐号余额不足，请到商户平台充值后再重试",
    "SENDNUM_LIMIT": "该用户今日领取红包个数超过限制",
    "OPENID_ERROR": "openid和appid不匹配",
    "SYSTEMERROR": "请求已受理，请稍后使用原单号查询发放结果",
    "FATAL_ERROR": "openid和原始单参数不一致",
    "MONEY_LIMIT": "每个红包的金额必须在默认额度内",
    "PARAM_ERROR": "参数错误",
    "NOT_FOUND": "指定单号数据不存在",
}


def sign(params: Mapping[str, str], key: str) -> str:
    """WeChat Pay's v2 MD5 signature, written again here so the fake checks the adapter rather than itself."""
    joined = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return hashlib.md5(f"{joined}&key={key}".encode(), usedforsecurity=False).hexdigest().upper()


@dataclass
class SentPacket:
    mch_billno: str
    re_openid: str
    total_amount: int
    send_listid: str
    params: dict[str, str]
    sent_at: float


@dataclass
class _Scripted:
    """What one send call does: answer `err_code` (after sending, when `sent`), or answer after `delay_s`."""

    err_code: str | None = None
    sent: bool = False
    delay_s: float = 0.0


@dataclass
class Stock:
    remaining: int
    max_per_user: int


@dataclass
class IssuedCoupon:
    coupon_id: str
    stock_id: str
    openid: str
    out_request_no: str


@dataclass
class _ScriptedCoupon:
    code: str
    status: int
    issued: bool


@dataclass
class FakeState:
    balance_minor: int
    daily_limit: int
    packets: dict[str, SentPacket] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    script: list[_Scripted] = field(default_factory=list)  # the next send calls, in order
    lookup_failures: int = 0
    stocks: dict[str, Stock] = field(default_factory=dict)
    coupons: dict[str, IssuedCoupon] = field(default_factory=dict)  # by out_request_no
    coupon_calls: list[dict[str, str]] = field(default_factory=list)
    coupon_script: list[_ScriptedCoupon] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeWeChatPay:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port by default). Use as a context manager or start/stop."""

    def __init__(
        self,
        mch_id: str = "1900000109",
        wxappid: str = "wx-local-oa",
        key: str = "local0wechat0pay0api0key00000032",
        balance_minor: int = 1_000_000,
        daily_limit: int = 10,
        port: int = 0,
    ) -> None:
        self.mch_id = mch_id
        self.wxappid = wxappid
        self.key = key
        self.state = FakeState(balance_minor=balance_minor, daily_limit=daily_limit)
        # API v3: the merchant's key pair (its private key goes into the sources document) and WeChat Pay's own
        self._merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def merchant(self, **changes: object) -> dict[str, object]:
        """The `wechat_pay` entry of the sources document that points at this fake."""
        return {
            "mch_id": self.mch_id,
            "wxappid": self.wxappid,
            "key": self.key,
            "send_name": "CDP Local",
            "client_ip": "127.0.0.1",
            "endpoint": self.url,
            "api_v3": {
                "serial_no": MERCHANT_SERIAL,
                "private_key_pem": _pem(self._merchant_key),
                "wechatpay_key_id": PLATFORM_KEY_ID,
                "wechatpay_public_key_pem": self._platform_key.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode(),
            },
            **changes,
        }

    # ---- what a test tells it -------------------------------------------------------------------------------

    def fail_next(self, err_code: str, times: int = 1, sent: bool = False) -> None:
        """The next `times` send calls answer `err_code` (having sent the packet first, when `sent`)."""
        with self.state.lock:
            self.state.script.extend(_Scripted(err_code=err_code, sent=sent) for _ in range(times))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` send calls (after those already scripted) pay, then answer `seconds` late."""
        with self.state.lock:
            self.state.script.extend(_Scripted(delay_s=seconds) for _ in range(times))

    def fail_lookups(self, times: int = 1) -> None:
        with self.state.lock:
            self.state.lookup_failures += times

    def set_balance(self, minor: int) -> None:
        with self.state.lock:
            self.state.balance_minor = minor

    def add_stock(self, stock_id: str, remaining: int = 1_000, max_per_user: int = 1) -> None:
        with self.state.lock:
            self.state.stocks[stock_id] = Stock(remaining=remaining, max_per_user=max_per_user)

    def fail_coupons_next(self, code: str, status: int = 500, times: int = 1, issued: bool = False) -> None:
        """The next `times` coupon grants answer HTTP `status` with `code` (having issued the coupon, when `issued`)."""
        with self.state.lock:
            self.state.coupon_script.extend(_ScriptedCoupon(code, status, issued) for _ in range(times))

    @property
    def coupons(self) -> dict[str, IssuedCoupon]:
        with self.state.lock:
            return dict(self.state.coupons)

    def coupon_calls(self) -> list[dict[str, str]]:
        with self.state.lock:
            return list(self.state.coupon_calls)

    @property
    def packets(self) -> dict[str, SentPacket]:
        with self.state.lock:
            return dict(self.state.packets)

    def calls(self, path: str = SEND_PATH) -> list[dict[str, str]]:
        with self.state.lock:
            return [params for called, params in self.state.calls if called == path]

    # ---- the protocol -------------------------------------------------------------------------------------------

    def answer(self, path: str, raw: bytes) -> tuple[int, dict[str, str]]:
        try:
            root = fromstring(raw)
            params = {child.tag: (child.text or "") for child in root}
        except (ParseError, DefusedXmlException):
            return 200, {"return_code": "FAIL", "return_msg": "XML格式错误"}
        with self.state.lock:
            self.state.calls.append((path, params))
        if params.get("mch_id") != self.mch_id:
            return 200, {"return_code": "FAIL", "return_msg": "商户号错误"}
        if params.get("sign") != sign(params, self.key):
            return 200, {"return_code": "FAIL", "return_msg": "签名错误"}
        if path == SEND_PATH:
            return 200, self._send(params)
        if path == LOOKUP_PATH:
            return 200, self._lookup(params)
        return 404, {"return_code": "FAIL", "return_msg": "not found"}

    def _send(self, params: dict[str, str]) -> dict[str, str]:
        missing = [name for name in SEND_FIELDS if not params.get(name)]
        if missing or params.get("wxappid") != self.wxappid or params.get("total_num") != "1":
            return _refused("PARAM_ERROR", f"参数错误: {', '.join(missing) or 'wxappid/total_num'}")
        amount = int(params["total_amount"]) if params["total_amount"].isdigit() else -1
        with self.state.lock:
            scripted = self.state.script.pop(0) if self.state.script else _Scripted()
            if scripted.err_code is not None and not scripted.sent:
                return _refused(scripted.err_code)
            answer = self._pay(params, amount)
            if scripted.err_code is not None:
                answer = _refused(scripted.err_code)
        if scripted.delay_s:
            time.sleep(scripted.delay_s)
        return answer

    def _pay(self, params: dict[str, str], amount: int) -> dict[str, str]:
        """Under the lock: the packet of this bill (sent now, or before)."""
        state, bill = self.state, params["mch_billno"]
        earlier = state.packets.get(bill)
        if earlier is not None:
            if earlier.re_openid != params["re_openid"] or earlier.total_amount != amount:
                return _refused("FATAL_ERROR")
            return self._sent(earlier)
        if not 100 <= amount <= 20_000 and not params.get("scene_id"):
            return _refused("MONEY_LIMIT")
        if amount > state.balance_minor:
            return _refused("NOTENOUGH")
        today = [p for p in state.packets.values() if p.re_openid == params["re_openid"]]
        if len(today) >= state.daily_limit:
            return _refused("SENDNUM_LIMIT")
        state.balance_minor -= amount
        listid = f"1000041701{len(state.packets) + 1:020d}"
        packet = SentPacket(bill, params["re_openid"], amount, listid, params, time.time())
        state.packets[bill] = packet
        return self._sent(packet)

    def _sent(self, packet: SentPacket) -> dict[str, str]:
        return {
            "return_code": "SUCCESS",
            "return_msg": "发放成功",
            "result_code": "SUCCESS",
            "err_code": "SUCCESS",
            "err_code_des": "发放成功",
            "mch_billno": packet.mch_billno,
            "mch_id": self.mch_id,
            "wxappid": self.wxappid,
            "re_openid": packet.re_openid,
            "total_amount": str(packet.total_amount),
            "send_listid": packet.send_listid,
        }

    def _lookup(self, params: dict[str, str]) -> dict[str, str]:
        with self.state.lock:
            if self.state.lookup_failures:
                self.state.lookup_failures -= 1
                return _refused("SYSTEMERROR")
            packet = self.state.packets.get(params.get("mch_billno", ""))
        if packet is None:
            return _refused("NOT_FOUND")
        return {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "result_code": "SUCCESS",
            "mch_billno": packet.mch_billno,
            "mch_id": self.mch_id,
            "detail_id": packet.send_listid,
            "status": "SENT",
            "send_type": "API",
            "hb_type": "NORMAL",
            "total_num": "1",
            "total_amount": str(packet.total_amount),
            "openid": packet.re_openid,
        }

    # ---- API v3: cash coupons -----------------------------------------------------------------------------------

    def answer_v3(self, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, signed headers and body of a v3 call."""
        status, document = self._v3(method, path, authorization, raw)
        body = json.dumps(document, ensure_ascii=False).encode() if document else b""
        # the platform's clock is the simulated world's (the local runtime's `utc_now`), as every fake's is
        timestamp, nonce = str(int(utc_now().timestamp())), secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n{body.decode()}\n".encode()
        signature = self._platform_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        headers = {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Serial": PLATFORM_KEY_ID,
            "Request-ID": secrets.token_hex(12),
        }
        return status, headers, body

    def _v3(self, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, dict[str, str]]:
        found = COUPONS_PATH.match(path)
        if method != "POST" or found is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "无可用的资源"}
        refused = self._check_authorization(method, path, authorization, raw)
        if refused is not None:
            return 401, {"code": "SIGN_ERROR", "message": refused}
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 400, {"code": "PARAM_ERROR", "message": "请求体不是合法的JSON"}
        missing = [k for k in ("stock_id", "out_request_no", "appid", "stock_creator_mchid") if not body.get(k)]
        if missing:
            return 400, {"code": "PARAM_ERROR", "message": f"缺少参数: {', '.join(missing)}"}
        if body["appid"] != self.wxappid or body["stock_creator_mchid"] != self.mch_id:
            return 400, {"code": "APPID_MCHID_NOT_MATCH", "message": "appid与mchid不匹配"}
        openid = found.group(1)
        with self.state.lock:
            self.state.coupon_calls.append({"openid": openid, **{k: str(v) for k, v in body.items()}})
            scripted = self.state.coupon_script.pop(0) if self.state.coupon_script else None
            if scripted is not None and not scripted.issued:
                return scripted.status, {"code": scripted.code, "message": scripted.code}
            status, answer = self._issue_coupon(openid, body["stock_id"], body["out_request_no"])
        if scripted is not None:
            return scripted.status, {"code": scripted.code, "message": scripted.code}
        return status, answer

    def _issue_coupon(self, openid: str, stock_id: str, request_no: str) -> tuple[int, dict[str, str]]:
        """Under the lock: the coupon of this request (issued now, or before)."""
        state = self.state
        earlier = state.coupons.get(request_no)
        if earlier is not None:
            if earlier.openid != openid or earlier.stock_id != stock_id:
                return 400, {"code": "INVALID_REQUEST", "message": "商户单据号重复，且参数不一致"}
            return 200, {"coupon_id": earlier.coupon_id}
        stock = state.stocks.get(stock_id)
        if stock is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "批次不存在"}
        if stock.remaining <= 0:
            return 403, {"code": "NOT_ENOUGH", "message": "批次预算不足"}
        held = sum(1 for c in state.coupons.values() if c.openid == openid and c.stock_id == stock_id)
        if held >= stock.max_per_user:
            return 403, {"code": "RULE_LIMIT", "message": "用户领取已达上限"}
        stock.remaining -= 1
        coupon = IssuedCoupon(f"{9_000_000_000 + len(state.coupons) + 1}", stock_id, openid, request_no)
        state.coupons[request_no] = coupon
        return 200, {"coupon_id": coupon.coupon_id}

    def _check_authorization(self, method: str, path: str, authorization: str, raw: bytes) -> str | None:
        schema, _, rest = authorization.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if schema != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.mch_id:
            return "商户号或认证类型错误"
        if fields.get("serial_no") != MERCHANT_SERIAL:
            return "商户证书序列号错误"
        timestamp = fields.get("timestamp", "")
        if not timestamp.isdigit() or abs(utc_now().timestamp() - int(timestamp)) > 300:
            return "时间戳错误"
        message = f"{method}\n{path}\n{timestamp}\n{fields.get('nonce_str', '')}\n{raw.decode()}\n".encode()
        try:
            signature = base64.b64decode(fields.get("signature", ""), validate=True)
            self._merchant_key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "签名错误"
        return None

    # ---- serving ------------------------------------------------------------------------------------------------

    def start(self) -> FakeWeChatPay:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-wechat-pay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which an unstarted fake never ran
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeWeChatPay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _refused(err_code: str, message: str | None = None) -> dict[str, str]:
    text = message or MESSAGES.get(err_code, err_code)
    return {
        "return_code": "SUCCESS",
        "return_msg": text,
        "result_code": "FAIL",
        "err_code": err_code,
        "err_code_des": text,
    }


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def to_xml(params: Mapping[str, str]) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" if v.isdigit() else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in params.items())
    return f"<xml>{inner}</xml>".encode()


def _handler(fake: FakeWeChatPay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("content-length") or 0), 64 * 1024)
            raw = self.rfile.read(length)
            if self.path.startswith("/v3/"):
                status, headers, body = fake.answer_v3("POST", self.path, self.headers.get("authorization", ""), raw)
                self._reply(status, {"content-type": "application/json", **headers}, body)
                return
            status, answer = fake.answer(self.path, raw)
            self._reply(status, {"content-type": "text/plain; charset=utf-8"}, to_xml(answer))

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout it was told to have)
                pass

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
