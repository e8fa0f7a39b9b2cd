"""JD shops through the JD open platform (JOS, jos.jd.com), and the pure mapping of what it returns.

Every call is a POST to the routerjson gateway with the system parameters method, app_key, access_token, timestamp
("yyyy-MM-dd HH:mm:ss", Beijing time), v=2.0 and the business parameters as one JSON string in `360buy_param_json`;
sign = upper hex MD5(secret + the parameters sorted by name, each name then value + secret). JOS answers under
"{method with dots as underscores}_responce" (sic).

* orders: jingdong.pop.order.search (by modification time, dateType 0; 100 a page);
* refunds: jingdong.pop.afs.soa.refundapply.queryPageList (refund applications by check time; the amount
  `applyRefundSum` is in fen);
* reviews: jingdong.pop.PopCommentJsfService.getVenderCommentsForJos (score 1-5);
* member bindings: the brand-member card records (open / cancel) of the shop. Their fields follow JOS's member
  card (pin, phone, openTime, open_id_buyer, xid_buyer as in jingdong.createMemberCard); the query method name
  `MEMBER_METHOD` could not be checked against a live JOS app (no sandbox account): confirm it in the app's JOS
  console before enabling a JD shop.

Identity: the buyer is `open_id_buyer` (JD's per-app buyer id since pins are encrypted), platform_buyer_id scoped
"jd". Consignee phones are masked (and are the recipient's): never identifiers. Refunds and comments name the order;
their buyer comes from the order, remembered when it was pulled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cdp.connectors.base import MappingError, event_dict, ident, present, require
from cdp.connectors.platforms.common import (
    CURRENCY,
    Skipped,
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

GATEWAY = "https://api.jd.com/routerjson"
PAGE_SIZE = 100
MEMBER_METHOD = "jingdong.pop.crm.getMemberCardList"  # unverified: see the module docstring
METHODS: Mapping[Kind, str] = {
    Kind.MEMBERS: MEMBER_METHOD,
    Kind.ORDERS: "jingdong.pop.order.search",
    Kind.REFUNDS: "jingdong.pop.afs.soa.refundapply.queryPageList",
    Kind.REVIEWS: "jingdong.pop.PopCommentJsfService.getVenderCommentsForJos",
}
ORDER_FIELDS = (
    "orderId,orderState,orderPayment,freightPrice,orderStartTime,paymentConfirmTime,modified,open_id_buyer,"
    "consigneeInfo,itemInfoList"
)
PAID_STATES = frozenset({"WAIT_SELLER_STOCK_OUT", "WAIT_SELLER_DELIVERY", "WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L"})
# Asked for as well, so a cancellation is seen (and counted as skipped) rather than silently absent.
QUERIED_STATES = ",".join(sorted(PAID_STATES | {"TRADE_CANCELED", "LOCKED"}))
REFUNDED = frozenset({1, 3, 5})  # approved by the shop, by JD finance, or by manual review
CARD_OPEN, CARD_CANCELLED = "1", "2"
UNBOUND = "platform_member_unbound"


def jd_sign(params: Mapping[str, str], secret: str) -> str:
    joined = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v not in ("", None))
    # MD5 is what JOS specifies for the request signature (a platform checksum, not our own security)
    return hashlib.md5((secret + joined + secret).encode(), usedforsecurity=False).hexdigest().upper()


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_responce"


class JdClient(PlatformClient):
    platform = "jd"

    def __init__(
        self,
        shop: PlatformShop,
        transport: Transport,
        *,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if shop.platform != "jd":
            raise ValueError(f"JdClient serves jd shops, not {shop.platform}")
        self._shop = shop
        self._transport = transport
        self._page_size = page_size
        self._clock = clock

    def call(self, method: str, business: Mapping[str, Any]) -> dict[str, Any]:
        request = {
            "method": method,
            "app_key": self._shop.app_key,
            "timestamp": local_time(self._clock()),
            "v": "2.0",
            "360buy_param_json": json.dumps(business, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        }
        if self._shop.session is not None:
            request["access_token"] = self._shop.session.get_secret_value()
        request["sign"] = jd_sign(request, self._shop.app_secret.get_secret_value())
        response = self._transport(self._shop.endpoint or GATEWAY, request)
        error = response.get("error_response")
        if isinstance(error, dict):
            detail = " ".join(str(error.get(k)) for k in ("code", "en_desc", "zh_desc") if error.get(k))
            raise PlatformApiError(f"{method} failed: {detail}")
        body = response.get(response_key(method))
        if not isinstance(body, dict):
            raise PlatformApiError(f"{method}: no {response_key(method)} in the response")
        return response

    def fetch(self, kind: Kind, start: datetime, end: datetime, cursor: str | None) -> Page:
        method = METHODS[kind]
        page = int(cursor or "1")
        size = self._page_size
        begin, until = local_time(start), local_time(end)
        if kind is Kind.ORDERS:
            business: dict[str, Any] = {
                "start_date": begin,
                "end_date": until,
                "dateType": 0,  # 0: by modification time
                "order_state": QUERIED_STATES,
                "optional_fields": ORDER_FIELDS,
                "page": page,
                "page_size": size,
            }
        elif kind is Kind.REFUNDS:
            business = {"checkTimeStart": begin, "checkTimeEnd": until, "pageIndex": page, "pageSize": size}
        elif kind is Kind.REVIEWS:
            business = {"beginTime": begin, "endTime": until, "page": page, "pageSize": size}
        else:
            business = {"startModified": begin, "endModified": until, "page": page, "pageSize": size}
        response = self.call(method, business)
        records, total, ok = _unwrap(kind, response[response_key(method)])
        if not ok:
            raise PlatformApiError(f"{method} answered success=false: {json.dumps(response, ensure_ascii=False)[:300]}")
        return Page(kind, method, response, records, str(page + 1) if page * size < total else None)

    def map_page(self, page: Page, context: MapContext) -> MappedPage:
        return map_page(page, context)


def _unwrap(kind: Kind, body: dict[str, Any]) -> tuple[list[Any], int, bool]:
    """(records, total, success) of each method's result wrapper."""
    if kind is Kind.ORDERS:
        result = body.get("searchorderinfo_result") or {}
        ok = bool((result.get("apiResult") or {}).get("success", True))
        return list(result.get("orderInfoList") or []), int(result.get("orderTotal") or 0), ok
    if kind is Kind.REFUNDS:
        result = body.get("queryResult") or {}
        return list(result.get("result") or []), int(result.get("totalCount") or 0), bool(result.get("success", True))
    if kind is Kind.REVIEWS:
        result = body.get("returnType") or {}
        return list(result.get("comments") or []), int(result.get("totalItem") or 0), bool(result.get("success", True))
    result = body.get("result") or {}
    return list(result.get("data") or []), int(result.get("total") or 0), bool(result.get("success", True))


# ---- mapping (pure) ----------------------------------------------------------------------------------------


def records_of(kind: Kind, method: str, response: dict[str, Any]) -> list[Any]:
    """The records of one answer (also what replay reads back from an archived page)."""
    return _unwrap(kind, response.get(response_key(method)) or {})[0]


def map_page(page: Page, context: MapContext) -> MappedPage:
    mapper, id_field = {
        Kind.MEMBERS: (map_member_card, "cardNo"),
        Kind.ORDERS: (map_order, "orderId"),
        Kind.REFUNDS: (map_refund, "id"),
        Kind.REVIEWS: (map_comment, "commentId"),
    }[page.kind]
    return map_records(page.records, lambda r: mapper(r, context), lambda r: r.get(id_field))


def map_member_card(card: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    card_no = str(require(card, "cardNo", (str, int)))
    buyer = buyer_token(card.get("open_id_buyer"))
    if buyer is None:
        raise MappingError("open_id_buyer", "open_id_buyer is required")
    member = ident("platform_buyer_id", buyer, ctx.platform)
    status = str(card.get("status"))
    if status == CARD_CANCELLED:
        # Leaving the membership does not make the earlier evidence false: no identity link is removed.
        at = parse_local(card.get("modified"), "modified")
        return [
            event_dict(
                event_type="custom",
                event_id=f"jd-unbind-{card_no}-{at:%Y%m%d%H%M%S}",
                source=ctx.platform,
                binding=ctx.binding(),
                occurred_at=at,
                identifiers=present(member),
                properties={"name": UNBOUND, "platform": ctx.platform, "shop_id": ctx.shop_id},
            )
        ]
    if status != CARD_OPEN:
        raise MappingError("status", "status must be 1 (card opened) or 2 (cancelled)")
    opened = parse_local(card.get("openTime"), "openTime")
    return [
        event_dict(
            event_type="identify",
            event_id=f"jd-bind-{card_no}-{opened:%Y%m%d%H%M%S}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=opened,
            identifiers=present(member, ident("phone", plain_phone(card.get("phone"))), ident("member_card", card_no)),
            context={"shop_id": ctx.shop_id, "channel": str(card.get("channelCode") or "")},
        )
    ]


def map_order(order: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    order_id = str(require(order, "orderId", (str, int)))
    state = str(order.get("orderState") or "")
    if state not in PAID_STATES:
        raise Skipped(f"order state {state or 'missing'}")
    buyer = buyer_token(order.get("open_id_buyer"))
    if buyer is None:
        raise MappingError("open_id_buyer", "open_id_buyer is required")
    items = order.get("itemInfoList")
    if not isinstance(items, list) or not items:
        raise MappingError("itemInfoList", "the order has no items")
    lines = [_line(item, f"itemInfoList.{i}") for i, item in enumerate(items)]
    shipping = minor(order.get("freightPrice") or 0, "freightPrice")
    total = minor(require(order, "orderPayment", (str, int, float)), "orderPayment") - shipping
    if total < 0:
        raise MappingError("orderPayment", "orderPayment is less than the freight")
    paid_at = order.get("paymentConfirmTime") or order.get("orderStartTime")
    return [
        event_dict(
            event_type="order_placed",
            event_id=f"jd-order-{order_id}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(paid_at, "paymentConfirmTime"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "order_id": order_id,
                "lines": lines,
                "total_minor": total,
                "shipping_minor": shipping,
                "currency": CURRENCY,
                "fulfilment": "online",
                "shop_id": ctx.shop_id,
            },
        )
    ]


def _line(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MappingError(path, "each item must be an object")
    sku = item.get("outerSkuId") or item.get("skuId")
    if not sku:
        raise MappingError(f"{path}.skuId", "skuId is required")
    try:
        quantity = int(str(item.get("itemTotal")))
    except ValueError as exc:
        raise MappingError(f"{path}.itemTotal", "itemTotal must be a whole number") from exc
    return {
        "sku": str(sku),
        "name": text(item.get("skuName"), 256),
        "quantity": quantity,
        "unit_price_minor": minor(item.get("jdPrice"), f"{path}.jdPrice"),
    }


def map_refund(refund: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    refund_id = require(refund, "id", (str, int))
    status = refund.get("status")
    if status not in REFUNDED:
        raise Skipped(f"refund status {status}")
    order_id = str(require(refund, "orderId", (str, int)))
    buyer = ctx.buyer_of(order_id)  # buyerId is an encrypted pin: not an identifier we can link
    if buyer is None:
        raise MappingError("orderId", f"the refund's buyer is unknown: order {order_id} was never pulled")
    amount = require(refund, "applyRefundSum", int)
    if amount < 0:
        raise MappingError("applyRefundSum", "applyRefundSum must not be negative")
    return [
        event_dict(
            event_type="order_returned",
            event_id=f"jd-refund-{refund_id}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(refund.get("checkTime") or refund.get("applyTime"), "checkTime"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "order_id": order_id,
                "refund_minor": amount,  # JOS gives fen
                "currency": CURRENCY,
                "reason": text(refund.get("reason"), 500),
                "shop_id": ctx.shop_id,
            },
        )
    ]


def map_comment(comment: dict[str, Any], ctx: MapContext) -> list[dict[str, Any]]:
    comment_id = require(comment, "commentId", (str, int))
    order_id = str(require(comment, "orderId", (str, int)))
    score = comment.get("score")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise MappingError("score", "score must be a whole number from 1 to 5")
    buyer = ctx.buyer_of(order_id)  # a comment names its author by a masked nick only
    if buyer is None:
        raise MappingError("orderId", f"the reviewer is unknown: order {order_id} was never pulled")
    return [
        event_dict(
            event_type="review_posted",
            event_id=f"jd-review-{comment_id}",
            source=ctx.platform,
            binding=ctx.binding(),
            occurred_at=parse_local(comment.get("creationTime"), "creationTime"),
            identifiers=present(ident("platform_buyer_id", buyer, ctx.platform)),
            properties={
                "sku": str(require(comment, "skuid", (str, int))),
                "rating": score,
                "order_id": order_id,
                "text": text(comment.get("content"), 5000),
                "shop_id": ctx.shop_id,
            },
        )
    ]
