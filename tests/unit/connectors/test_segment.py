"""The Segment HTTP Tracking API mapping: every call type, e-commerce spec events, identifiers, timestamps, auth."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest
from cdp.connectors.segment import SegmentConnector
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "segment"
NOW = datetime(2026, 3, 2, 9, 5, 10, tzinfo=UTC)
BINDING = Binding(brand_id="demo-brand", label="test", channel="segment")
SOURCES = parse_sources({"write_keys": {"wk-1": {"brand_id": "demo-brand"}}})


def _request(call: str, payload: Any, headers: dict[str, str] | None = None) -> InboundRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InboundRequest("segment", "POST", body, NOW, "req-1", headers=headers or {})


def _map(call: str, payload: Any) -> list[Any]:
    mapped = SegmentConnector(call).map(_request(call, payload), BINDING)
    assert mapped.rejected == []
    return [parse_event(item) for item in mapped.items]


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def test_identify_maps_traits_and_every_identifier() -> None:
    [event] = _map("identify", _sample("identify"))
    assert event.event_type == "identify" and event.source.value == "web"
    keys = {i.key for i in event.identifiers}
    assert keys == {
        "user_id:u-100234",
        "device_id:507f191e810c19729de860ea",
        "email:li.na@example.cn",
        "phone:+8613911112222",
    }
    props = event.properties
    assert (props.name, props.gender, props.city, props.country) == ("Na Li", "female", "Shanghai", "CN")
    assert str(props.birthday) == "1988-03-14" and props.member_level == "gold"
    assert event.context["utm_campaign"] == "spring-launch" and event.context["ip"] == "203.0.113.7"
    assert event.event_id.startswith("ajs-next-")


def test_order_completed_becomes_an_order_in_minor_units() -> None:
    [event] = _map("track", _sample("track_order_completed"))
    assert event.event_type == "order_placed"
    props = event.properties
    assert props.total_minor == 29800 and props.currency == "CNY" and props.coupon_id == "SPRING20"
    assert [(line.sku, line.quantity, line.unit_price_minor) for line in props.lines] == [
        ("CAKE-STRAW-8", 1, 23800),
        ("CANDLE-NUM", 2, 3000),
    ]


def test_a_mobile_batch_shares_its_context_and_corrects_the_device_clock() -> None:
    events = _map("batch", _sample("batch"))
    assert [e.event_type for e in events] == ["page_view", "add_to_cart", "identify", "custom"]
    assert {e.source.value for e in events} == {"app"}
    screen, cart, alias, custom = events
    assert screen.properties.url == "screen://Store Finder"
    assert "device_id:c7a1f9b2-4b0e-4e0e-9c1a-3d5e6f708192" in {i.key for i in cart.identifiers}
    assert cart.properties.unit_price_minor == 16800
    # alias links the anonymous device to the user id
    assert {i.key for i in alias.identifiers} >= {"user_id:u-100877", "device_id:c7a1f9b2-4b0e-4e0e-9c1a-3d5e6f708192"}
    assert custom.properties.name == "Store Check-in" and custom.properties.model_extra == {
        "store_id": "sh01",
        "method": "qr",
    }
    # receivedAt - (sentAt - originalTimestamp): sent 09:05:03, received 09:05:10 -> the device clock is 7 s slow
    assert screen.occurred_at == datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)


def test_rudderstack_payloads_map_the_same_way() -> None:
    [event] = _map("track", _sample("rudderstack_track"))
    assert event.event_type == "order_returned" and event.source.value == "web"
    assert event.properties.refund_minor == 3000 and event.properties.skus == ["CANDLE-NUM"]


def test_one_bad_call_in_a_batch_is_rejected_alone_with_its_field() -> None:
    # Given a batch with valid calls (one an order the typed mapping cannot fill, one a page without url) and two
    # calls that are not valid Segment
    payload = {
        "batch": [
            {"type": "track", "event": "Viewed", "messageId": "m-1", "userId": "u-1"},
            {
                "type": "track",
                "event": "Order Completed",
                "messageId": "m-2",
                "userId": "u-1",
                "properties": {"order_id": "o-1", "total": -3, "products": [{"sku": "s", "price": 1}]},
            },
            {"type": "page", "messageId": "m-3", "userId": "u-1"},
            {"type": "track", "event": "Viewed", "messageId": "m-4"},
            {"type": "explode", "messageId": "m-5", "userId": "u-1"},
        ]
    }
    # When it is mapped
    mapped = SegmentConnector("batch").map(_request("batch", payload), BINDING)
    # Then the valid calls are kept (two of them as custom events, counted) and only the invalid ones are rejected
    assert mapped.origins == [0, 1, 2] and mapped.kept_as_custom == 2
    fields = {r.index: r.errors[0].field for r in mapped.rejected}
    assert fields == {3: "batch.3.userId", 4: "batch.4.type"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"batch": []}).encode(), "non-empty"),
    ],
)
def test_malformed_bodies_are_invalid_input(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SegmentConnector("batch").map(_request("batch", body), BINDING)


def test_a_single_call_over_32_kb_is_refused() -> None:
    payload = {"type": "track", "event": "Big", "messageId": "m", "userId": "u", "properties": {"x": "a" * 33_000}}
    with pytest.raises(InvalidInputError, match="32768"):
        SegmentConnector("track").map(_request("track", payload), BINDING)


def _basic(key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_the_write_key_authenticates_by_basic_auth_or_body() -> None:
    connector = SegmentConnector("track")
    assert connector.authenticate(_request("track", {}, _basic("wk-1")), SOURCES).brand_id == "demo-brand"
    assert connector.authenticate(_request("track", {"writeKey": "wk-1"}), SOURCES).brand_id == "demo-brand"
    with pytest.raises(AuthenticationError, match="unknown write key"):
        connector.authenticate(_request("track", {}, _basic("wk-2")), SOURCES)
    with pytest.raises(AuthenticationError, match="missing write key"):
        connector.authenticate(_request("track", {}), SOURCES)
