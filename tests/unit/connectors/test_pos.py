"""The cloud POS connector, pure: our signature scheme, and sales, refunds and counter sign-ups (amounts in fen)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.pos import PosConnector
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event
from cdp.ingest.security import sign_cdp
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "pos"
NOW = datetime(2026, 3, 12, 6, 5, 30, tzinfo=UTC)
VENDOR, SECRET = "demo-pos", "local-pos-secret"
SOURCES = parse_sources(LOCAL_SOURCES)
BINDING = Binding(brand_id="demo-brand", label=f"pos:{VENDOR}", channel="pos")


def sample(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return {**data, **changes}


def request(body: Any, secret: str = SECRET, at: datetime = NOW) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = sign_cdp(secret, raw, int(at.timestamp()))
    return InboundRequest(
        connector="pos",
        method="POST",
        body=raw,
        received_at=NOW,
        request_id="req-1",
        key=VENDOR,
        headers={"content-type": "application/json", "x-cdp-signature": signature},
    )


def mapped(body: Any, binding: Binding = BINDING) -> Mapped:
    return PosConnector().map(request(body), binding)


def only(body: Any) -> dict[str, Any]:
    result = mapped(body)
    assert not result.rejected and len(result.items) == 1, result.rejected
    parse_event(result.items[0])
    return result.items[0]


def test_a_signed_record_binds_the_vendors_brand() -> None:
    assert PosConnector().authenticate(request(sample("sale")), SOURCES).brand_id == "demo-brand"


@pytest.mark.parametrize(
    "req",
    [
        request(sample("sale"), secret="not-the-secret"),
        request(sample("sale"), at=datetime(2026, 3, 12, 5, 0, tzinfo=UTC)),  # an hour old: a replay
        replace(request(sample("sale")), headers={}),
        replace(request(sample("sale")), key="unknown-vendor"),
    ],
    ids=["wrong-secret", "stale", "unsigned", "unknown-vendor"],
)
def test_a_bad_signature_a_replay_or_an_unknown_vendor_is_refused(req: InboundRequest) -> None:
    with pytest.raises(AuthenticationError):
        PosConnector().authenticate(req, SOURCES)


def test_a_sale_becomes_an_offline_order_in_its_store() -> None:
    # Given the sale sample (cake + two baguettes, 10 yuan off, paid by WeChat Pay and stored value)
    order = only(sample("sale"))
    # Then it is an offline order of store sh01, known by the member card and phone, in fen as sent
    assert order["event_type"] == "order_placed" and order["source"] == "pos" and order["store_id"] == "sh01"
    assert order["event_id"] == "demo-pos:sale:sh01:SH01-20260312-000418"
    assert {(i["type"], i["value"]) for i in order["identifiers"]} == {
        ("member_card", "MC-88001234"),
        ("phone", "13911223344"),
    }
    props = order["properties"]
    assert props["fulfilment"] == "offline" and props["total_minor"] == 29400 and props["currency"] == "CNY"
    assert [(line["sku"], line["quantity"], line["unit_price_minor"]) for line in props["lines"]] == [
        ("CAKE-STRAW-8", 1, 26800),
        ("BREAD-BAGUETTE", 2, 1800),
    ]
    assert props["payment_methods"] == ["stored_value", "wechat_pay"] and props["coupon_id"] == "MEMBER-10OFF"
    assert order["context"] == {"cashier": "C0107", "pos_id": "POS-02"}


def test_a_refund_names_the_original_receipt() -> None:
    refund = only(sample("refund"))
    assert (
        refund["event_type"] == "order_returned" and refund["event_id"] == "demo-pos:refund:sh01:SH01-20260313-000052"
    )
    assert refund["properties"] == {
        "order_id": "SH01-20260312-000418",
        "refund_receipt_no": "SH01-20260313-000052",
        "refund_minor": 3600,
        "currency": "CNY",
        "skus": ["BREAD-BAGUETTE"],
        "reason": "stale",
    }


def test_a_counter_sign_up_is_an_identify_with_card_phone_and_traits() -> None:
    member = only(sample("member"))
    assert member["event_type"] == "identify" and member["store_id"] == "sh01"
    assert member["properties"] == {
        "name": "Zhang Wei",
        "gender": "female",
        "birthday": "1991-07-23",
        "city": "Shanghai",
        "member_level": "silver",
    }
    assert {i["type"] for i in member["identifiers"]} == {"member_card", "phone"}


def test_a_walk_in_sale_names_nobody_and_is_skipped() -> None:
    result = mapped(sample("sale", member={}))
    assert result.items == [] and result.rejected == []


def test_the_batch_form_maps_each_record_and_rejects_only_the_bad_one() -> None:
    # Given a batch of a sign-up, a sale with a fractional (yuan) price and a refund
    bad_sale = sample("sale")
    bad_sale["items"] = [{**bad_sale["items"][0], "unit_price": 268.0}]
    result = mapped({"records": [sample("member"), bad_sale, sample("refund")]})
    # Then two events are mapped and the sale is rejected, naming the field inside the batch
    assert [e["event_type"] for e in result.items] == ["identify", "order_returned"] and result.origins == [0, 2]
    assert result.rejected[0].index == 1 and result.rejected[0].errors[0].field == "records.1.items.0.unit_price"
    assert result.rejected[0].event_id == "SH01-20260312-000418"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (sample("sale", type="void"), "type"),
        (sample("sale", items=[]), "items"),
        (sample("sale", paid={"total": "294.00"}), "paid.total"),
        (sample("refund", refund_of=None), "refund_of"),
        (sample("member", member={"phone": "13911223344"}), "member.card_no"),
        (sample("sale", store_code="bj02"), "store_code"),
    ],
    ids=["unknown-type", "no-items", "yuan-total", "no-original", "no-card", "other-store"],
)
def test_a_record_that_cannot_be_mapped_is_rejected_naming_the_field(record: dict[str, Any], field: str) -> None:
    store_bound = Binding(brand_id="demo-brand", label="pos", store_id="sh01", channel="pos")
    result = mapped(record, store_bound)
    assert not result.items and result.rejected[0].errors[0].field == field


def test_malformed_bodies_are_a_400_naming_the_field() -> None:
    for body, field in ((b"not json", "body"), (b"[1, 2]", "body"), (b'{"records": []}', "records")):
        with pytest.raises(InvalidInputError) as error:
            mapped(body)
        assert error.value.location == field
