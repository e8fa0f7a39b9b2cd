"""A cloud POS (`POST /v1/webhooks/pos/{vendor}`): sales, refunds and counter sign-ups, signed with our scheme
(x-cdp-signature: t=<unix>,v1=<hmac>, 300 s replay window). One record per request, or {"records": [...]}.

A record (amounts are integers in fen, the minor unit of `currency`, default CNY):

    {"type": "sale" | "refund" | "member", "receipt_no", "store_code", "cashier", "occurred_at" (ISO-8601 with offset),
     "member": {"card_no", "phone", "name", "gender", "birthday", "level"},
     "items": [{"sku", "name", "category", "qty", "unit_price", "discount"}],
     "paid": {"total", "tenders": [{"method", "amount"}]}        (sale: what the customer paid, after discounts)
     "refund_of": "<the sale's receipt_no>", "refunded": {"total", "tenders"}, "reason"   (refund)
     "coupon_code"}

sale -> order_placed (offline, store_id = store_code), refund -> order_returned, member -> identify. Identifiers: the
member card and the phone; a walk-in sale with no member names nobody and is skipped. Event ids are
"{vendor}:{type}:{store}:{receipt_no}" (member: "{vendor}:member:{card_no}:{occurred_at}"), so a re-sent record is a
duplicate.
"""

from __future__ import annotations

from typing import Any

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    event_dict,
    ident,
    map_items,
    obj,
    present,
    require,
)
from cdp.connectors.sources import SignedSource, SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.security import verify_cdp
from cdp.shared.safe_json import loads as safe_loads

MAX_RECORDS = 500
TYPES = ("sale", "refund", "member")
_GENDERS = {"f": "female", "female": "female", "m": "male", "male": "male"}


def signed_source(sources: dict[str, SignedSource], request: InboundRequest, what: str) -> SignedSource:
    """The source configured under the route's key, with the request's x-cdp-signature checked against it."""
    source = sources.get(request.key or "")
    if source is None:
        raise AuthenticationError(f"unknown {what}")
    verify_cdp(request.headers, request.body, source.secret.get_secret_value(), request.signed_window_at)
    return source


def records(body: bytes) -> tuple[list[Any], bool]:
    """One JSON record, or the list under {"records": [...]}; and whether it was the batch form."""
    payload = safe_loads(body)
    if not isinstance(payload, dict):
        raise InvalidInputError('body must be a record object or {"records": [...]}', "body")
    if "records" not in payload:
        return [payload], False
    items = payload["records"]
    if not isinstance(items, list) or not items:
        raise InvalidInputError("records must be a non-empty list", "records")
    if len(items) > MAX_RECORDS:
        raise InvalidInputError(f"records holds {len(items)} records; the limit is {MAX_RECORDS}", "records")
    return items, True


def integer(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError(name, f"{name} must be an integer (fen)" if value is not None else f"{name} is required")
    return value


class PosConnector(Connector):
    name = "pos"
    max_body_bytes = 1024 * 1024

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        source = signed_source(secrets.pos, request, "POS vendor")
        return Binding(brand_id=source.brand_id, label=f"pos:{request.key}", store_id=source.store_id, channel="pos")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        items, batch = records(request.body)
        vendor = request.key or "pos"

        def one(record: Any) -> list[dict[str, Any]]:
            if not isinstance(record, dict):
                raise MappingError("", "each record must be a JSON object")
            return _record(record, vendor, binding)

        return map_items(items, one, prefix="records" if batch else "", id_field="receipt_no", batch=batch)


def _record(record: dict[str, Any], vendor: str, binding: Binding) -> list[dict[str, Any]]:
    kind = require(record, "type")
    if kind not in TYPES:
        raise MappingError("type", f"unknown record type {kind!r}; expected one of {', '.join(TYPES)}")
    store = record.get("store_code") or binding.store_id
    if binding.store_id and store != binding.store_id:  # a till bound to one store cannot speak for another
        raise MappingError("store_code", f"this POS is bound to store {binding.store_id}")
    member = obj(record, "member")
    identifiers = present(ident("member_card", member.get("card_no")), ident("phone", member.get("phone")))
    if kind == "member":
        if not member.get("card_no"):
            raise MappingError("member.card_no", "a member record needs member.card_no")
        return [_member(record, member, identifiers, vendor, store, binding)]
    if not identifiers:
        return []  # a walk-in customer: nobody to attribute the receipt to
    receipt = str(require(record, "receipt_no", (str, int)))
    currency = str(record.get("currency") or "CNY").upper()
    lines = _lines(record, required=kind == "sale")
    lines_total = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
    if kind == "sale":
        paid = obj(record, "paid")
        methods = sorted({str(t["method"]) for t in _tenders(paid) if t.get("method")})
        properties = {
            "order_id": receipt,
            "lines": lines,
            "total_minor": _amount(paid, "total", "paid") if paid else lines_total,
            "currency": currency,
            "fulfilment": "offline",
            "coupon_id": record.get("coupon_code"),
            "coupon_code": record.get("coupon_code"),  # an issued code is redeemed with the order (cdp.offers)
            "payment_methods": methods or None,
        }
    else:
        refunded = obj(record, "refunded")
        properties = {
            "order_id": str(require(record, "refund_of", (str, int))),
            "refund_receipt_no": receipt,
            "refund_minor": _amount(refunded, "total", "refunded") if refunded else lines_total,
            "currency": currency,
            "skus": [line["sku"] for line in lines],
            "reason": record.get("reason"),
        }
    return [
        event_dict(
            event_type="order_placed" if kind == "sale" else "order_returned",
            event_id=f"{vendor}:{kind}:{store or '-'}:{receipt}",
            source="pos",
            binding=binding,
            occurred_at=require(record, "occurred_at"),
            identifiers=identifiers,
            properties=_clean(properties),
            store_id=store,
            context=_context(record, "cashier", "pos_id"),
        )
    ]


def _member(
    record: dict[str, Any],
    member: dict[str, Any],
    identifiers: list[dict[str, Any]],
    vendor: str,
    store: str | None,
    binding: Binding,
) -> dict[str, Any]:
    occurred_at = require(record, "occurred_at")
    gender = member.get("gender")
    properties = {
        "name": member.get("name"),
        "gender": _GENDERS.get(str(gender).strip().lower(), "other") if gender else None,
        "birthday": member.get("birthday"),
        "city": member.get("city"),
        "member_level": member.get("level"),
    }
    return event_dict(
        event_type="identify",
        event_id=f"{vendor}:member:{member['card_no']}:{occurred_at}",
        source="pos",
        binding=binding,
        occurred_at=occurred_at,
        identifiers=identifiers,
        properties=_clean(properties),
        store_id=store,
        context=_context(record, "cashier"),
    )


def _lines(record: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    items = record.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or not items:
        raise MappingError("items", "a sale needs a non-empty items list")
    lines = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise MappingError(f"items.{i}", "each item must be an object")
        try:
            line = {
                "sku": str(require(item, "sku", (str, int))),
                "name": item.get("name"),
                "category": item.get("category"),
                "quantity": integer(item, "qty"),
                "unit_price_minor": integer(item, "unit_price"),
            }
        except MappingError as exc:
            raise MappingError(f"items.{i}.{exc.field}", exc.message) from exc
        lines.append(_clean(line))
    return lines


def _amount(data: dict[str, Any], name: str, path: str) -> int:
    try:
        return integer(data, name)
    except MappingError as exc:
        raise MappingError(f"{path}.{exc.field}", exc.message) from exc


def _tenders(paid: dict[str, Any]) -> list[dict[str, Any]]:
    tenders = paid.get("tenders")
    return [t for t in tenders if isinstance(t, dict)] if isinstance(tenders, list) else []


def _context(record: dict[str, Any], *names: str) -> dict[str, str]:
    return {name: str(record[name])[:128] for name in names if record.get(name) is not None}


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}
