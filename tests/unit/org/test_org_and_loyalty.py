"""The organisation directory (hierarchy, namespaces, per-brand policies) and the loyalty math of merges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.ingest.events import parse_event
from cdp.ingest.service import ingest
from cdp.org import OrgConfigError, OrgDirectory, ScopeRef, load_org, parse_org
from cdp.profile.models import Profile, apply_event, merge_profiles

T0 = datetime(2026, 3, 1, tzinfo=UTC)

ORG = parse_org(
    json.dumps(
        {
            "brands": {
                "bakery": {
                    "group_id": "sweet-group",
                    "dealers": {"dealer-east": ["sh01", "sh02"]},
                    "loyalty": {"points_per_brand_point": {"dealer-east": 10}},
                    "merge": {"traits": {"name": {"rule": "source_priority", "source_priority": ["crm", "app"]}}},
                },
                "cafe": {"group_id": "sweet-group"},
                "outlet-sg": {"group_id": "sg-group", "identity_scope": "brand", "phone_region": "SG"},
            }
        }
    ),
    "test",
)


def _event(n: int, event_type: str, source: str = "app", store: str | None = None, **props: Any) -> Any:
    return parse_event(
        {
            "event_id": f"e{n}",
            "event_type": event_type,
            "source": source,
            "brand_id": "bakery",
            "store_id": store,
            "occurred_at": (T0 + timedelta(days=n)).isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138001"}],
            "properties": props,
        }
    )


def _person(pid: str, *events: Any) -> Profile:
    profile = Profile(person_id=pid, brand_id="bakery", created_at=T0, updated_at=T0)
    for event in events:
        profile = apply_event(profile, event, ORG.brand("bakery"))
    return profile


def test_brands_of_a_group_share_a_namespace_and_a_brand_can_resolve_alone() -> None:
    # Given a group with two brands and a brand that resolves identity on its own
    # Then the group's brands share one namespace, the lone brand has its own, and unknown brands are their own group
    assert ORG.brand("bakery").namespace == ORG.brand("cafe").namespace == "g.sweet-group"
    assert ORG.brand("outlet-sg").namespace == "b.outlet-sg"
    assert ORG.brand("unknown").namespace == "g.unknown"
    assert ORG.brands_in_group("sweet-group") == ["bakery", "cafe"]


def test_scopes_roll_up_along_group_brand_dealer_store() -> None:
    # Given facts recorded at store sh02 of the bakery
    # Then the store, its dealer, the brand and the group see them; another brand's scope does not
    assert ScopeRef(store_id="sh02").contains(ORG, "bakery", "sh02")
    assert ScopeRef(dealer_id="dealer-east").contains(ORG, "bakery", "sh02")
    assert not ScopeRef(dealer_id="dealer-east").contains(ORG, "bakery", "bj01")
    assert ScopeRef(brand_id="bakery").contains(ORG, "bakery", None)
    assert ScopeRef(group_id="sweet-group").contains(ORG, "cafe", "x1")
    assert not ScopeRef(brand_id="cafe").contains(ORG, "bakery", "sh02")


def test_a_bad_directory_names_the_brand_and_field() -> None:
    # Given a store listed under two dealers and a bad phone region
    bad = {"brands": {"b": {"group_id": "g", "phone_region": "China", "dealers": {"d1": ["s"], "d2": ["s"]}}}}
    # Then loading fails with the brand and the field in the message
    with pytest.raises(OrgConfigError, match=r"brands\.b\.phone_region"):
        parse_org(json.dumps(bad), "org.json")
    with pytest.raises(OrgConfigError, match="not JSON"):
        parse_org("{", "org.json")


def test_packaged_directory_loads() -> None:
    assert isinstance(load_org(), OrgDirectory) and "demo-brand" in load_org().brands


def test_merge_keeps_the_highest_level_converts_points_unions_benefits_and_keeps_cards_apart() -> None:
    # Given the same person: gold in the app with 300 app points, a free-delivery benefit and a gift card;
    app = _person(
        "a",
        _event(1, "identify", member_level="gold", name="Wang Fang"),
        _event(2, "points_changed", delta=300, program="app", reason="purchase"),
        _event(3, "benefit_changed", benefit_id="free-delivery", granted=True),
        _event(4, "card_balance_changed", card_id="GC-1", kind="gift_card", delta_minor=50_000, currency="CNY"),
    )
    # and silver at a dealer with 1,000 dealer points, a birthday gift and a stored-value card
    dealer = _person(
        "b",
        _event(5, "identify", "pos", "sh01", member_level="silver", program="dealer-east", name="Fang W."),
        _event(6, "points_changed", "pos", "sh01", delta=1000, program="dealer-east", reason="purchase"),
        _event(7, "benefit_changed", "pos", "sh01", benefit_id="birthday-gift", granted=True),
        _event(8, "card_balance_changed", "pos", "sh01", card_id="SV-9", kind="stored_value", delta_minor=20_000,
               currency="CNY"),
    )  # fmt: skip
    # When they merge
    merged = merge_profiles(app, dealer, ORG.brand("bakery"))
    loyalty = ORG.brand("bakery").loyalty
    # Then gold is kept, 1,000 dealer points at 10:1 + 300 app points are 400 brand points (the raw ledgers stay),
    assert merged.traits.member_level == "gold"
    assert merged.facts.brand_points(loyalty) == 400
    assert merged.facts.points_by_program == {"app": 300, "dealer-east": 1000}
    # benefits are unioned, cards are kept per card and never summed
    assert merged.facts.active_benefits() == ["birthday-gift", "free-delivery"]
    assert {c: b.balance_minor for c, b in merged.facts.cards.items()} == {"GC-1": 50_000, "SV-9": 20_000}
    # the facts roll up: the dealer store's scope holds only its own points
    assert merged.scoped_facts["bakery/sh01"].points_by_program == {"dealer-east": 1000}
    # and the name follows source priority (app outranks pos here), whichever was more recent
    assert merged.traits.name == "Wang Fang"


def test_fold_order_does_not_change_the_profile() -> None:
    # Given events including a consent decision made twice at the same instant
    events = [
        _event(1, "identify", city="Shanghai"),
        _event(2, "identify", "pos", "sh01", city="Beijing"),
        _event(3, "points_changed", delta=5, program="app", reason="bonus"),
    ]
    # When folded forwards and backwards
    forward, backward = _person("p", *events), _person("p", *reversed(events))
    # Then the result is the same (most recent city wins by time, not by arrival)
    assert forward.traits == backward.traits and forward.facts == backward.facts
    assert forward.traits.city == "Beijing"


def test_ingest_normalizes_phones_with_each_brands_region() -> None:
    # Given a Singapore brand and a Chinese brand, both sending local phone numbers without a country code
    class Archive:
        def archive(self, *args: Any, **kwargs: Any) -> str:
            return "raw/x"

    class Ledger:
        def claim(self, *args: Any) -> Any:
            from cdp.ingest.ports import DedupeStatus

            return DedupeStatus.NEW

        def confirm(self, *args: Any) -> None:
            return None

        def claim_many(self, keys: list[str], *args: Any) -> Any:
            return {key: self.claim(key) for key in keys}

    class Bus:
        def __init__(self) -> None:
            self.events: list[Any] = []

        def publish(self, events: Any, correlation_id: str) -> list[str]:
            self.events.extend(events)
            return []

    def body(brand: str, phone: str) -> dict[str, Any]:
        return {"event_id": f"id-{brand}", "event_type": "identify", "source": "app", "brand_id": brand,
                "occurred_at": T0.isoformat(), "identifiers": [{"type": "phone", "value": phone}]}  # fmt: skip

    bus = Bus()
    payload = json.dumps({"batch": [body("outlet-sg", "91234567"), body("bakery", "13800138001")]}).encode()
    # When ingested with the directory's regions
    result = ingest(payload, "r1", T0, Archive(), Ledger(), bus, phone_region=lambda b: ORG.brand(b or "").phone_region)  # type: ignore[arg-type]
    # Then each phone is normalized in its brand's country
    assert result.accepted == 2
    assert [ev.identifiers[0].key for e in bus.events for ev in e.events] == [
        "phone:+6591234567",
        "phone:+8613800138001",
    ]
