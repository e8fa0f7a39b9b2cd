"""Pure view building: scope arithmetic, roll-up along group -> brand -> dealer -> store, loyalty math, pagination."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.app.profile_views import (
    covers_brand,
    covers_whole_brand,
    decode_cursor,
    encode_cursor,
    entry_sort_key,
    event_in_scope,
    facts_in_scope,
    narrow,
    parse_scope,
    person_summary,
    profile_view,
    scoped_page,
    unique_lineage,
)
from cdp.errors import ForbiddenError, InvalidInputError
from cdp.identity.resolution import LineageRecord
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import ScopeRef, parse_org
from cdp.profile import keys
from cdp.profile.edits import EditRecord
from cdp.profile.models import Profile, apply_event
from cdp.profile.ports import MessageRecord, TimelineEntry, TimelinePage

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ORG = parse_org(
    json.dumps(
        {
            "brands": {
                "bakery": {
                    "group_id": "sweet-group",
                    "dealers": {"dealer-east": ["sh01", "sh02"], "dealer-north": ["bj01"]},
                    "loyalty": {"points_per_brand_point": {"dealer-east": 10}},
                },
                "cafe": {"group_id": "sweet-group"},
            }
        }
    ),
    "test",
)
BAKERY = ORG.brand("bakery")
LINES = [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 100_000}]


def _event(n: int, event_type: str, brand: str = "bakery", store: str | None = None, **props: Any) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"e{n}",
            "event_type": event_type,
            "source": "pos" if store else "app",
            "brand_id": brand,
            "store_id": store,
            "occurred_at": (T0 + timedelta(days=n)).isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138001"}],
            "properties": props,
        }
    )


def _order(n: int, store: str | None, total: int, brand: str = "bakery") -> CanonicalEvent:
    fulfilment = "offline" if store else "online"
    return _event(
        n, "order_placed", brand, store, order_id=f"o{n}", lines=LINES, total_minor=total, currency="CNY",
        fulfilment=fulfilment,
    )  # fmt: skip


def _person(*events: CanonicalEvent) -> Profile:
    profile = Profile(
        person_id="p1", brand_id="bakery", created_at=T0, updated_at=T0, identifiers=["phone:+8613800138001"]
    )
    for event in events:
        profile = apply_event(profile, event, BAKERY)
    return profile


EVENTS = [
    _order(1, "sh01", 1_000),
    _order(2, "sh02", 2_000),
    _order(3, "bj01", 4_000),
    _order(4, None, 8_000),
    _order(5, None, 16_000, brand="cafe"),
    _event(6, "points_changed", store="sh01", delta=1_000, program="dealer-east", reason="purchase"),
    _event(7, "points_changed", delta=300, program="app", reason="purchase"),
    _event(8, "card_balance_changed", card_id="GC-1", kind="gift_card", delta_minor=5_000, currency="CNY"),
    _event(9, "card_balance_changed", store="sh01", card_id="SV-9", kind="stored_value", delta_minor=2_000,
           currency="CNY"),
    _event(10, "identify", store="sh01", member_level="silver", program="dealer-east"),
    _event(11, "identify", member_level="gold"),
    _event(12, "order_returned", store="sh01", order_id="o1", refund_minor=1_000, currency="CNY"),
    _event(13, "review_posted", sku="CAKE", rating=4),
]  # fmt: skip
PERSON = _person(*EVENTS)


# ---- scope arithmetic ----------------------------------------------------------------------------------------


def test_scope_parameter_parses_levels_and_rejects_garbage_naming_the_field() -> None:
    assert parse_scope("brand:bakery,store:sh01") == ScopeRef(brand_id="bakery", store_id="sh01")
    assert parse_scope(" ") is None and parse_scope(None) is None
    for bad in ("shop:sh01", "brand", "brand:", "brand:a,brand:b"):
        with pytest.raises(InvalidInputError) as err:
            parse_scope(bad)
        assert err.value.location == "scope"


def test_a_request_narrows_within_the_key_scope_and_never_widens_it() -> None:
    # Given a key of the bakery brand
    key = ScopeRef(brand_id="bakery")
    # Then a store inside it narrows the view, and another brand is forbidden
    assert narrow(key, ScopeRef(store_id="sh01")) == ScopeRef(brand_id="bakery", store_id="sh01")
    assert narrow(key, None) == key
    with pytest.raises(ForbiddenError, match="outside this key's scope brand:bakery"):
        narrow(key, ScopeRef(brand_id="cafe"))
    # And an unrestricted key may narrow anywhere
    assert narrow(ScopeRef(), ScopeRef(group_id="sweet-group")) == ScopeRef(group_id="sweet-group")


def test_brand_coverage_for_namespace_wide_work() -> None:
    assert covers_brand(ScopeRef(), ORG, "bakery") and covers_whole_brand(ScopeRef(), ORG, "bakery")
    assert covers_brand(ScopeRef(group_id="sweet-group"), ORG, "cafe")
    assert covers_brand(ScopeRef(store_id="sh01"), ORG, "bakery")
    assert not covers_whole_brand(ScopeRef(store_id="sh01"), ORG, "bakery")
    assert not covers_brand(ScopeRef(store_id="nowhere"), ORG, "bakery")
    assert not covers_brand(ScopeRef(dealer_id="dealer-east"), ORG, "cafe")
    assert not covers_brand(ScopeRef(brand_id="cafe"), ORG, "bakery")


# ---- roll-up along the hierarchy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "orders", "spend"),
    [
        (ScopeRef(), 5, 31_000),
        (ScopeRef(group_id="sweet-group"), 5, 31_000),
        (ScopeRef(brand_id="bakery"), 4, 15_000),
        (ScopeRef(brand_id="cafe"), 1, 16_000),
        (ScopeRef(dealer_id="dealer-east"), 2, 3_000),
        (ScopeRef(brand_id="bakery", store_id="sh02"), 1, 2_000),
    ],
)
def test_facts_roll_up_over_the_scopes_a_view_contains(scope: ScopeRef, orders: int, spend: int) -> None:
    # Given orders at two stores of one dealer, a store of another dealer, the brand's web shop and a sister brand
    # When the facts are rolled up for a view at each level of the hierarchy
    facts = facts_in_scope(PERSON, ORG, scope)
    # Then each level sums exactly the scopes below it
    assert facts is not None
    assert (facts.order_count, facts.spend_minor) == (orders, spend)


def test_a_view_that_contains_nothing_of_the_person_sees_no_person() -> None:
    # Given a person who never bought at store bj02 (not a store of the directory either)
    # Then a store view elsewhere holds nothing, and the summary is None (the API answers 404, as for nobody)
    assert facts_in_scope(PERSON, ORG, ScopeRef(store_id="bj02")) is None
    assert person_summary(PERSON, ORG, BAKERY, ScopeRef(brand_id="other")) is None


def test_events_are_in_a_view_when_their_brand_and_store_are() -> None:
    store_view = ScopeRef(brand_id="bakery", store_id="sh01")
    assert [e.event_id for e in EVENTS if event_in_scope(e, ORG, store_view)] == ["e1", "e6", "e9", "e10", "e12"]
    assert all(event_in_scope(e, ORG, ScopeRef()) for e in EVENTS)


# ---- loyalty and the 360 view -----------------------------------------------------------------------------------


def test_loyalty_keeps_the_highest_level_converts_points_and_lists_cards_apart() -> None:
    # When the whole person is viewed
    summary = person_summary(PERSON, ORG, BAKERY, ScopeRef())
    assert summary is not None
    loyalty = summary.loyalty
    # Then gold beats silver, 1,000 dealer points at 10:1 plus 300 app points make 400 brand points
    assert loyalty.member_level == "gold"
    assert {p.program: (p.points, p.points_per_brand_point, p.brand_points) for p in loyalty.points} == {
        "app": (300, 1, 300),
        "dealer-east": (1_000, 10, 100),
    }
    assert loyalty.brand_points == 400
    # And each card keeps its own balance
    assert {c.card_id: (c.kind, c.balance_minor) for c in loyalty.cards} == {
        "GC-1": ("gift_card", 5_000),
        "SV-9": ("stored_value", 2_000),
    }


def test_a_store_view_sees_only_its_store_loyalty_and_activity() -> None:
    summary = person_summary(PERSON, ORG, BAKERY, ScopeRef(brand_id="bakery", store_id="sh01"))
    assert summary is not None
    assert summary.visible_scopes == ["bakery/sh01"]
    assert summary.loyalty.member_level == "silver" and summary.loyalty.brand_points == 100
    assert [c.card_id for c in summary.loyalty.cards] == ["SV-9"]
    assert (summary.activity.order_count, summary.activity.return_count) == (1, 1)


def test_profile_view_lists_orders_by_fulfilment_returns_reviews_messages_history_and_edits() -> None:
    # Given the person's timeline, a message, a merge filed under two persons and an edit
    merge = LineageRecord(
        kind="merge", at=T0, person_ids=("p0", "p1"), rule="r", identifiers=("phone:+8613800138001",),
        survivor_id="p1", merged_ids=("p0",), actor="crm",
    )  # fmt: skip
    message = MessageRecord("p1", "m1", "c1", "touch1", "sms", T0, None, "sent")
    edit = EditRecord(edit_id="x", person_id="p1", actor="crm", at=T0, scope="all", traits={"city": "Shanghai"})
    # When the view is built at the brand (the sister brand's web order is outside it)
    view = profile_view(
        PERSON, ORG, BAKERY, ScopeRef(brand_id="bakery"), requested_id="p0", timeline=EVENTS, messages=[message],
        lineage=[merge, merge], edits=[edit],
    )  # fmt: skip
    # Then orders split by fulfilment, newest first, and every list is there once
    assert view is not None
    assert [o.order_id for o in view.orders.offline] == ["o3", "o2", "o1"]
    assert [o.order_id for o in view.orders.online] == ["o4"]
    assert [r.order_id for r in view.returns] == ["o1"] and [r.rating for r in view.reviews] == [4]
    assert [m.message_id for m in view.messages] == ["m1"]
    assert [h.merged_ids for h in view.merge_history] == [["p0"]]
    assert view.edits[0].actor == "crm"
    # And the merged-away id it was asked by is answered for by the survivor, which says so
    assert (view.requested_id, view.person_id, view.merged_away) == ("p0", "p1", True)


def test_lineage_filed_under_several_persons_is_shown_once() -> None:
    a = LineageRecord(kind="merge", at=T0, person_ids=("a", "b"), rule="r", identifiers=("x",), survivor_id="a")
    b = LineageRecord(kind="split", at=T0 + timedelta(1), person_ids=("a", "b"), rule="u", identifiers=("x",))
    assert unique_lineage([b, a, a, b]) == [a, b]


# ---- the timeline, paginated and scoped ---------------------------------------------------------------------------


class _Pages:
    """A fake store timeline: newest first, `limit` older than the cursor, like the DynamoDB adapter."""

    def __init__(self, events: list[CanonicalEvent]) -> None:
        self.entries = sorted(
            (TimelineEntry("phone:+8613800138001", e) for e in events), key=entry_sort_key, reverse=True
        )
        self.reads = 0

    def fetch(self, before: str | None, limit: int) -> TimelinePage:
        self.reads += 1
        older = [e for e in self.entries if before is None or entry_sort_key(e) < before]
        page = older[:limit]
        return TimelinePage(page, entry_sort_key(page[-1]) if len(older) > limit else None)


def _walk(pages: _Pages, keep: Any, limit: int) -> list[list[str]]:
    out, cursor = [], None
    while True:
        entries, cursor = scoped_page(pages.fetch, keep, cursor, limit)
        out.append([e.event.event_id for e in entries])
        if cursor is None:
            return out


def test_pages_walk_the_whole_timeline_newest_first_without_gaps_or_repeats() -> None:
    pages = _walk(_Pages(EVENTS), lambda e: True, 5)
    assert pages == [["e13", "e12", "e11", "e10", "e9"], ["e8", "e7", "e6", "e5", "e4"], ["e3", "e2", "e1"]]


def test_scoped_pages_fill_up_from_older_store_pages() -> None:
    # Given a store view: only 5 of the 13 events are in it
    store_view = ScopeRef(brand_id="bakery", store_id="sh01")
    # When walked two at a time
    pages = _walk(_Pages(EVENTS), lambda e: event_in_scope(e, ORG, store_view), 2)
    # Then every page is full but the last, and nothing outside the store shows
    assert pages == [["e12", "e10"], ["e9", "e6"], ["e1"]]


class _InclusivePages(_Pages):
    """Like `DynamoProfileStore.timeline_page` on one identifier: after the first page it never hands a cursor."""

    def fetch(self, before: str | None, limit: int) -> TimelinePage:
        page = super().fetch(before, limit)
        return page if before is None else TimelinePage(page.entries, None)


def test_pages_walk_on_even_when_the_store_hands_no_cursor_for_a_full_page() -> None:
    pages = _walk(_InclusivePages(EVENTS), lambda e: True, 5)
    assert pages == [["e13", "e12", "e11", "e10", "e9"], ["e8", "e7", "e6", "e5", "e4"], ["e3", "e2", "e1"]]


def test_a_scoped_page_reads_a_bounded_number_of_store_pages() -> None:
    # Given nothing of the timeline is in the view
    pages = _Pages(EVENTS)
    entries, cursor = scoped_page(pages.fetch, lambda e: False, None, 2, max_pages=3)
    # Then three store pages are read and a cursor lets the caller go on
    assert entries == [] and pages.reads == 3 and cursor is not None


def test_cursors_are_opaque_and_checked() -> None:
    sort_key = keys.timeline_sk(T0, "evt#1")
    assert decode_cursor(encode_cursor(sort_key)) == sort_key
    assert "#" not in encode_cursor(sort_key)
    for bad in ("%%%", encode_cursor("P#someone")):
        with pytest.raises(InvalidInputError) as err:
            decode_cursor(bad)
        assert err.value.location == "cursor"
