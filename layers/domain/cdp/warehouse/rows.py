"""Rows of the warehouse tables from a profile and its events: pure functions, no AWS, no DuckDB.

What leaves the platform: identifiers only as `(type, sha256)` pairs, the SHA-256 of the identifier key
(`phone:+8613800138000`, the form ingest normalizes to; the same hash the suppression list and erasure receipts
use); no name, no birthday (its year and month only), no family, no review or return text, no event context (IP
addresses, user agents), no order line names, no query strings of URLs (they carry e-mails and tokens).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cdp.channels.contact import in_global_control
from cdp.ingest.events import CanonicalEvent
from cdp.org import LoyaltyPolicy
from cdp.profile.models import Profile, TagValue, flat_scores
from cdp.warehouse.schema import EVENTS

LIFECYCLE_TAG = "lifecycle"
RFM_SEGMENT_TAG = "rfm_segment"
CONSENT_CHANNELS = ("sms", "email", "push", "wechat")

Row = dict[str, Any]


def identifier_hash(identifier_key: str) -> str:
    """SHA-256 of an identifier key: the same hash `cdp.privacy` and the suppression list keep."""
    return hashlib.sha256(identifier_key.encode()).hexdigest()


def hashed_identifiers(keys: list[str]) -> list[dict[str, str]]:
    return [{"type": key.split(":", 1)[0], "sha256": identifier_hash(key)} for key in sorted(keys)]


def timestamp(value: datetime | None) -> str | None:
    """An instant as ISO text in UTC, which the writer reads into a `TIMESTAMP` (UTC by convention). The reader
    ignores an offset rather than applying it, so anything not in UTC already is converted here."""
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat()


def _tag_text(tags: Mapping[str, TagValue], name: str) -> str | None:
    tag = tags.get(name)
    return None if tag is None else tag_value_text(tag.value)


def profile_row(profile: Profile, loyalty: LoyaltyPolicy, exported_at: datetime, *, control_share: float) -> Row:
    """`control_share`: the brand's `contact.global_control_share` now (who is in its global control group)."""
    f, t = profile.facts, profile.traits
    row: Row = {
        "person_id": profile.person_id,
        "created_at": timestamp(profile.created_at),
        "updated_at": timestamp(profile.updated_at),
        "merged_from": sorted(profile.merged_from),
        "identifiers": hashed_identifiers(profile.identifiers),
        "gender": t.gender,
        "city": t.city,
        "country": t.country,
        "timezone": t.timezone,
        "member_level": t.member_level,
        "birth_year": t.birthday.year if t.birthday else None,
        "birth_month": t.birthday.month if t.birthday else None,
        "lifecycle": _tag_text(profile.tags, LIFECYCLE_TAG),
        "rfm_segment": _tag_text(profile.tags, RFM_SEGMENT_TAG),
        "event_count": f.event_count,
        "page_views": f.page_views,
        "cart_adds": f.cart_adds,
        "order_count": f.order_count,
        "return_count": f.return_count,
        "review_count": f.review_count,
        "spend_minor": f.spend_minor,
        "refund_minor": f.refund_minor,
        "net_spend_minor": f.net_spend_minor,
        "currency": f.currency,
        "points_balance": f.points_balance,
        "brand_points": f.brand_points(loyalty),
        "coupons_claimed": f.coupons_claimed,
        "coupons_redeemed": f.coupons_redeemed,
        "messages_delivered": f.messages_delivered,
        "messages_opened": f.messages_opened,
        "messages_clicked": f.messages_clicked,
        "first_seen_at": timestamp(f.first_seen_at),
        "last_seen_at": timestamp(f.last_seen_at),
        "first_order_at": timestamp(f.first_order_at),
        "last_order_at": timestamp(f.last_order_at),
        "acquisition_platform": f.acquisition.platform if f.acquisition else None,
        "acquisition_at": timestamp(f.acquisition.at) if f.acquisition else None,
        **{f"consent_{channel}": profile.has_consent(channel) for channel in CONSENT_CHANNELS},
        "global_control": in_global_control(profile.brand_id, profile.person_id, control_share),
        "scores": dict(sorted(flat_scores(profile.scores).items())),
        "exported_at": timestamp(exported_at),
    }
    return row


def tag_value_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tag_rows(profile: Profile, exported_at: datetime) -> list[Row]:
    rows = []
    for name, tag in sorted(profile.tags.items()):
        value = tag.value
        kind = "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "string"
        rows.append(
            {
                "person_id": profile.person_id,
                "tag": name,
                "value": tag_value_text(value),
                "value_type": kind,
                "value_number": float(value) if kind == "number" else None,
                "since": timestamp(tag.since),
                "expires_at": timestamp(tag.expires_at),
                "exported_at": timestamp(exported_at),
            }
        )
    return rows


def clean_url(url: str | None) -> str | None:
    """Scheme, host and path: the query string, fragment and any user:password@ are left out."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return None
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", "")) or None


def _lines(p: Any) -> list[dict[str, Any]] | None:
    if getattr(p, "lines", None):
        return [
            {
                "sku": line.sku,
                "category": line.category,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
            }
            for line in p.lines
        ]
    if getattr(p, "skus", None):
        return [{"sku": sku, "category": None, "quantity": None, "unit_price_minor": None} for sku in p.skus]
    return None


_COMMON = ("order_id", "sku", "category", "currency", "campaign_id", "coupon_id", "message_id", "program", "level")
_EVENT_COLUMNS = EVENTS.column_names


def _type_fields(event: CanonicalEvent) -> Row:  # noqa: C901 - one branch per type
    """What each type adds beyond the properties named alike (`_COMMON`)."""
    p: Any = event.properties
    match event.event_type:
        case "page_view":
            return {"url": clean_url(p.url)}
        case "add_to_cart":
            return {"quantity": p.quantity, "amount_minor": p.quantity * p.unit_price_minor}
        case "order_placed":
            return {
                "quantity": sum(line.quantity for line in p.lines),
                "amount_minor": p.total_minor,
                "channel": p.fulfilment,
            }
        case "order_returned":
            return {"amount_minor": p.refund_minor}
        case "review_posted":
            return {"rating": p.rating}
        case "points_changed":
            return {"points": p.delta, "status": p.reason}
        case "benefit_changed":
            return {"name": p.benefit_id, "status": "granted" if p.granted else "revoked"}
        case "level_changed":
            return {"status": p.direction}
        case "loyalty_expiring":
            return {"points": p.points, "status": p.what}
        case "card_balance_changed":
            return {"amount_minor": p.delta_minor, "status": p.kind}
        case "coupon_redeemed":
            return {"amount_minor": p.discount_minor}
        case "coupon_issued":
            return {"amount_minor": p.value_minor, "status": p.kind}
        case "message_delivered":
            return {"channel": p.channel.value, "status": p.status}
        case "message_clicked":
            return {"channel": p.channel.value, "url": clean_url(p.url)}
        case "message_opened":
            return {"channel": p.channel.value}
        case "ad_clicked" | "lead_submitted":
            return {"name": p.platform}
        case "custom":
            return {"name": p.name}
        case "consent_changed":
            return {"channel": str(p.channel), "name": p.purpose, "status": "granted" if p.granted else "refused"}
    return {}


def event_row(event: CanonicalEvent, person_id: str | None) -> Row:
    """The event's row; `person_id` None when the writer fills it in (from the anchor the event is filed under)."""
    p: Any = event.properties
    row: Row = dict.fromkeys(_EVENT_COLUMNS)
    row.update(
        {
            "event_id": event.event_id,
            "source": event.source.value,
            "event_type": event.event_type,
            "person_id": person_id,
            "occurred_at": timestamp(event.occurred_at),
            "received_at": timestamp(event.received_at),
            "store_id": event.store_id,
            "lines": _lines(p),
        }
    )
    declared = type(p).model_fields  # never an undeclared extra key a channel added (it may hold anything)
    fields = p.__dict__  # the declared fields' values (a pydantic model's own; extras live apart)
    for name in _COMMON:
        value = fields.get(name) if name in declared else None
        if isinstance(value, str):
            row[name] = value
    if event.event_type == "identify":  # a member level told with the profile; no other trait is an event fact
        row["level"], row["program"] = p.member_level, p.program
    row.update(_type_fields(event))
    return row
