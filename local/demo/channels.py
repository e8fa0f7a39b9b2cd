"""Encoders: each canonical event of the synthetic brand as the native request of the channel that really sent it.

The app and the site speak Segment (batched /v1/batch calls whose `context.library` says app or web), the
mini-program's server posts its users' events signed with the app secret, the official account pushes signed XML
(follow = consent), the tills post POS receipts and member records, the ad platforms their click and lead callbacks,
the push and SMS providers their receipts, opens and unsubscribe replies, SES its clicks and unsubscribes through SNS,
and Tmall/JD are pulled (`PlatformBatch`: the recorded TOP/JOS answers a pull run reads). What no connector can say
without losing meaning goes to POST /v1/events as before, counted by reason (`Encoded.reasons`): loyalty, benefits,
cards and coupons, the brand CRM's past sends (source crm), SMS link clicks (a tracked link records the time of the
click request, not the historical one), orders carrying a campaign id, and the few shapes listed in `_route`.

Identifier keys survive every encoding (the truth is scored by key); so do types, times (at the channel's native
precision: whole seconds for WeChat pushes, SMS reports and the marketplaces) and the properties the platform reads.
What a channel drops is in `DROPPED` (tests/unit/demo/test_demo_channels.py holds the encoders to all of it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from cdp.connectors.feedback_ses import canonical_string
from cdp.connectors.platforms import jd, tmall
from cdp.connectors.platforms.common import local_time
from cdp.connectors.platforms.ports import Kind
from cdp.connectors.sources import SourcesConfig
from cdp.connectors.wechat import oa_signature
from cdp.ingest.security import SIGNATURE_HEADER, sign_cdp
from cdp.shared.time import iso, parse_iso
from cdp_local.runtime.environment import local_sources

EVENTS = "events"  # POST /v1/events: the canonical path, for what no connector expresses
MINI_PROGRAM_APP, OFFICIAL_ACCOUNT_APP = "wx-mini-app", "wx-oa"  # the brand's WeChat apps: its OpenID scopes
POS_VENDOR, PUSH_PROVIDER, SMS_PROVIDER = "demo-pos", "jpush", "aliyun"
# The brand's own WeChat apps (the OpenIDs the brand knows are scoped by them). Documented local-only secrets.
DEMO_WECHAT_APPS: dict[str, dict[str, str]] = {
    MINI_PROGRAM_APP: {"brand_id": "demo-brand", "kind": "mini_program", "secret": "local-demo-mini-app-secret"},
    OFFICIAL_ACCOUNT_APP: {"brand_id": "demo-brand", "kind": "official_account", "token": "local-demo-oa-token"},
}
SEGMENT_BATCH = 100  # calls per /v1/batch, as the SDKs flush
RECORDS_BATCH = 500  # POS and ad callbacks per request ({"records": [...]}), the connectors' limit
FEEDBACK_BATCH = 1000  # push and SMS reports per request
PLATFORM_PAGE = 100  # TOP and JOS page sizes
TMC_MAX = 99  # one TMC consume answer (a full batch of 100 means "more" and the pull would ask again)
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-cdp-demo.pem"
OA_ACCOUNT = "gh_demo_brand"  # the official account's original id (ToUserName)
_LIBRARIES = {"app": {"name": "analytics-ios", "version": "4.1.8"}, "web": {"name": "analytics.js", "version": "5.2.0"}}
_MP_EVENTS = frozenset({"page_view", "add_to_cart", "order_placed", "custom"})
_TMALL_RESULTS = {5: "good", 3: "neutral", 1: "bad"}
_TRAITS = frozenset({"name", "gender", "birthday", "city", "country", "timezone", "member_level"})
_TOP_WRAPPERS = (
    (Kind.ORDERS, "trades", "trade"),
    (Kind.REFUNDS, "refunds", "refund"),
    (Kind.REVIEWS, "trade_rates", "trade_rate"),
)
# What a channel's payload has no field for, by (connector, event type): accepted losses (identity reads none of
# them; profiles get these traits and line categories from the brand's other channels, as they would in reality).
DROPPED: Mapping[tuple[str, str], frozenset[str]] = {
    ("segment", "order_returned"): frozenset({"reason"}),  # Order Refunded has no reason
    ("pos", "identify"): frozenset({"country", "timezone"}),  # a POS member record has neither
    ("tmall", "identify"): frozenset({"name", "gender", "birthday", "city", "country", "timezone"}),  # a binding
    ("tmall", "order_placed"): frozenset({"lines.category"}),  # marketplace lines carry no brand category
    ("jd", "order_placed"): frozenset({"lines.category"}),
}


def demo_sources(write_key: str) -> dict[str, Any]:
    """The local sources secret plus the brand's own WeChat apps (what an operator configures for a brand)."""
    sources = local_sources(write_key)
    wechat = sources.get("wechat")
    return {**sources, "wechat": {**(wechat if isinstance(wechat, dict) else {}), **DEMO_WECHAT_APPS}}


# ---- what the encoders produce --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NativeRequest:
    """One HTTP request exactly as the channel would send it (`path` carries the query string, if any)."""

    connector: str  # segment, wechat_mp, wechat_oa, pos, ads, push, sms, ses
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    events: tuple[dict[str, Any], ...]  # the canonical originals it carries

    @property
    def route_path(self) -> str:
        return self.path.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.path.partition("?")[2]))


@dataclass
class PlatformBatch:
    """The records of one pulled shop for one pull run, by kind, as the platform's API returns them."""

    shop_id: str
    platform: str  # tmall | jd
    records: dict[Kind, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in Kind})
    originals: dict[Kind, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in Kind})

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for kind in Kind for event in self.originals[kind]]

    def write(self, directory: Path) -> None:
        """The recorded answers `RecordedTransport(directory, ...)` serves to this shop's next pull run."""
        target = directory / ("jd" if self.platform == "jd" else "tmall")
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("*.json"):
            stale.unlink()
        answers = _jd_answers(self.records) if self.platform == "jd" else _top_answers(self.records)
        for name, answer in answers.items():
            (target / name).write_text(json.dumps(answer, ensure_ascii=False), encoding="utf-8")


@dataclass
class Encoded:
    requests: list[NativeRequest] = field(default_factory=list)
    pulls: list[PlatformBatch] = field(default_factory=list)
    fallback: list[dict[str, Any]] = field(default_factory=list)  # -> POST /v1/events
    reasons: Counter[str] = field(default_factory=Counter)  # why each fallback event could not use its channel


class NotExpressible(Exception):
    """The event's channel cannot carry it without losing meaning: it goes to /v1/events (the message says why)."""


# ---- SNS signing (SES feedback) ---------------------------------------------------------------------------------


class SnsSigner:
    """Signs SNS notifications as SNS does (SignatureVersion 2), with a self-signed certificate the local runtime
    serves for `SNS_CERT_URL` (install it with `feedback_ses.set_certificate_fetcher`): no SNS host is reachable."""

    def __init__(self, topic_arn: str, now: datetime) -> None:
        self.topic_arn = topic_arn
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .sign(self._key, hashes.SHA256())
        )
        self.pem = certificate.public_bytes(serialization.Encoding.PEM)

    def notification(self, message: dict[str, Any], message_id: str, now: datetime) -> bytes:
        envelope: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.topic_arn,
            "Message": json.dumps(message, separators=(",", ":")),
            "Timestamp": iso(now),
            "SignatureVersion": "2",
            "SigningCertURL": SNS_CERT_URL,
            "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={self.topic_arn}",
        }
        signature = self._key.sign(canonical_string(envelope), padding.PKCS1v15(), hashes.SHA256())
        envelope["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(envelope).encode()


# ---- the encoder --------------------------------------------------------------------------------------------------


class ChannelEncoder:
    """Stateful across calls (a POS refund needs the lines of its sale; a marketplace review needs its order pulled
    first), so encode the brand's events in time order. `pull_platforms=False` sends Tmall/JD to /v1/events."""

    def __init__(
        self,
        sources: SourcesConfig,
        write_key: str,
        *,
        sns: SnsSigner | None = None,
        pull_platforms: bool = True,
    ) -> None:
        self._sources = sources
        self._write_key = write_key
        self._sns = sns
        self._pull = pull_platforms
        self._shops: dict[str, str] = {shop.platform: shop_id for shop_id, shop in sources.shops.items()}
        self._pos_lines: dict[str, list[dict[str, Any]]] = {}  # POS receipt -> its lines (for refunds)
        self._pulled_orders: set[tuple[str, str]] = set()  # (platform, order id) a pull run has seen

    def encode(self, events: Iterable[dict[str, Any]], now: datetime) -> Encoded:
        """Native requests (signed at `now`: send them within the 5-minute replay window) for `events`."""
        out = Encoded()
        groups: dict[tuple[str, str], list[tuple[dict[str, Any], Any]]] = defaultdict(list)
        pulls: dict[str, PlatformBatch] = {}
        for event in events:
            try:
                channel, key, native = self._route(event)
            except NotExpressible as exc:
                out.fallback.append(event)
                out.reasons[f"{event['source']}/{event['event_type']}: {exc}"] += 1
                continue
            if channel in ("tmall", "jd"):
                batch = pulls.setdefault(channel, PlatformBatch(self._shops[channel], channel))
                kind, record = native
                if kind is Kind.MEMBERS and len(batch.records[kind]) >= TMC_MAX:
                    out.fallback.append(event)
                    out.reasons[f"{channel}/identify: more bindings than one TMC consume returns"] += 1
                    continue
                batch.records[kind].append(record)
                batch.originals[kind].append(event)
                if kind is Kind.ORDERS:
                    self._pulled_orders.add((channel, event["properties"]["order_id"]))
                continue
            groups[(channel, key)].append((event, native))
        for (channel, key), items in groups.items():
            out.requests.extend(self._requests(channel, key, items, now))
        out.pulls = list(pulls.values())
        return out

    # ---- routing: which channel, and the native item --------------------------------------------------------

    def _route(self, event: dict[str, Any]) -> tuple[str, str, Any]:
        source, kind = event["source"], event["event_type"]
        if source == "pos" and kind == "order_placed":  # a refund at the till lists the sale's lines
            self._pos_lines[event["properties"]["order_id"]] = event["properties"]["lines"]
        if kind == "order_placed" and event["properties"].get("campaign_id"):
            raise NotExpressible("order campaign attribution has no field in any channel payload")
        if source in ("app", "web"):
            return "segment", source, _segment_call(event)
        if source == "mini_program":
            return "wechat_mp", _mp_user(event), _mp_item(event)
        if source == "ads":
            platform, record = _ad_callback(event, self._sources)
            return "ads", platform, record
        simple = {"wechat_oa": _oa_push, "pos": self._pos_record, "push": _push_item, "sms": _sms_reply}
        if source in simple:
            return source, "", simple[source](event)
        if source == "email":
            if self._sns is None:
                raise NotExpressible("no SNS signer for SES feedback")
            return "ses", "", _ses_event(event)
        if source in ("tmall", "jd"):
            if not self._pull:
                raise NotExpressible("not pulled in this run (marketplace times are whole seconds)")
            if source not in self._shops:
                raise NotExpressible(f"no {source} shop configured")
            return source, "", self._platform_record(event)
        raise NotExpressible("no connector (the brand CRM's past sends, or a source no channel speaks for)")

    # ---- requests per channel -------------------------------------------------------------------------------

    def _requests(
        self, channel: str, key: str, items: list[tuple[dict[str, Any], Any]], now: datetime
    ) -> list[NativeRequest]:
        if channel == "segment":
            return [self._segment(key, chunk, now) for chunk in _chunks(items, SEGMENT_BATCH)]
        if channel == "wechat_mp":
            return [self._mini_program(chunk, now) for chunk in _chunks(items, RECORDS_BATCH)]
        if channel == "wechat_oa":
            return [self._official_account(event, xml, now) for event, xml in items]
        if channel == "ses":
            return [self._ses(event, message, now) for event, message in items]
        if channel in ("pos", "ads"):
            source = self._sources.pos[POS_VENDOR] if channel == "pos" else self._sources.ads[key]
            path = f"/v1/webhooks/pos/{POS_VENDOR}" if channel == "pos" else f"/v1/webhooks/ads/{key}"
            secret = source.secret.get_secret_value()
            return [
                self._signed(channel, path, secret, {"records": [n for _, n in c]}, c, now)
                for c in _chunks(items, RECORDS_BATCH)
            ]
        if channel == "push":
            secret = self._sources.push[PUSH_PROVIDER].secret.get_secret_value()
            path = f"/v1/feedback/push/{PUSH_PROVIDER}"
            return [
                self._signed("push", path, secret, {"events": [n for _, n in c]}, c, now)
                for c in _chunks(items, FEEDBACK_BATCH)
            ]
        secret = self._sources.sms[SMS_PROVIDER].secret.get_secret_value()
        path = f"/v1/feedback/sms/{SMS_PROVIDER}"
        return [self._signed("sms", path, secret, [n for _, n in c], c, now) for c in _chunks(items, FEEDBACK_BATCH)]

    def _segment(self, library: str, items: list[tuple[dict[str, Any], Any]], now: datetime) -> NativeRequest:
        body = {"batch": [call for _, call in items], "sentAt": iso(now), "context": {"library": _LIBRARIES[library]}}
        token = base64.b64encode(f"{self._write_key}:".encode()).decode()
        headers = {"content-type": "application/json", "authorization": f"Basic {token}"}
        return NativeRequest("segment", "POST", "/v1/batch", _json(body), headers, tuple(e for e, _ in items))

    def _mini_program(self, items: list[tuple[dict[str, Any], Any]], now: datetime) -> NativeRequest:
        user = _mp_user_fields(items[0][0])
        body = {**user, "events": [item for _, item in items]}
        secret = _secret(self._sources.wechat[MINI_PROGRAM_APP].secret)
        path = f"/v1/wechat/{MINI_PROGRAM_APP}/events"
        return self._signed("wechat_mp", path, secret, body, items, now)

    def _signed(
        self,
        connector: str,
        path: str,
        secret: str,
        body: Any,
        items: list[tuple[dict[str, Any], Any]],
        now: datetime,
    ) -> NativeRequest:
        raw = _json(body)
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign_cdp(secret, raw, int(now.timestamp()))}
        return NativeRequest(connector, "POST", path, raw, headers, tuple(e for e, _ in items))

    def _official_account(self, event: dict[str, Any], xml: bytes, now: datetime) -> NativeRequest:
        timestamp = str(int(now.timestamp()))
        nonce = str(int(hashlib.sha256(event["event_id"].encode()).hexdigest()[:8], 16))
        token = _secret(self._sources.wechat[OFFICIAL_ACCOUNT_APP].token)
        query = {
            "signature": oa_signature(token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": _only(event, "wechat_openid"),
        }
        path = f"/v1/wechat/{OFFICIAL_ACCOUNT_APP}?{urlencode(query)}"
        return NativeRequest("wechat_oa", "POST", path, xml, {"content-type": "text/xml"}, (event,))

    def _ses(self, event: dict[str, Any], message: dict[str, Any], now: datetime) -> NativeRequest:
        assert self._sns is not None  # routed to SES only with a signer
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cdp-demo:{event['event_id']}"))
        body = self._sns.notification(message, message_id, now)
        headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
        return NativeRequest("ses", "POST", "/v1/feedback/ses", body, headers, (event,))

    # ---- POS and the marketplaces need what came before ----------------------------------------------------

    def _pos_record(self, event: dict[str, Any]) -> dict[str, Any]:
        kind, props = event["event_type"], event["properties"]
        member = _member(event)
        record: dict[str, Any] = {"store_code": event.get("store_id"), "occurred_at": event["occurred_at"]}
        if kind == "identify":
            if "card_no" not in member:
                raise NotExpressible("a POS member record needs the member card")
            if set(props) - _TRAITS:
                raise NotExpressible(f"a POS member record has no field for {sorted(set(props) - _TRAITS)}")
            gender = props.get("gender")
            traits = {"name": props.get("name"), "gender": gender if gender != "unknown" else None}
            traits |= {"birthday": props.get("birthday"), "city": props.get("city"), "level": props.get("member_level")}
            return {"type": "member", **record, "member": {**member, **_clean(traits)}}
        if not event.get("store_id"):
            raise NotExpressible("a POS receipt needs its store")
        if kind == "order_placed":
            items = [_pos_item(line) for line in props["lines"]]
            paid = {
                "total": props["total_minor"],
                "tenders": [{"method": "wechat_pay", "amount": props["total_minor"]}],
            }
            extra = {"coupon_code": props["coupon_id"]} if props.get("coupon_id") else {}
            sale = {"type": "sale", "receipt_no": props["order_id"], **record, "currency": props["currency"]}
            return {**sale, "member": member, "items": items, "paid": paid, **extra}
        if kind == "order_returned":
            lines = self._pos_lines.get(props["order_id"])
            if lines is None:
                raise NotExpressible("the refunded sale's lines are unknown")
            refunded = [_pos_item(line) for line in lines if line["sku"] in props["skus"]]
            refund = {"type": "refund", "receipt_no": f"R-{event['event_id']}", **record, "currency": props["currency"]}
            refund |= {"refund_of": props["order_id"], "refunded": {"total": props["refund_minor"]}}
            return {**refund, "member": member, "items": refunded, **_clean({"reason": props.get("reason")})}
        raise NotExpressible("a POS sends sales, refunds and member records only")

    def _platform_record(self, event: dict[str, Any]) -> tuple[Kind, dict[str, Any]]:
        platform, kind, props = event["source"], event["event_type"], event["properties"]
        buyer = _only(event, "platform_buyer_id")
        when = local_time(parse_iso(event["occurred_at"]))
        if kind == "order_placed":
            if props.get("coupon_id") or set(_types(event)) != {"platform_buyer_id"}:
                raise NotExpressible("a marketplace order names its buyer only, and no brand coupon")
            return Kind.ORDERS, (_jd_order if platform == "jd" else _top_trade)(props, buyer, when)
        if kind == "order_returned":
            return Kind.REFUNDS, _platform_refund(event, buyer, when)
        if kind == "review_posted":
            if (platform, str(props.get("order_id"))) not in self._pulled_orders:
                raise NotExpressible("a marketplace review finds its buyer through an order pulled before")
            return Kind.REVIEWS, _platform_review(event, when)
        if kind == "identify" and platform == "tmall":
            return Kind.MEMBERS, _tmc_binding(event, buyer, when)
        if kind == "identify":
            raise NotExpressible("a JD member card adds a card number the brand never issued")
        raise NotExpressible("the marketplaces report orders, refunds, reviews and member bindings only")


# ---- per-channel items (pure) -------------------------------------------------------------------------------


def _platform_refund(event: dict[str, Any], buyer: str, when: str) -> dict[str, Any]:
    props = event["properties"]
    if event["source"] == "jd":
        raise NotExpressible("a JD refund application names no sku")
    if len(props["skus"]) != 1:
        raise NotExpressible("Tmall refunds are per order line: a multi-line refund would split")
    refund = {"refund_id": event["event_id"], "tid": props["order_id"], "oid": props["order_id"]}
    refund |= {"buyer_open_uid": buyer, "status": "SUCCESS", "refund_fee": _major(props["refund_minor"])}
    refund |= {"created": when, "modified": when, "outer_id": props["skus"][0]}
    return {**refund, **_clean({"reason": props.get("reason")})}


def _platform_review(event: dict[str, Any], when: str) -> dict[str, Any]:
    props = event["properties"]
    if event["source"] == "jd":
        comment = {"commentId": event["event_id"], "skuid": props["sku"], "orderId": props["order_id"]}
        return {**comment, "score": props["rating"], "creationTime": when, "nickName": "j***"}
    if props["rating"] not in _TMALL_RESULTS:
        raise NotExpressible("Tmall rates good/neutral/bad only (5/3/1)")
    rate = {"tid": props["order_id"], "oid": event["event_id"], "role": "buyer", "nick": "t***"}
    return rate | {"result": _TMALL_RESULTS[props["rating"]], "created": when, "num_iid": props["sku"]}


def _tmc_binding(event: dict[str, Any], buyer: str, when: str) -> dict[str, Any]:
    if event["properties"].get("member_level") or set(_types(event)) != {"platform_buyer_id", "phone"}:
        raise NotExpressible("a 会员通 binding carries the buyer and the phone only (no member level)")
    content = {"type": 1, "ouid": buyer, "mobile": _only(event, "phone"), "seller_name": "demo-brand"}
    message = {"id": _digits(event["event_id"]), "topic": tmall.MEMBER_TOPIC, "pub_time": when}
    return {**message, "content": json.dumps(content, ensure_ascii=False)}


def _types(event: dict[str, Any]) -> list[str]:
    return [i["type"] for i in event["identifiers"]]


def _only(event: dict[str, Any], kind: str) -> str:
    values = [i["value"] for i in event["identifiers"] if i["type"] == kind]
    if len(values) != 1:
        raise NotExpressible(f"expected one {kind}")
    return str(values[0])


def _segment_call(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("store_id"):
        raise NotExpressible("a Segment call names no store")
    ids: dict[str, list[str]] = defaultdict(list)
    for identifier in event["identifiers"]:
        ids[identifier["type"]].append(identifier["value"])
    if set(ids) - {"device_id", "phone", "email", "user_id"} or len(ids["device_id"]) > 2:
        raise NotExpressible("a Segment call carries a user id, two device ids, an e-mail and a phone only")
    if any(len(ids[k]) > 1 for k in ("phone", "email", "user_id")):
        raise NotExpressible("a Segment call carries one e-mail and one phone")
    if not (ids["device_id"] or ids["user_id"]):
        raise NotExpressible("a Segment call needs a userId or an anonymousId (traits alone are not one)")
    call: dict[str, Any] = {"messageId": event["event_id"], "timestamp": event["occurred_at"]}
    context: dict[str, Any] = {}
    if ids["device_id"]:
        call["anonymousId"] = ids["device_id"][0]
        if len(ids["device_id"]) > 1:
            context["device"] = {"id": ids["device_id"][1]}
    if ids["user_id"]:
        call["userId"] = ids["user_id"][0]
    traits = {k: ids[k][0] for k in ("email", "phone") if ids[k]}
    kind, props = event["event_type"], event["properties"]
    if kind == "identify":
        return _segment_identify(call, traits, context, props)
    if traits:
        context["traits"] = traits
    call |= {"context": context} if context else {}
    if kind == "page_view":
        return {"type": "page", **call, "properties": _clean({"url": props["url"], "title": props.get("title")})}
    return {"type": "track", **call, **_segment_track(kind, props)}


def _segment_identify(
    call: dict[str, Any], traits: dict[str, Any], context: dict[str, Any], props: dict[str, Any]
) -> dict[str, Any]:
    extra = set(props) - _TRAITS
    if extra:
        raise NotExpressible(f"no Segment trait for {sorted(extra)}")
    address = _clean({"city": props.get("city"), "country": props.get("country")})
    gender = props.get("gender") if props.get("gender") != "unknown" else None  # unknown: no trait
    profile = {"name": props.get("name"), "gender": gender, "birthday": props.get("birthday")}
    traits = {**traits, **_clean({**profile, "member_level": props.get("member_level")})}
    if address:
        traits["address"] = address
    if props.get("timezone"):
        context = {**context, "timezone": props["timezone"]}
    return {"type": "identify", **call, "traits": traits, **({"context": context} if context else {})}


def _segment_track(kind: str, props: dict[str, Any]) -> dict[str, Any]:
    if kind == "add_to_cart":
        product = {"sku": props["sku"], "category": props.get("category"), "quantity": props["quantity"]}
        product |= {"price": _decimal(props["unit_price_minor"]), "currency": props["currency"]}
        return {"event": "Product Added", "properties": _clean(product)}
    if kind == "order_placed":
        products = [{**_line(line), "price": _decimal(line["unit_price_minor"])} for line in props["lines"]]
        order = {"order_id": props["order_id"], "total": _decimal(props["total_minor"]), "currency": props["currency"]}
        order |= {"products": products, **_clean({"coupon": props.get("coupon_id")})}
        return {"event": "Order Completed", "properties": order}
    if kind == "order_returned":
        refund = {
            "order_id": props["order_id"],
            "total": _decimal(props["refund_minor"]),
            "currency": props["currency"],
        }
        return {"event": "Order Refunded", "properties": {**refund, "products": [{"sku": s} for s in props["skus"]]}}
    if kind == "review_posted":
        review = {"product_id": props["sku"], "sku": props["sku"], "rating": props["rating"]}
        review |= {"order_id": props.get("order_id"), "review_body": props.get("text")}
        return {"event": "Product Reviewed", "properties": _clean(review)}
    if kind == "custom":
        scalars = {k: v for k, v in props.items() if k != "name"}
        if any(not isinstance(v, str | int | float | bool) for v in scalars.values()):
            raise NotExpressible("a custom track call keeps scalar properties only")
        return {"event": props["name"], "properties": scalars}
    raise NotExpressible("no Segment e-commerce event for this type (a track call would make it custom)")


def _mp_user(event: dict[str, Any]) -> str:
    """Events of one user (one identifier set) share a payload: the mini-program server posts per user."""
    return json.dumps(_mp_user_fields(event), sort_keys=True)


def _mp_user_fields(event: dict[str, Any]) -> dict[str, str]:
    kinds = _types(event)
    if set(kinds) - {"wechat_openid", "wechat_unionid", "phone"} or len(kinds) != len(set(kinds)):
        raise NotExpressible("a mini-program payload names an OpenID, a UnionID and a phone only (no e-mail)")
    openid = next(i for i in event["identifiers"] if i["type"] == "wechat_openid") if "wechat_openid" in kinds else None
    if openid is None or openid.get("scope") != MINI_PROGRAM_APP:
        raise NotExpressible(f"a mini-program payload needs an OpenID of {MINI_PROGRAM_APP}")
    user = {"openid": openid["value"]}
    for kind, name in (("wechat_unionid", "unionid"), ("phone", "phone")):
        if kind in kinds:
            user[name] = _only(event, kind)
    return user


def _mp_item(event: dict[str, Any]) -> dict[str, Any]:
    kind, props = event["event_type"], event["properties"]
    if kind == "identify":
        raise NotExpressible("a mini-program identify is getPhoneNumber: it carries no profile traits")
    if kind not in _MP_EVENTS:
        raise NotExpressible("the mini-program server posts page views, carts, paid orders and custom events only")
    item: dict[str, Any] = {"id": event["event_id"], "timestamp": event["occurred_at"]}
    if kind == "page_view":
        page = urlsplit(props["url"])
        path = page.path.lstrip("/") + (f"?{page.query}" if page.query else "")
        return {**item, "name": "page_view", "properties": _clean({"path": path, "title": props.get("title")})}
    if kind == "add_to_cart":
        cart = {k: props.get(k) for k in ("sku", "category", "quantity", "currency")}
        return {**item, "name": "add_to_cart", "properties": _clean({**cart, "price": props["unit_price_minor"]})}
    if kind == "order_placed":
        lines = [{**_line(line), "price": line["unit_price_minor"]} for line in props["lines"]]  # fen
        order = {"order_id": props["order_id"], "lines": lines, "total": props["total_minor"]}
        order |= _clean(
            {
                "currency": props["currency"],
                "coupon_id": props.get("coupon_id"),
                "coupon_code": props.get("coupon_code"),
            }
        )
        return {**item, "name": "order_paid", "properties": order}
    return {**item, "name": props["name"], "properties": {k: v for k, v in props.items() if k != "name"}}


def _oa_push(event: dict[str, Any]) -> bytes:
    props = event["properties"]
    if event["event_type"] != "consent_changed" or props.get("channel") != "wechat":
        raise NotExpressible("an official account pushes follows and unfollows (user info is pulled, not pushed)")
    openid = next((i for i in event["identifiers"] if i["type"] == "wechat_openid"), None)
    others = set(_types(event)) - {"wechat_openid", "wechat_unionid"}
    if openid is None or openid.get("scope") != OFFICIAL_ACCOUNT_APP or others:
        raise NotExpressible(f"a push names an OpenID of {OFFICIAL_ACCOUNT_APP} (and its UnionID) only")
    fields = {
        "ToUserName": OA_ACCOUNT,
        "FromUserName": openid["value"],
        "CreateTime": str(int(parse_iso(event["occurred_at"]).timestamp())),
        "MsgType": "event",
        "Event": "subscribe" if props["granted"] else "unsubscribe",
        "EventKey": "",
    }
    if "wechat_unionid" in _types(event):
        fields["UnionId"] = _only(event, "wechat_unionid")
    inner = "".join(
        f"<{k}><![CDATA[{v}]]></{k}>" if k != "CreateTime" else f"<{k}>{v}</{k}>" for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>".encode()


def _member(event: dict[str, Any]) -> dict[str, str]:
    """A POS names a member by card and phone (a walk-in by the phone they give)."""
    kinds = _types(event)
    if set(kinds) - {"member_card", "phone"} or len(kinds) != len(set(kinds)) or not kinds:
        raise NotExpressible("a POS record names a member card and a phone only (a counter tablet is no member)")
    member = {"card_no": _only(event, "member_card")} if "member_card" in kinds else {}
    return member | ({"phone": _only(event, "phone")} if "phone" in kinds else {})


def _pos_item(line: dict[str, Any]) -> dict[str, Any]:
    item = {"sku": line["sku"], "name": line.get("name"), "category": line.get("category")}
    return _clean({**item, "qty": line["quantity"], "unit_price": line["unit_price_minor"]})


def _ad_callback(event: dict[str, Any], sources: SourcesConfig) -> tuple[str, dict[str, Any]]:
    props = event["properties"]
    platform = str(props.get("platform") or "")
    if platform not in sources.ads:
        raise NotExpressible(f"no ad platform {platform!r} configured")
    ts = int(parse_iso(event["occurred_at"]).timestamp() * 1000)  # Ocean Engine's __TS__: milliseconds
    ad = {k: props[k] for k in ("campaign_id", "adgroup_id", "ad_id") if props.get(k)}
    kinds = _types(event)
    one_device = kinds.count("device_id") <= 1
    if event["event_type"] == "ad_clicked" and set(kinds) <= {"ad_click_id", "device_id"} and one_device:
        device = {"oaid": _only(event, "device_id")} if "device_id" in kinds else {}
        click = {"type": "click", "click_id": props["click_id"], **ad, "device": device, "ts": ts}
        return platform, click | _clean({"placement": props.get("placement")})
    if event["event_type"] == "lead_submitted" and set(kinds) <= {"ad_click_id", "phone", "email"}:
        contact: dict[str, str] = {k: _only(event, k) for k in ("phone", "email") if k in kinds}
        lead: dict[str, Any] = {"type": "lead", "lead_id": props["lead_id"], **ad, **contact, "ts": ts}
        return platform, lead | _clean({"click_id": props.get("click_id"), "form_id": props.get("form_id")})
    raise NotExpressible("an ad platform calls back clicks (click id, device) and leads (click id, phone, e-mail)")


def _push_item(event: dict[str, Any]) -> dict[str, Any]:
    kind, props = event["event_type"], event["properties"]
    if kind not in ("message_delivered", "message_opened") or props.get("status", "delivered") != "delivered":
        raise NotExpressible("a push provider reports receipts and opens only")
    item = {"type": "received" if kind == "message_delivered" else "opened", "message_id": props["message_id"]}
    item |= {"device_id": _only(event, "device_id"), "ts": event["occurred_at"]}
    return item | _clean({"campaign_id": props.get("campaign_id")})


def _sms_reply(event: dict[str, Any]) -> dict[str, Any]:
    props = event["properties"]
    if event["event_type"] != "consent_changed" or props.get("granted") or props.get("channel") != "sms":
        raise NotExpressible("SMS feedback carries receipts and unsubscribe replies; a link click is timed on arrival")
    sent = local_time(parse_iso(event["occurred_at"]))  # Alibaba Cloud's China time, whole seconds
    return {"phone_number": _only(event, "phone"), "content": "TD", "send_time": sent, "sequence_id": event["event_id"]}


def _ses_event(event: dict[str, Any]) -> dict[str, Any]:
    kind, props = event["event_type"], event["properties"]
    email = _only(event, "email")
    if len(event["identifiers"]) != 1:
        raise NotExpressible("an SES event names the recipient's address only")
    at = event["occurred_at"]
    if kind == "message_clicked" and props.get("channel") == "email":
        tags = {"message_id": [props["message_id"]]}  # what the send path tags every message with
        if props.get("campaign_id"):
            tags["campaign_id"] = [props["campaign_id"]]
        mail = {"timestamp": at, "messageId": f"ses-{props['message_id']}", "destination": [email], "tags": tags}
        click = {"timestamp": at, "link": props["url"], "ipAddress": "192.0.2.1", "linkTags": {}}
        return {"eventType": "Click", "mail": {**mail, "source": "marketing@cdp.local"}, "click": click}
    if kind == "consent_changed" and props.get("channel") == "email" and not props.get("granted"):
        mail = {"timestamp": at, "messageId": f"ses-unsub-{event['event_id']}", "destination": [email], "tags": {}}
        preferences = {"unsubscribeAll": True, "topicSubscriptionStatus": []}
        subscription = {"contactList": "demo-brand", "timestamp": at, "source": "UnsubscribeHeader"}
        subscription |= {"newTopicPreferences": preferences, "oldTopicPreferences": {"unsubscribeAll": False}}
        mail["source"] = "marketing@cdp.local"
        return {"eventType": "Subscription", "mail": mail, "subscription": subscription}
    raise NotExpressible("SES reports e-mail clicks and unsubscribes here (deliveries are the platform's own)")


def _top_trade(props: dict[str, Any], buyer: str, when: str) -> dict[str, Any]:
    orders = [
        {"oid": f"{props['order_id']}-{i}", "outer_sku_id": line["sku"], "title": line.get("name") or line["sku"]}
        | {"num": line["quantity"], "price": _major(line["unit_price_minor"])}
        | {"payment": _major(line["quantity"] * line["unit_price_minor"])}
        for i, line in enumerate(props["lines"], 1)
    ]
    trade = {"tid": props["order_id"], "status": "WAIT_SELLER_SEND_GOODS", "type": "fixed"}
    trade |= {"payment": _major(props["total_minor"]), "post_fee": "0.00", "total_fee": _major(props["total_minor"])}
    trade |= {"created": when, "pay_time": when, "modified": when, "buyer_open_uid": buyer}
    return {**trade, "receiver_mobile": "138****0000", "orders": {"order": orders}}


def _jd_order(props: dict[str, Any], buyer: str, when: str) -> dict[str, Any]:
    items = [
        {"skuId": line["sku"], "outerSkuId": line["sku"], "skuName": line.get("name") or line["sku"]}
        | {"jdPrice": _major(line["unit_price_minor"]), "itemTotal": str(line["quantity"])}
        for line in props["lines"]
    ]
    order = {"orderId": props["order_id"], "orderState": "WAIT_SELLER_STOCK_OUT"}
    order |= {"orderPayment": _major(props["total_minor"])}
    order |= {"freightPrice": "0.00", "orderStartTime": when, "paymentConfirmTime": when, "modified": when}
    return {**order, "open_id_buyer": buyer, "consigneeInfo": {"mobile": "139****0000"}, "itemInfoList": items}


# ---- recorded platform answers (what the pull reads) ---------------------------------------------------------


def _pages(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [records[i : i + PLATFORM_PAGE] for i in range(0, len(records), PLATFORM_PAGE)] or [[]]


def _page_name(method: str, n: int) -> str:
    return f"{method}.json" if n == 1 else f"{method}.page{n}.json"


def _top_answers(records: Mapping[Kind, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    consume, confirm = tmall.METHODS[Kind.MEMBERS], tmall.CONFIRM_METHOD
    answers: dict[str, dict[str, Any]] = {
        f"{consume}.json": {tmall.response_key(consume): {"messages": {"tmc_message": records[Kind.MEMBERS]}}},
        f"{confirm}.json": {tmall.response_key(confirm): {"is_success": True}},
    }
    for kind, wrapper, item in _TOP_WRAPPERS:
        method, pages = tmall.METHODS[kind], _pages(records[kind])
        for n, page in enumerate(pages, 1):
            body = {"total_results": len(records[kind]), "has_next": n < len(pages), wrapper: {item: page}}
            answers[_page_name(method, n)] = {tmall.response_key(method): body}
    return answers


def _jd_answers(records: Mapping[Kind, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for kind in Kind:
        method, total = jd.METHODS[kind], len(records[kind])
        for n, page in enumerate(_pages(records[kind]), 1):
            if kind is Kind.ORDERS:
                found = {"apiResult": {"success": True}, "orderTotal": total, "orderInfoList": page}
                result: dict[str, Any] = {"searchorderinfo_result": found}
            elif kind is Kind.REFUNDS:
                result = {"queryResult": {"success": True, "totalCount": total, "result": page}}
            elif kind is Kind.REVIEWS:
                result = {"returnType": {"success": True, "totalItem": total, "comments": page}}
            else:
                result = {"result": {"success": True, "total": total, "data": page}}
            answers[_page_name(method, n)] = {jd.response_key(method): {"code": "0", **result}}
    return answers


# ---- small helpers --------------------------------------------------------------------------------------------


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _line(line: dict[str, Any]) -> dict[str, Any]:
    return _clean({k: line.get(k) for k in ("sku", "name", "category", "quantity")})


def _decimal(minor: int) -> float:
    """Yuan as the number a Segment SDK sends (n / 100 prints, and so parses, as exactly n fen)."""
    return minor / 100


def _major(minor: int) -> str:
    """Fen as the yuan string the channels send ("12.50"): exact, unlike a float."""
    return f"{minor // 100}.{minor % 100:02d}"


def _digits(event_id: str) -> int:
    """A numeric message id (TMC's are 64-bit numbers) that stays stable for the same event."""
    return int(hashlib.sha256(event_id.encode()).hexdigest()[:15], 16)


def _secret(value: Any) -> str:
    return str(value.get_secret_value()) if value is not None else ""


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}
