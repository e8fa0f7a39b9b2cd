"""Row shaping for the warehouse: every table's columns in schema order, identifiers only as hashes, and nothing a
person wrote or was called (names, birthdays, free text, raw phones and e-mails, URL query strings) in any row."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import LoyaltyPolicy
from cdp.privacy.service import identifier_hash as suppression_hash
from cdp.profile.models import ModelScore, Profile, TagValue, fold_event
from cdp.warehouse.rows import clean_url, event_row, identifier_hash, profile_row, tag_rows, timestamp
from cdp.warehouse.schema import EVENTS, PROFILES, TAGS

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "canonical"
AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
# what the samples say about the person, as written and as normalized, that must never reach the warehouse
PII = ("13800138000", "li.na@example.cn", "Li Na", "Xiaoyu", "1988-03-15", "2019-06-12", "Quiet and cools")


def samples() -> list[CanonicalEvent]:
    return [parse_event(p.read_bytes()) for p in sorted(SAMPLES.glob("*.v1.json")) if p.name != "batch.v1.json"]


def sample_profile() -> Profile:
    events = samples()
    profile = Profile(
        person_id="p-1",
        brand_id="demo-brand",
        created_at=min(e.occurred_at for e in events),
        updated_at=min(e.occurred_at for e in events),
        identifiers=sorted({i.key for e in events for i in e.identifiers}),
    )
    for event in events:
        fold_event(profile, event)
    profile.tags = {
        "lifecycle": TagValue(value="growth", since=AT),
        "rfm_monetary": TagValue(value=4, since=AT, expires_at=datetime(2027, 1, 1, tzinfo=UTC)),
        "purchased_last_7d": TagValue(value=False, since=AT),
        "audience:winter_cake_sms": TagValue(value=True, since=AT),
    }
    profile.scores = {"purchase_propensity": ModelScore(score=0.25, model_version="v1", scored_at=AT)}
    return profile


def _text(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)


def test_profile_rows_hold_hashed_identifiers_and_no_personal_text() -> None:
    # Given a person folded from every canonical sample (phone, e-mail, name, birthday, family, review text)
    profile = sample_profile()
    # When shaped into a warehouse row
    row = profile_row(profile, LoyaltyPolicy(), AT, control_share=0.0)
    # Then it has exactly the schema's columns, in order
    assert tuple(row) == PROFILES.column_names
    # And each identifier is its type and the SHA-256 of its key, the suppression list's hash, never the value
    assert {i["type"] for i in row["identifiers"]} >= {"phone", "email", "device_id"}
    phone = "phone:+8613800138000"
    assert {"type": "phone", "sha256": hashlib.sha256(phone.encode()).hexdigest()} in row["identifiers"]
    assert identifier_hash(phone) == suppression_hash(phone)
    assert not [p for p in PII if p in _text([row])]
    # And the facts, consent and tags it carries are the profile's
    assert (row["birth_year"], row["birth_month"], row["gender"], row["member_level"]) == (1988, 3, "female", "gold")
    assert row["order_count"] == profile.facts.order_count >= 1
    assert row["lifecycle"] == "growth" and row["scores"] == {"purchase_propensity": 0.25}
    assert row["consent_sms"] is profile.has_consent("sms")
    assert datetime.fromisoformat(row["exported_at"]) == AT


def test_tag_rows_type_their_values() -> None:
    # Given a person with a string, a number, a bool tag and an audience membership
    rows = tag_rows(sample_profile(), AT)
    # Then one row per tag, with the schema's columns, the value as text, its type, and numbers also as numbers
    assert all(tuple(r) == TAGS.column_names for r in rows)
    by_tag = {r["tag"]: r for r in rows}
    assert (by_tag["rfm_monetary"]["value"], by_tag["rfm_monetary"]["value_number"]) == ("4", 4.0)
    assert datetime.fromisoformat(by_tag["rfm_monetary"]["expires_at"]) == datetime(2027, 1, 1, tzinfo=UTC)
    assert (by_tag["purchased_last_7d"]["value"], by_tag["purchased_last_7d"]["value_type"]) == ("false", "bool")
    assert by_tag["audience:winter_cake_sms"]["value_number"] is None
    assert by_tag["lifecycle"]["value_type"] == "string"


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.event_type)
def test_every_event_type_shapes_to_the_schema_without_personal_data(event: CanonicalEvent) -> None:
    # Given a canonical sample event / When shaped into a row
    row = event_row(event, "p-1")
    # Then it has the schema's columns in order, its own type and time, and nothing personal
    assert tuple(row) == EVENTS.column_names
    assert (row["event_type"], row["event_id"], row["person_id"]) == (event.event_type, event.event_id, "p-1")
    assert datetime.fromisoformat(row["occurred_at"]) == event.occurred_at
    assert datetime.fromisoformat(row["occurred_at"]).utcoffset() == timedelta(0)  # the writer ignores offsets
    text = _text([row])
    assert not [p for p in PII if p in text], event.event_type
    assert "identifiers" not in row and "context" not in row


def test_an_order_keeps_its_lines_total_and_fulfilment() -> None:
    (order,) = [e for e in samples() if e.event_type == "order_placed"]
    row = event_row(order, "p-1")
    p: Any = order.properties
    assert row["amount_minor"] == p.total_minor and row["currency"] == p.currency and row["order_id"] == p.order_id
    assert row["lines"] == [
        {
            "sku": line.sku,
            "category": line.category,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
        }
        for line in p.lines
    ]
    assert row["quantity"] == sum(line.quantity for line in p.lines)


def test_undeclared_properties_a_channel_adds_never_reach_the_warehouse() -> None:
    # Given a custom event whose channel added keys named like warehouse columns, holding personal data
    event = parse_event(
        {
            "event_id": "c-1",
            "source": "app",
            "brand_id": "demo-brand",
            "occurred_at": "2026-12-01T00:00:00Z",
            "event_type": "custom",
            "identifiers": [{"type": "phone", "value": "13800138000"}],
            "properties": {"name": "tapped_banner", "order_id": "li.na@example.cn", "sku": "13800138000"},
        }
    )
    # When shaped / Then only what the type declares is taken
    row = event_row(event, "p-1")
    assert (row["name"], row["order_id"], row["sku"]) == ("tapped_banner", None, None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://shop.example.cn/cakes/strawberry?email=li.na@example.cn#top",
            "https://shop.example.cn/cakes/strawberry",
        ),
        ("https://user:secret@shop.example.cn:8443/p?t=1", "https://shop.example.cn:8443/p"),
        ("/relative/path?q=1", "/relative/path"),
        ("http://[::1", None),
        ("", None),
    ],
)
def test_urls_keep_scheme_host_and_path_only(url: str, expected: str | None) -> None:
    assert clean_url(url) == expected


def test_times_reach_the_writer_in_utc_whatever_offset_they_carry() -> None:
    # Given an instant written with +08:00 (the writer's reader ignores offsets) / Then it is converted, not cut
    shanghai = timezone(timedelta(hours=8))
    assert timestamp(datetime(2026, 1, 1, 8, 30, tzinfo=shanghai)) == "2026-01-01T00:30:00+00:00"
    assert timestamp(datetime(2026, 1, 1, 8, 30, tzinfo=UTC)) == "2026-01-01T08:30:00+00:00"
    assert timestamp(None) is None
