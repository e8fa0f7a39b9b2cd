"""Pure mapping of the recorded TOP and JOS answers (events/tmall, events/jd) to canonical events: bindings, orders,
refunds and reviews; masked values never become identifiers; bad records are rejected with their field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from cdp.connectors.platforms import jd, tmall
from cdp.connectors.platforms.common import plain_phone
from cdp.connectors.platforms.ports import Kind, MapContext, MappedPage, Page
from cdp.connectors.sources import PlatformShop
from cdp.ingest.events import CustomEvent, IdentifyEvent, OrderPlacedEvent, parse_event

EVENTS = Path(__file__).resolve().parents[3] / "events"
TMALL_BUYER = "AAF2xnOfAHYSGdyr1hq7iN6A"
TMALL_TID = "3456789012345678901"
JD_BUYER = "jdOpenBuyer7Fq2LxAe9Wm"
JD_ORDER = "283746519201"


def shop(platform: str) -> PlatformShop:
    return PlatformShop(brand_id="demo-brand", platform=platform, app_key="k", app_secret=SecretStr("s"))  # type: ignore[arg-type]


def recorded(platform_dir: str, method: str, kind: Kind) -> Page:
    response = json.loads((EVENTS / platform_dir / f"{method}.json").read_text(encoding="utf-8"))
    body = next(iter(response.values()))
    records: list[Any]
    if platform_dir == "tmall":
        wrapper = {"members": "messages", "orders": "trades", "refunds": "refunds", "reviews": "trade_rates"}[kind]
        records = next(iter(body[wrapper].values()))
    else:
        records, _, _ = jd._unwrap(kind, body)
    return Page(kind, method, response, records, None)


def tmall_page(kind: Kind, platform: str = "tmall", buyers: dict[str, str] | None = None) -> MappedPage:
    page = recorded("tmall", tmall.METHODS[kind], kind)
    return tmall.map_page(page, MapContext("shop-1", shop(platform), (buyers or {}).get))


def jd_page(kind: Kind, buyers: dict[str, str] | None = None) -> MappedPage:
    page = recorded("jd", jd.METHODS[kind], kind)
    return jd.map_page(page, MapContext("jd-shop", shop("jd"), (buyers or {}).get))


def ids(event: dict[str, Any]) -> dict[str, str]:
    return {i["type"]: i["value"] for i in event["identifiers"]}


# ---- Tmall / Taobao ---------------------------------------------------------------------------------------------


def test_a_binding_links_the_shop_member_to_the_brand_members_phone() -> None:
    # Given the recorded 会员通 messages / When mapped
    mapped = tmall_page(Kind.MEMBERS)
    bind = mapped.items[0]
    # Then the bind is an identify holding the buyer id (scoped tmall) and the phone, with a stable event id
    event = parse_event(bind)
    assert isinstance(event, IdentifyEvent)
    assert bind["event_id"] == "tmall-bind-6912345678901234501" and bind["source"] == "tmall"
    assert {i.key for i in event.identifiers} == {f"platform_buyer_id:tmall:{TMALL_BUYER}", "phone:+8613700001111"}
    assert bind["context"]["shop_id"] == "shop-1"


def test_a_binding_with_only_a_masked_phone_is_rejected_with_the_field() -> None:
    mapped = tmall_page(Kind.MEMBERS)
    [rejected] = mapped.rejected
    assert (rejected.index, rejected.event_id) == (1, "6912345678901234502")
    assert rejected.errors[0].field == "content.mobile"
    assert all("137****2222" not in json.dumps(item) for item in mapped.items)


def test_an_unbinding_is_a_custom_event_and_links_nothing_new() -> None:
    unbind = tmall_page(Kind.MEMBERS).items[1]
    event = parse_event(unbind)
    assert isinstance(event, CustomEvent)
    assert event.properties.name == "platform_member_unbound"
    assert [i.type.value for i in event.identifiers] == ["platform_buyer_id"]  # one identifier: no new link


def test_a_message_of_another_topic_is_skipped_not_rejected() -> None:
    page = recorded("tmall", tmall.METHODS[Kind.MEMBERS], Kind.MEMBERS)
    other = [{**page.records[0], "topic": "taobao_trade_TradeChanged"}]
    mapped = tmall.map_page(Page(Kind.MEMBERS, page.method, {}, other, None), MapContext("s", shop("tmall"), {}.get))
    assert mapped.skipped == {"topic taobao_trade_TradeChanged": 1} and not mapped.rejected


def test_a_paid_order_becomes_order_placed_in_fen_with_the_buyer_id_only() -> None:
    # Given the recorded trades / When mapped
    mapped = tmall_page(Kind.ORDERS)
    [order] = mapped.items
    # Then the paid trade is an online order in CNY fen, lines from the sub-orders, post fee apart
    event = parse_event(order)
    assert isinstance(event, OrderPlacedEvent)
    assert order["event_id"] == f"tmall-order-{TMALL_TID}"
    props = order["properties"]
    assert props["lines"] == [
        {"sku": "DB-CAKE-01-6IN", "name": "草莓奶油蛋糕 6寸", "quantity": 2, "unit_price_minor": 23900}
    ]
    assert (props["total_minor"], props["currency"], props["fulfilment"]) == (45800, "CNY", "online")
    # and the masked receiver phone is no identifier: only the buyer id links the order
    assert ids(order) == {"platform_buyer_id": TMALL_BUYER}
    assert "137****1111" not in json.dumps(order)
    assert mapped.buyers == {TMALL_TID: TMALL_BUYER}


def test_unpaid_orders_are_skipped_by_reason_and_a_negative_price_is_rejected() -> None:
    mapped = tmall_page(Kind.ORDERS)
    assert mapped.skipped == {"order status WAIT_BUYER_PAY": 1}
    [rejected] = mapped.rejected
    assert (rejected.index, rejected.event_id, rejected.errors[0].field) == (2, "3456789012345678903", "orders.0.price")


def test_a_taobao_shop_uses_its_own_source_and_scope() -> None:
    [order] = tmall_page(Kind.ORDERS, platform="taobao").items
    assert order["source"] == "taobao" and order["event_id"].startswith("taobao-order-")
    assert order["identifiers"][0]["scope"] == "taobao"


def test_a_successful_refund_becomes_order_returned() -> None:
    mapped = tmall_page(Kind.REFUNDS)
    [refund] = mapped.items
    parse_event(refund)
    assert refund["event_id"] == "tmall-refund-178234560001234567"
    assert refund["properties"] | {"reason": None} == {
        "order_id": TMALL_TID,
        "refund_minor": 22900,
        "currency": "CNY",
        "skus": ["DB-CAKE-01-6IN"],
        "reason": None,
        "shop_id": "shop-1",
    }
    assert mapped.skipped == {"refund status WAIT_SELLER_AGREE": 1}


def test_a_review_takes_its_buyer_from_the_order_and_rates_good_as_five() -> None:
    # Given the order's buyer is known (the review itself names a masked nick only)
    mapped = tmall_page(Kind.REVIEWS, buyers={TMALL_TID: TMALL_BUYER})
    [review] = mapped.items
    parse_event(review)
    assert review["event_id"] == f"tmall-review-{TMALL_TID}-{TMALL_TID}"
    assert (review["properties"]["rating"], review["properties"]["sku"]) == (5, "612345678901")
    assert ids(review) == {"platform_buyer_id": TMALL_BUYER}
    # and a review of an order never pulled is rejected, naming the order
    [unknown] = mapped.rejected
    assert unknown.errors[0].field == "tid" and "never pulled" in unknown.errors[0].message


@pytest.mark.parametrize(("result", "rating"), [("good", 5), ("neutral", 3), ("bad", 1)])
def test_review_results_map_to_ratings(result: str, rating: int) -> None:
    rate = {"tid": 1, "oid": 2, "role": "buyer", "result": result, "created": "2026-03-04 20:12:55", "num_iid": 9}
    [review] = tmall.map_review(rate, MapContext("s", shop("tmall"), {"1": "buyer-1"}.get))
    assert review["properties"]["rating"] == rating


# ---- JD --------------------------------------------------------------------------------------------------------


def test_a_jd_member_card_binds_buyer_phone_and_card() -> None:
    mapped = jd_page(Kind.MEMBERS)
    bind, cancel = mapped.items
    event = parse_event(bind)
    assert {i.key for i in event.identifiers} == {
        f"platform_buyer_id:jd:{JD_BUYER}",
        "phone:+8613900002222",
        "member_card:JDMC70001",
    }
    assert bind["event_id"] == "jd-bind-JDMC70001-20260301201105"
    assert cancel["properties"]["name"] == "platform_member_unbound" and "139****3333" not in json.dumps(cancel)


def test_jd_orders_paid_mapped_cancelled_skipped_and_an_inconsistent_total_fails_validation() -> None:
    mapped = jd_page(Kind.ORDERS)
    paid, inconsistent = mapped.items
    assert paid["event_id"] == f"jd-order-{JD_ORDER}" and ids(paid) == {"platform_buyer_id": JD_BUYER}
    assert paid["properties"]["lines"][0] | {"name": None} == {
        "sku": "DB-TART-12",
        "name": None,
        "quantity": 2,
        "unit_price_minor": 15900,
    }
    assert paid["properties"]["total_minor"] == 31800 and "139****2222" not in json.dumps(paid)
    parse_event(paid)
    assert mapped.skipped == {"order state TRADE_CANCELED": 1}
    # The third order says 999.00 paid for one 99.00 loaf: mapping keeps it, validation rejects it with the field
    with pytest.raises(ValidationError, match="total_minor"):
        parse_event(inconsistent)


def test_jd_refund_amount_is_already_in_fen_and_its_buyer_comes_from_the_order() -> None:
    mapped = jd_page(Kind.REFUNDS, buyers={JD_ORDER: JD_BUYER})
    [refund] = mapped.items
    parse_event(refund)
    assert refund["properties"]["refund_minor"] == 15900 and ids(refund) == {"platform_buyer_id": JD_BUYER}
    assert mapped.skipped == {"refund status 0": 1}


def test_jd_comment_keeps_its_score_and_an_out_of_range_score_is_rejected() -> None:
    mapped = jd_page(Kind.REVIEWS, buyers={JD_ORDER: JD_BUYER})
    [review] = mapped.items
    parse_event(review)
    assert (review["event_id"], review["properties"]["rating"]) == ("jd-review-13888880001", 5)
    assert [r.errors[0].field for r in mapped.rejected] == ["score"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13700001111", "13700001111"),
        ("+86 137-0000-1111", "+86 137-0000-1111"),
        ("137****1111", None),
        ("k9Rz0Q==", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_only_clear_phone_numbers_count(value: object, expected: str | None) -> None:
    assert plain_phone(value) == expected
