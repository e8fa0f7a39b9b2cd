"""The stored person item: compressed, without the all-scopes facts roll-up (reading folds it back, equal to the one
kept incrementally) and without tags and scores (their own item); items of the earlier layout still read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cdp.ingest.events import parse_event
from cdp.profile.dynamodb import annotation_writes, profile_item, profile_tags_item, to_profile, with_annotations
from cdp.profile.models import ModelScore, Profile, TagValue, apply_event
from cdp.shared.dynamo import to_item
from cdp_local.cost_model import item_size

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
    assert "facts" not in item and len(read.scoped_facts) == 3
    assert read.facts == profile.facts
    assert read.facts.order_count == 2 and read.facts.spend_minor == 3500
    assert read.facts.points_by_program == {"app": 250}
    # And an item of the earlier layout (every field in the clear, its roll-up included) is read as it was
    legacy = {"pk": item["pk"], "sk": item["sk"], **profile.model_dump(mode="json")}
    assert "data" not in legacy and to_profile(legacy) == profile


def _rich_profile() -> Profile:
    line = {"sku": "CAKE-1", "category": "cake", "quantity": 2, "unit_price_minor": 1000}
    profile = Profile(person_id="p1", brand_id="demo-brand", created_at=T0, updated_at=T0, version=7)
    for n in range(12):
        store = ("sh01", "bj02", None)[n % 3]
        order = {"order_id": f"o{n}", "lines": [line], "total_minor": 2000, "currency": "CNY"}
        profile = apply_event(profile, _event(n, store, "order_placed", order))  # type: ignore[arg-type]
        profile = apply_event(profile, _event(100 + n, store, "identify", {"name": f"Ann {n}", "city": "Shanghai"}))  # type: ignore[arg-type]
    profile.identifiers = ["phone:+8613800138000", "email:ann@example.com", "device:d-1"]
    profile.tags = {"lifecycle": TagValue(value="mature", since=T0), "vip": TagValue(value=True, since=T0)}
    profile.scores = {"churn": ModelScore(score=0.3, model_version="v1", scored_at=T0)}
    profile.next_tag_expiry = T0 + timedelta(days=30)
    profile.tags_version = 4
    return profile


def test_the_person_item_is_compressed_and_keeps_tags_and_scores_out() -> None:
    # Given a person with orders in three scopes, traits from three sources, tags and a score
    profile = _rich_profile()
    # When stored
    item = profile_item(profile)
    # Then the person item holds what scans filter on in the clear and the rest compressed, under one write unit
    assert {"tags", "scores", "next_tag_expiry", "scoped_facts", "trait_sources"}.isdisjoint(item)
    assert item["version"] == 7 and item["identifiers"] == profile.identifiers and "merged_into" not in item
    plain = len(json.dumps(profile.model_dump(mode="json", exclude={"facts", "tags", "scores"})))
    assert item_size(to_item(item)) <= 1024 < plain
    # And read back with its tags item, it is the same person
    read = to_profile(item, profile_tags_item(profile, 4))
    assert read == profile and read.tags_version == 4 and not read.annotations_inline
    # And without one, it has no tags (a person the tag engine has not written yet)
    bare = to_profile(item)
    assert bare.tags == {} and bare.scores == {} and bare.tags_version == 0 and not bare.annotations_inline


def test_an_earlier_layout_item_with_tags_is_flagged_so_its_next_write_moves_them() -> None:
    profile = _rich_profile()
    earlier = {"pk": "P#p1", "sk": "PROFILE", **profile.model_dump(mode="json")}
    read = to_profile(earlier)
    assert read.annotations_inline and read.tags == profile.tags and read.scores == profile.scores
    # The person's write then puts the tags item (only if none exists: a tag engine's write wins)
    (write,) = annotation_writes("t", read)
    assert (
        write["Put"]["Item"]["sk"] == {"S": "TAGS"}
        and write["Put"]["ConditionExpression"] == "attribute_not_exists(#pk)"
    )
    # With its tags item already there, the item is not flagged and the tags item's values win
    newer = profile_tags_item(profile.model_copy(update={"tags": {}}), 9)
    assert not to_profile(earlier, newer).annotations_inline and to_profile(earlier, newer).tags == {}
    # A person merged away loses their tags item (the sweep would otherwise find it due forever)
    (gone,) = annotation_writes("t", profile.model_copy(update={"merged_into": "p2"}))
    assert gone == {"Delete": {"TableName": "t", "Key": {"pk": {"S": "P#p1"}, "sk": {"S": "TAGS"}}}}
    assert annotation_writes("t", profile) == []


def test_a_scan_joins_each_person_with_the_tags_item_that_follows_it() -> None:
    a, b, c = (_rich_profile().model_copy(update={"person_id": pid}) for pid in ("a", "b", "c"))
    # a with tags, b without, a tags item with no person (merged away, filtered out), then c with tags
    stream = [
        profile_item(a),
        profile_tags_item(a, 1),
        profile_item(b),
        profile_tags_item(b.model_copy(update={"person_id": "x"}), 1),
    ]
    stream += [profile_item(c), profile_tags_item(c, 2)]
    stream[3]["pk"] = "P#x"
    joined = {p.person_id: p for p in with_annotations(stream)}
    assert set(joined) == {"a", "b", "c"}
    assert joined["a"].tags == a.tags and joined["b"].tags == {} and joined["c"].tags_version == 2
