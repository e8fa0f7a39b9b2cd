"""Every call the Segment spec accepts is accepted (issue 12, point 5): typed where the canonical type fits,
otherwise kept as a `custom` event named after the call and counted in `kept_as_custom`, never refused. Only calls
that are not valid Segment are rejected, with the field named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.segment import SegmentConnector
from cdp.ingest.events import parse_event

NOW = datetime(2026, 3, 2, 9, 5, 10, tzinfo=UTC)
BINDING = Binding(brand_id="demo-brand", label="test", channel="segment")


def _map(call: str, payload: Any) -> Mapped:
    body = json.dumps(payload).encode()
    return SegmentConnector(call).map(InboundRequest("segment", "POST", body, NOW, "req-1"), BINDING)


def _only_event(call: str, payload: Any) -> tuple[Any, Mapped]:
    mapped = _map(call, payload)
    assert mapped.rejected == [], mapped.rejected
    [item] = mapped.items
    return parse_event(item), mapped  # the canonical schema accepts what the mapping produced


def _track(event: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "messageId": "m-1", "userId": "u-1", "properties": properties, **extra}


LINE = {"sku": "CAKE-1", "price": 10, "quantity": 1}


@pytest.mark.parametrize(
    ("event", "properties"),
    [
        ("Order Completed", {"order_id": "o-1", "total": 10, "currency": "CNY"}),  # no products
        ("Order Completed", {"total": 10, "products": [LINE]}),  # no order_id
        ("Order Completed", {"order_id": "o-1", "products": [LINE]}),  # no total nor revenue
        ("Order Completed", {"order_id": "o-1", "total": 10, "products": [{"name": "cake", "price": 10}]}),
        ("Order Completed", {"order_id": "o-1", "total": 10, "products": [{"sku": "CAKE-1"}]}),  # no price
        ("Order Completed", {"order_id": "o-1", "total": 10, "products": ["CAKE-1"]}),
        ("Order Completed", {"order_id": "o-1", "total": 10, "products": [{**LINE, "quantity": -1}]}),
        ("Order Completed", {"order_id": "o-1", "total": 10, "products": [{**LINE, "quantity": 0}]}),
        ("Order Completed", {"order_id": "o-1", "total": 12, "products": [LINE]}),  # total with shipping
        ("Order Completed", {"order_id": "o 1", "total": 10, "products": [LINE]}),  # not a token
        ("Order Completed", {"order_id": "o-1", "total": -3, "products": [LINE]}),
        ("Order Completed", {"order_id": "o-1", "total": 10, "currency": "yuan", "products": [LINE]}),
        ("Product Added", {"price": 10}),  # no sku
        ("Product Added", {"sku": "CAKE-1"}),  # no price
        ("Product Added", {"sku": "CAKE-1", "price": "ten"}),
        ("Product Added", {"sku": "CAKE-1", "price": 10, "quantity": 1.5}),
        ("Order Refunded", {"order_id": "o-1"}),  # no amount
        ("Order Refunded", {"total": 10}),  # no order_id
        ("Product Reviewed", {"product_id": "CAKE-1", "review_body": "good"}),  # no rating
        ("Product Reviewed", {"product_id": "CAKE-1", "rating": 9}),  # outside 1..5
        ("Product Reviewed", {"rating": 5}),  # no product
    ],
)
def test_an_ecommerce_call_the_typed_mapping_cannot_fill_is_kept_as_custom(
    event: str, properties: dict[str, Any]
) -> None:
    # Given a track call the Segment spec allows (every e-commerce property is optional)
    # When it is mapped
    canonical, mapped = _only_event("track", _track(event, properties))
    # Then it is a custom event with the call's name and its scalar properties, counted, not refused
    assert canonical.event_type == "custom" and canonical.properties.name == event
    assert mapped.kept_as_custom == 1
    scalars = {k: v for k, v in properties.items() if isinstance(v, str | int | float)}
    assert canonical.properties.model_extra == scalars


def test_a_typed_call_that_fits_is_typed_and_not_counted() -> None:
    order = {"order_id": "o-1", "total": 10.004, "products": [LINE]}  # a third decimal rounds half up
    canonical, mapped = _only_event("track", _track("Order Completed", order))
    assert canonical.event_type == "order_placed" and canonical.properties.total_minor == 1000
    assert mapped.kept_as_custom == 0


def test_a_plain_custom_track_is_custom_by_design_and_not_counted() -> None:
    canonical, mapped = _only_event("track", _track("Coupon Viewed", {"coupon": "SPRING", "nested": {"a": 1}}))
    assert canonical.event_type == "custom" and canonical.properties.model_extra == {"coupon": "SPRING"}
    assert mapped.kept_as_custom == 0


@pytest.mark.parametrize(
    ("call", "payload", "event_type"),
    [
        ("identify", {"userId": "u-1"}, "identify"),  # no traits at all
        ("identify", {"anonymousId": "anon-1", "traits": {}}, "identify"),
        ("identify", {"userId": 42}, "identify"),  # numbers are valid ids (the Python SDK sends them)
        ("identify", {"userId": 4.5e10}, "identify"),
        ("identify", {"userId": "user 42 / shop"}, "identify"),  # any string is a valid userId
        ("identify", {"userId": "u" * 300}, "identify"),
        ("identify", {"userId": "u-1", "traits": {"email": "not an address"}}, "identify"),
        ("identify", {"userId": "u-1", "traits": {"phone": "call me"}}, "identify"),
        ("identify", {"userId": "u-1", "traits": {"birthday": "spring 1990", "gender": "n/a"}}, "identify"),
        ("identify", {"userId": "u-1", "traits": {"name": "n" * 500, "city": "c" * 500}}, "identify"),
        ("identify", {"userId": "u-1", "traits": "not an object"}, "identify"),
        ("page", {"userId": "u-1"}, "custom"),  # every page property is optional
        ("page", {"userId": "u-1", "name": "Home"}, "custom"),
        ("page", {"userId": "u-1", "properties": {"url": "https://x.example/" + "p" * 3000}}, "custom"),
        ("screen", {"anonymousId": "anon-1"}, "custom"),  # the screen name is optional
        ("screen", {"anonymousId": "anon-1", "name": "Home"}, "page_view"),
        ("alias", {"userId": "u-1", "previousId": "anon-1"}, "identify"),
        ("group", {"userId": "u-1", "groupId": 7, "traits": {"plan": "gold", "deep": {"x": 1}}}, "custom"),
        ("track", {"anonymousId": "anon-1", "event": "x" * 400}, "custom"),  # long event names
        ("track", {"userId": "u-1", "event": "Viewed", "messageId": "has spaces and ✓"}, "custom"),
        ("track", {"userId": "u-1", "event": "Viewed", "properties": {"v": float("nan"), "big": 10**40}}, "custom"),
    ],
)
def test_calls_the_spec_allows_are_accepted(call: str, payload: dict[str, Any], event_type: str) -> None:
    # Given a call valid under the Segment spec (messageId optional: the libraries add it, the HTTP API does not)
    # When it is mapped
    canonical, _ = _only_event(call, {"type": call, **payload})
    # Then it becomes a canonical event
    assert canonical.event_type == event_type


def test_a_page_without_url_is_kept_with_segments_own_name() -> None:
    named, mapped = _only_event("page", {"messageId": "m", "userId": "u-1", "name": "Home", "properties": {"k": "v"}})
    unnamed, _ = _only_event("page", {"messageId": "m", "userId": "u-1"})
    screen, _ = _only_event("screen", {"messageId": "m", "userId": "u-1"})
    assert named.properties.name == "Viewed Home Page" and named.properties.model_extra == {"k": "v"}
    assert unnamed.properties.name == "Loaded a Page" and screen.properties.name == "Loaded a Screen"
    assert mapped.kept_as_custom == 1


def test_bad_traits_are_dropped_and_the_rest_kept() -> None:
    traits = {"email": "nope", "phone": "+86 139 1111 2222", "birthday": "spring", "name": "Li Na", "city": "Shanghai"}
    canonical, mapped = _only_event("identify", {"messageId": "m", "userId": "u-1", "traits": traits})
    assert {i.key for i in canonical.identifiers} == {"user_id:u-1", "phone:+8613911112222"}
    assert (canonical.properties.name, canonical.properties.city, canonical.properties.birthday) == (
        "Li Na",
        "Shanghai",
        None,
    )
    assert mapped.kept_as_custom == 0


def test_ids_outside_the_token_alphabet_stay_linkable() -> None:
    first, _ = _only_event("identify", {"messageId": "m-1", "userId": "user 42"})
    again, _ = _only_event("track", {"messageId": "m-2", "userId": "user 42", "event": "Viewed"})
    other, _ = _only_event("track", {"messageId": "m-3", "userId": "user 43", "event": "Viewed"})
    assert first.identifiers == again.identifiers != other.identifiers


def test_a_call_without_message_id_gets_a_stable_id() -> None:
    # Given a batch of two identical calls without a messageId, sent twice
    call = {"type": "track", "event": "A", "userId": "u"}
    payload = {"batch": [call, dict(call)]}
    first, second = _map("batch", payload), _map("batch", payload)
    # Then a resend dedupes (same ids) while two calls of one batch stay two events
    ids = [i["event_id"] for i in first.items]
    assert ids == [i["event_id"] for i in second.items] and len(set(ids)) == 2


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "track", "event": "Viewed", "messageId": "m"}, "batch.0.userId"),  # neither id
        ({"type": "track", "event": "Viewed", "userId": {"id": 1}}, "batch.0.userId"),
        ({"type": "track", "event": "Viewed", "anonymousId": ["a"]}, "batch.0.anonymousId"),
        ({"type": "track", "userId": "u"}, "batch.0.event"),  # track needs its event name
        ({"type": "track", "event": {"name": "x"}, "userId": "u"}, "batch.0.event"),
        ({"type": "alias", "userId": "u"}, "batch.0.previousId"),
        ({"type": "group", "userId": "u"}, "batch.0.groupId"),
        ({"type": "explode", "userId": "u"}, "batch.0.type"),
        ("not an object", "batch.0"),
    ],
)
def test_calls_that_are_not_valid_segment_are_rejected_naming_the_field(message: Any, field: str) -> None:
    mapped = _map("batch", {"batch": [message]})
    assert mapped.items == [] and [r.errors[0].field for r in mapped.rejected] == [field]
