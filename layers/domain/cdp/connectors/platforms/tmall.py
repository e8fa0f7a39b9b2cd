"""Tmall / Taobao shops through the TOP API (open.taobao.com), and the pure mapping of what it returns.

Calls (POST to the REST gateway, format json, v 2.0, timestamp "yyyy-MM-dd HH:mm:ss" in Beijing time, signed):

* orders: taobao.trades.sold.increment.get (by modification time; a window of at most one day, 100 a page);
* refunds: taobao.refunds.receive.get (by modification time);
* reviews: taobao.traderates.get (rate_type=get, role=buyer: what buyers wrote about the shop);
* member bindings: the Tmall brand-membership program (会员通) reports each bind/unbind of a shop member to the
  brand's member on the message channel (TMC topic tmall_mei_CrmBind, type 1 = bind, 2 = unbind). The HTTP pull
  of that channel is taobao.tmc.messages.consume (a queue: no time window; what is consumed is delivered again until
  taobao.tmc.messages.confirm), so bindings are confirmed only after their events are published. Use a TMC group
  subscribed to that topic only: every message consumed from the group is confirmed.

Identity: the shop's buyer is `buyer_open_uid` (the "ouid", stable per buyer for the app; since TOP's privacy
change nicks are mixed/masked), identifier platform_buyer_id scoped "tmall" or "taobao". A binding links that id to
the phone (and member card) the brand bound. The receiver's phone on an order is NOT used: it is usually masked and,
when clear, it is the recipient's (a gift), not the buyer's. Reviews carry no buyer id: the buyer comes from the
order (`tid`), remembered when the order was pulled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cdp.connectors.base import MappingError, event_dict, ident, present, require
from cdp.connectors.platforms.common import (
    CURRENCY,
    Skipped,
    as_list,
    buyer_token,
    local_time,
    map_records,
    minor,
    parse_local,
    plain_phone,
    text,
)
from cdp.connectors.platforms.ports import (
    Kind,
    MapContext,
    MappedPage,
    Page,
    PlatformApiError,
    PlatformClient,
    Transport,
)
from cdp.connectors.sources import PlatformShop
from cdp.shared.time import utc_now

GATEWAY = "https://eco.taobao.com/router/rest"
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
PAGE_SIZE = 100
MEMBER_TOPIC = "tmall_mei_CrmBind"
METHODS: Mapping[Kind, str] = {
    Kind.MEMBERS: "taobao.tmc.messages.consume",
    Kind.ORDERS: "taobao.trades.sold.increment.get",
    Kind.REFUNDS: "taobao.refunds.receive.get",
    Kind.REVIEWS: "taobao.traderates.get",
}
CONFIRM_METHOD = "taobao.tmc.messages.confirm"
TRADE_FIELDS = (
    "tid,status,type,payment,post_fee,total_fee,created,modified,pay_time,buyer_open_uid,receiver_mobile,"
    "orders.oid,orders.num_iid,orders.sku_id,orders.outer_iid,orders.outer_sku_id,orders.title,orders.num,"
    "orders.price,orders.payment"
)
REFUND_FIELDS = "refund_id,tid,oid,buyer_open_uid,status,refund_fee,total_fee,created,modified,reason,num_iid,outer_id"
RATE_FIELDS = "tid,oid,role,nick,result,created,item_title,content,num_iid"
# Paid, shipped or done: the buyer has paid. Unpaid (WAIT_BUYER_PAY, TRADE_NO_CREATE_PAY, PAY_PENDING) and closed
# trades are skipped; an unpaid trade comes back with a new modified time once it is paid.
PAID_STATES = frozenset(
    {
        "WAIT_SELLER_SEND_GOODS",
        "SELLER_CONSIGNED_PART",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_BUYER_SIGNED",
        "TRADE_FINISHED",
        "PAID_FORBID_CONSIGN",
    }
)
RATINGS = {"good": 5, "neutral": 3, "bad": 1}
UNBOUND = "platform_member_unbound"


def top_sign(params: Mapping[str, str], secret: str, sign_method: str) -> str:
    """TOP's signature: the parameters but `sign` (and empty ones) sorted by name, each name then value
    concatenated; md5 wraps that in the secret, hmac/hmac-sha256 key the HMAC with it; upper-case hex."""
    joined = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v not in ("", None))
    if sign_method == "md5":
        # md5 is what TOP specifies for sign_method=md5 (a legacy request checksum, not our own security)
        return hashlib.md5((secret + joined + secret).encode(), usedforsecurity=False).hexdigest().upper()
    digest = {"hmac": hashlib.md5, "hmac-sha256": hashlib.sha256}.get(sign_method)
    if digest is None:
        raise ValueError(f"unknown TOP sign_method {sign_method!r}; use one of {SIGN_METHODS}")
    return hmac.new(secret.encode(), joined.encode(), digest).hexdigest().upper()


def response_key(method: str) -> str:
    """taobao.trades.sold.increment.get -> trades_sold_increment_get_response (TOP drops the first segment)."""
    return method.split(".", 1)[1].replace(".", "_") + "_response"


class TopClient(PlatformClient):
    def __init__(
        self,
        shop: PlatformShop,
        transport: Transport,
        *,
        sign_method: str = "hmac-sha256",
        tmc_group: str = "default",
        page_size: int = PAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if shop.platform not in ("tmall", "taobao"):
            raise ValueError(f"TopClient serves tmall/taobao shops, not {shop.platform}")
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"unknown TOP sign_method {sign_method!r}; use one of {SIGN_METHODS}")
        self.platform = shop.platform
        self._shop = shop
        self._transport = transport
        self._sign_method = sign_method
        self._group = tmc_group
        self._page_size = page_size
        self._clock = clock

    # ---- calls ---------------------------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        system = {
            "method": method,
            "app_key": self._shop.app_key,
            "timestamp": local_time(self._clock()),
            "format": "json",
            "v": "2.0",
            "sign_method": self._sign_method,
        }
        if self._shop.session is not None:
            system["session"] = self._shop.session.get_secret_value()
        request = {**system, **params}
        request["sign"] = top_sign(request, self._shop.app_secret.get_secret_value(), self._sign_method)
        response = self._transport(self._shop.endpoint or GATEWAY, request)
        error = response.get("error_response")
        if isinstance(error, dict):
            detail = " ".join(str(error.get(k)) for k in ("code", "msg", "sub_code", "sub_msg") if error.get(k))
            raise PlatformApiError(f"{method} failed: {detail}")
        body = response.get(response_key(method))
        if not isinstance(body, dict):
            raise PlatformApiError(f"{method}: no {response_key(method)} in the response")
        return response

    def windowed(self, kind: Kind) -> bool:
        return kind is not Kind.MEMBERS

    def fetch(self, kind: Kind, start: datetime, end: datetime, cursor: str | None) -> Page:
        method = METHODS[kind]
        if kind is Kind.MEMBERS:
            response = self.call(method, {"group_name": self._group, "quantity": str(self._page_size)})
            messages = records_of(kind, method, response)
            ids = tuple(str(m["id"]) for m in messages if isinstance(m, dict) and "id" in m)
            more = "more" if len(messages) >= self._page_size else None  # a full batch: the queue may hold more
            return Page(kind, method, response, messages, more, ack=ids)
        page_no = int(cursor or "1")
        params = {"page_no": str(page_no), "page_size": str(self._page_size), "use_has_next": "true"}
        if kind is Kind.REVIEWS:
            params |= {"fields": RATE_FIELDS, "rate_type": "get", "role": "buyer"}
            params |= {"start_date": local_time(start), "end_date": local_time(end)}
        else:
            params["fields"] = TRADE_FIELDS if kind is Kind.ORDERS else REFUND_FIELDS
            params |= {"start_modified": local_time(start), "end_modified": local_time(end)}
        response = self.call(method, params)
        body = response[response_key(method)]
        records = records_of(kind, method, response)
        return Page(kind, method, response, records, str(page_no + 1) if body.get("has_next") else None)

    def acknowledge(self, page: Page) -> None:
        if page.ack:
            self.call(CONFIRM_METHOD, {"group_name": self._group, "s_message_ids": ",".join(page.ack)})

    def map_page(self, page: Page, context: MapContext) -> MappedPage:
        return map_page(page, context)


# ---- mapping (pure) ----------------------------------------------------------------------------------------


def records_of(kind: Kind, method: str, response: dict[str, Any]) -> list[Any]:
    """The records of one answer (also what replay reads back from an archived page)."""
    body = response.get(response_key(method)) or {}
    wrapper = {Kind.MEMBERS: "messages", Kind.ORDERS: "trades", Kind.REFUNDS: "refunds", Kind.REVIEWS: "trade_rates"}
    return as_list(body.get(wrapper[kind]))


def map_page(page: Page, context: MapContext) -> MappedPage:
    mapper, id_field = {
        Kind.MEMBERS: (map_binding, "id"),
        Kind.ORDERS: (map_order, "tid"),
        Kind.REFUNDS: (map_refund, "refund_id"),
        Kind.REVIEWS: (map_review, "tid"),
    }[page.kind]
    return map_records(page.records, lambda r: mapper(r, context), lambda r: r.get(id_field))


def map_binding(message: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    """A TMC message of topic tmall_mei_CrmBind: bind -> identify, unbind -> custom platform_member_unbound."""
    if message.get("topic") != MEMBER_TOPIC:
        raise Skipped(f"topic {message.get('topic')}")
    message_id = require(message, "id", (int, str))
    raw = message.get("content")
    try:
        content = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise MappingError("content", f"content is not JSON: {exc}") from exc
    if not isinstance(content, dict):
        raise MappingError("content", "content must be a JSON object")
    buyer = buyer_token(content.get("ouid"))
    if buyer is None:
        raise MappingError("content.ouid", "ouid (the shop member's open id) is required")
    occurred = parse_local(message.get("pub_time"), "pub_time")
    context = {"shop_id": ctx.shop_id, "omid": str(content.get("omid") or ""), "topic": MEMBER_TOPIC}
    member = ident("platform_buyer_id", buyer, ctx.platform)
    if str(content.get("type")) == "2":
        # Unbinding ends the membership; it does not make the earlier evidence false, so no identity link is removed.
        return [
            event_dict(
                event_type="custom",
                event_id=f"{ctx.platform}-unbind-{message_id}",
                source=ctx.platform,
                binding=ctx.binding(),
                occurred_at=occurred,
                identifiers=present(member),
                properties={"name": UNBOUND, "platform": ctx.platform, "shop_id": ctx.shop_id},
                context=context,
            )
        ]
    if str(content.get("type")) != "1":
        raise MappingError("content.type", "type must be 1 (bind) or 2 (unbind)")
    phone = ident("phone", plain_phone(content.get("mobile")))
    card = ident("member_card", content.get("card_no"))
    if phone is None and card is None:
        raise MappingError("content.mobile", "no clear phone (masked or encrypted) and no member card to bind")
    return [
        event_dict(
            event_type="identify",
            event_id=f"{ctx.platform}-bind-{message_id}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=occurred,
            identifiers=present(member, phone, card),
            context=context,
        )
    ]


def map_order(trade: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    tid = require(trade, "tid", (int, str))
    status = str(trade.get("status") or "")
    if status not in PAID_STATES:
        raise Skipped(f"order status {status or 'missing'}")
    buyer = buyer_token(trade.get("buyer_open_uid"))
    if buyer is None:
        raise MappingError("buyer_open_uid", "buyer_open_uid is required")
    lines = [_line(o, f"orders.{i}") for i, o in enumerate(as_list(trade.get("orders")))]
    if not lines:
        raise MappingError("orders", "the trade has no order lines")
    shipping = minor(trade.get("post_fee") or 0, "post_fee")
    total = minor(require(trade, "payment", (str, int, float)), "payment") - shipping
    if total < 0:
        raise MappingError("payment", "payment is less than the post fee")
    return [
        event_dict(
            event_type="order_placed",
            event_id=f"{ctx.platform}-order-{tid}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(trade.get("pay_time") or trade.get("created"), "pay_time"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "order_id": str(tid),
                "lines": lines,
                "total_minor": total,  # paid for the goods; the post fee is kept apart
                "shipping_minor": shipping,
                "currency": CURRENCY,
                "fulfilment": "online",
                "shop_id": ctx.shop_id,
            },
        )
    ]


def _line(order: Any, path: str) -> dict[str, Any]:
    if not isinstance(order, dict):
        raise MappingError(path, "each order line must be an object")
    sku = next((str(order[k]) for k in ("outer_sku_id", "outer_iid", "sku_id", "num_iid") if order.get(k)), None)
    if sku is None:
        raise MappingError(f"{path}.outer_iid", "the line names no sku (outer_sku_id, outer_iid, sku_id, num_iid)")
    num = order.get("num")
    if not isinstance(num, int) or isinstance(num, bool):
        raise MappingError(f"{path}.num", "num must be an integer")
    return {
        "sku": sku,
        "name": text(order.get("title"), 256),
        "quantity": num,
        "unit_price_minor": minor(order.get("price"), f"{path}.price"),
    }


def map_refund(refund: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    refund_id = require(refund, "refund_id", (int, str))
    status = str(refund.get("status") or "")
    if status != "SUCCESS":
        raise Skipped(f"refund status {status or 'missing'}")  # pulled again when it succeeds (modified changes)
    tid = str(require(refund, "tid", (int, str)))
    buyer = buyer_token(refund.get("buyer_open_uid")) or ctx.buyer_of(tid)
    if buyer is None:
        raise MappingError("tid", f"the refund's buyer is unknown: order {tid} was never pulled")
    sku = refund.get("outer_id") or refund.get("num_iid")
    return [
        event_dict(
            event_type="order_returned",
            event_id=f"{ctx.platform}-refund-{refund_id}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(refund.get("modified"), "modified"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "order_id": tid,
                "refund_minor": minor(require(refund, "refund_fee", (str, int, float)), "refund_fee"),
                "currency": CURRENCY,
                "skus": [str(sku)] if sku else [],
                "reason": text(refund.get("reason"), 500),
                "shop_id": ctx.shop_id,
            },
        )
    ]


def map_review(rate: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    tid = str(require(rate, "tid", (int, str)))
    if rate.get("role") not in (None, "buyer"):
        raise Skipped(f"review by the {rate.get('role')}")
    result = rate.get("result")
    if result not in RATINGS:
        raise MappingError("result", "result must be good, neutral or bad")
    buyer = ctx.buyer_of(tid)  # a TOP review names the buyer by a masked nick only
    if buyer is None:
        raise MappingError("tid", f"the reviewer is unknown: order {tid} was never pulled")
    oid = rate.get("oid") or "0"
    return [
        event_dict(
            event_type="review_posted",
            event_id=f"{ctx.platform}-review-{tid}-{oid}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(rate.get("created"), "created"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "sku": str(require(rate, "num_iid", (int, str))),
                "rating": RATINGS[result],
                "order_id": tid,
                "text": text(rate.get("content"), 5000),
                "shop_id": ctx.shop_id,
            },
        )
    ]
