"""The stored person item leaves out the all-scopes facts roll-up and reading folds it back, equal to the one kept
incrementally (every event applied to both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.ingest.events import parse_event
from cdp.profile.dynamodb import profile_item, to_profile
from cdp.profile.models import Profile, apply_event

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _event(n: int, store: str | None, event_type: str, properties: dict[str, object]) -> object:
    body: dict[str, object] = {
        "event_id": f"e{n}",
        "event_type": event_type,
        "source": "pos",
        "brand_id": "demo-brand",
        "occurred_at": (T0 + timedelta(days=n)).isoformat(),
        "identifiers": [{"type": "phone", "value": "13800138000"}],
        "properties": properties,
    }
    if store:
        body["store_id"] = store
    return parse_event(body)


def test_the_stored_item_leaves_the_roll_up_out_and_reading_folds_it_back() -> None:
    # Given a person with orders, points, a card and a level in two stores and online
    line = {"sku": "CAKE-1", "category": "cake", "quantity": 2, "unit_price_minor": 1000}
    events = [
        _event(1, "sh01", "order_placed", {"order_id": "o1", "lines": [line], "total_minor": 2000, "currency": "CNY"}),
        _event(2, "bj02", "order_placed", {"order_id": "o2", "lines": [line], "total_minor": 1500, "currency": "CNY"}),
        _event(3, None, "points_changed", {"delta": 300, "program": "app", "reason": "purchase"}),
        _event(4, "sh01", "points_changed", {"delta": -50, "program": "app", "reason": "redemption"}),
        _event(
            5,
            "bj02",
            "card_balance_changed",
            {"card_id": "C1", "kind": "gift_card", "delta_minor": 5000, "currency": "CNY"},
        ),
        _event(6, "sh01", "identify", {"member_level": "gold", "program": "app"}),
    ]
    profile = Profile(person_id="p1", brand_id="demo-brand", created_at=T0, updated_at=T0)
    for event in events:
        profile = apply_event(profile, event)  # type: ignore[arg-type]
    # When it is stored and read back
    item = profile_item(profile)
    read = to_profile(item)
    # Then the item holds no roll-up, and the roll-up read back equals the incremental one
    assert "facts" not in item and len(item["scoped_facts"]) == 3
    assert read.facts == profile.facts
    assert read.facts.order_count == 2 and read.facts.spend_minor == 3500
    assert read.facts.points_by_program == {"app": 250}
    # And an item written before (with its roll-up) is read as it was
    legacy = {**item, "facts": profile.facts.model_dump(mode="json")}
    assert to_profile(legacy).facts == profile.facts
