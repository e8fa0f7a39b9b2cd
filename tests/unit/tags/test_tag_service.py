"""The real-time tag engine on in-memory ports: affected-only recompute, windows that expire on time, lifecycle
transitions, static tags, dynamic audiences with enter/exit events, history with as-of reads, redelivery."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.errors import ConflictError, PublishError
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.profile.models import AcquisitionTouch, ModelScore, Profile, ProfileFacts, TagValue, Traits, apply_event
from cdp.profile.ports import TimelineEntry
from cdp.shared.envelope import Publishable
from cdp.tags.announcements import AudienceEntered, AudienceExited, TagsChanged, TagTransition
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import IDENTITY_CHANGED, TagCatalog, bundled_catalog
from cdp.tags.ports import CachedAudiences, StaticAudiences
from cdp.tags.selection import FULL_REFRESH, SWEEP, TagRules, scored
from cdp.tags.service import ScoredPersons, TagEngine, refresh_scored, sweep
from tests.fakes.profiles import InMemoryProfiles
from tests.fakes.tags import InMemoryTagStore, RecordingPublisher

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CATALOG = bundled_catalog()
_ids = itertools.count()


# ---- builders -------------------------------------------------------------------------------------------------


def _event(event_type: str, at: datetime, **properties: Any) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"ev-{next(_ids)}",
            "event_type": event_type,
            "source": "pos" if event_type == "order_placed" else "app",
            "brand_id": "bakery-group",
            "store_id": "sh-01" if event_type == "order_placed" else None,
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138000"}],
            "properties": properties,
        }
    )


def order(at: datetime, total: int = 20_000, category: str = "cake") -> CanonicalEvent:
    line = {"sku": f"SKU-{category}", "category": category, "quantity": 1, "unit_price_minor": total}
    return _event(
        "order_placed",
        at,
        order_id=f"O-{next(_ids)}",
        lines=[line],
        total_minor=total,
        currency="CNY",
        fulfilment="offline",
    )


def page_view(at: datetime) -> CanonicalEvent:
    return _event("page_view", at, url="https://shop.example.cn/cakes")


class World:
    """One person, the engine and its ports; `add` applies events to the profile and files them."""

    def __init__(
        self,
        audiences: Sequence[AudienceDefinition] = (),
        catalog: TagCatalog = CATALOG,
        profile: Profile | None = None,
    ) -> None:
        self.store = InMemoryTagStore([profile or Profile(person_id="p1", brand_id="b", created_at=T0, updated_at=T0)])
        self.publisher = RecordingPublisher()
        self.engine = TagEngine(catalog, StaticAudiences(audiences), self.store, self.store, self.store, self.publisher)

    @property
    def profile(self) -> Profile:
        return self.store.profiles["p1"]

    def add(self, *events: CanonicalEvent) -> None:
        profile = self.profile
        for e in events:
            profile = apply_event(profile, e)
        self.store.profiles["p1"] = profile
        self.store.add_events("p1", list(events))

    def refresh(self, trigger: str, at: datetime, **kwargs: Any) -> Any:
        return self.engine.refresh("p1", trigger, at, **kwargs)

    def tags(self) -> dict[str, Any]:
        return {k: v.value for k, v in self.profile.tags.items()}


def audience(audience_id: str, include: dict[str, Any], **extra: Any) -> AudienceDefinition:
    return AudienceDefinition.model_validate(
        {"id": audience_id, "name": audience_id, "kind": "dynamic", "include": include, **extra}
    )


# ---- affected-only recompute ----------------------------------------------------------------------------------


def test_an_event_type_no_tag_or_audience_reads_changes_nothing_and_reads_nothing() -> None:
    # Given a person with tags, and an event type no bundled tag reads (a review)
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    before, reads, published = world.profile, world.store.reads, len(world.publisher.published)
    assert TagRules(CATALOG).select("review_posted").empty
    # When tag_update runs for a review_posted profile update
    outcome = world.refresh("review_posted", T0 + DAY)
    # Then it skipped without reading the profile or the timeline, and wrote and published nothing
    assert outcome.skipped and not outcome.changes
    assert world.store.reads == reads and world.store.timeline_reads == 1
    assert world.profile == before and len(world.publisher.published) == published


def test_only_the_tags_an_event_can_change_are_recomputed() -> None:
    # Given a person whose stored city tag is stale (the traits say Beijing, the tag says Shanghai)
    world = World()
    world.add(order(T0))
    world.store.profiles["p1"] = world.profile.model_copy(
        update={"traits": Traits(city="Beijing"), "tags": {"city": TagValue(value="Shanghai", since=T0 - DAY)}}
    )
    # When an order refreshes the tags
    outcome = world.refresh("order_placed", T0)
    # Then order-driven tags are set, the city tag (not read by orders) is left as stored, and the timeline was read
    assert world.tags()["purchased_last_7d"] is True and world.tags()["lifecycle"] == "growth"
    assert world.tags()["city"] == "Shanghai"
    assert outcome.read_events and "city" not in {c.tag for c in outcome.changes}
    # When an identify refreshes them: the city follows, and no timeline is read (identify tags read attributes only)
    reads = world.store.timeline_reads
    world.refresh("identify", T0 + timedelta(minutes=1))
    assert world.tags()["city"] == "Beijing"
    assert world.store.timeline_reads == reads


def test_unchanged_values_keep_since_and_an_identical_refresh_writes_nothing() -> None:
    # Given a tagged person
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    since, writes, published = world.profile.tags["lifecycle"].since, world.store.writes, len(world.publisher.published)
    # When a second order arrives a day later
    world.add(order(T0 + DAY))
    world.refresh("order_placed", T0 + DAY)
    # Then lifecycle (still growth) keeps its since; frequent_buyer_30d is new
    assert world.profile.tags["lifecycle"].since == since
    assert world.profile.tags["frequent_buyer_30d"].since == T0 + DAY
    # When the same refresh runs again: nothing changed, so nothing is written or published
    writes = world.store.writes
    published = len(world.publisher.published)
    outcome = world.refresh("order_placed", T0 + DAY)
    assert not outcome.wrote and world.store.writes == writes and len(world.publisher.published) == published


# ---- windows expire on time -----------------------------------------------------------------------------------


def test_purchased_last_7d_expires_exactly_at_the_window_edge_without_a_new_event() -> None:
    # Given an order at t, tagged at t
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    edge = T0 + 7 * DAY
    # Then the flag is set, lapses at t+7d, and the person's next refresh is exactly then
    assert world.profile.tags["purchased_last_7d"] == TagValue(value=True, since=T0, expires_at=edge)
    assert world.profile.next_tag_expiry == edge
    assert "p1" not in list(world.store.due_for_tag_refresh(edge - timedelta(seconds=1)))
    assert list(world.store.due_for_tag_refresh(edge)) == ["p1"]
    # When the sweep refreshes at t+7d+1s with no new event
    report = sweep(world.engine, world.store, world.store, edge + timedelta(seconds=1))
    # Then the flag is gone, its removal is recorded at the edge itself, and tags.changed says so
    assert report.refreshed == 1 and report.changed == 1
    assert "purchased_last_7d" not in world.profile.tags
    removal = [e for e in world.store.history["p1"] if e.tag == "purchased_last_7d" and e.new is None]
    assert [(e.old, e.at) for e in removal] == [(True, edge)]
    change = world.publisher.of(TagsChanged)[-1].changes
    assert [(c.tag, c.old, c.new, c.at) for c in change] == [("purchased_last_7d", True, None, edge)]
    # And the next expiry moved on to the next window edge (the 30-day frequency window)
    assert world.profile.next_tag_expiry == T0 + 30 * DAY


def test_a_window_that_still_holds_an_order_keeps_the_flag_and_its_since() -> None:
    # Given orders at t and t+5d
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    world.add(order(T0 + 5 * DAY))
    world.refresh("order_placed", T0 + 5 * DAY)
    # When the sweep passes the first order's edge (t+7d): the second order keeps the flag set
    sweep(world.engine, world.store, world.store, T0 + 7 * DAY + timedelta(hours=1))
    flag = world.profile.tags["purchased_last_7d"]
    assert flag.value is True and flag.since == T0 and flag.expires_at == T0 + 12 * DAY


# ---- lifecycle transitions ------------------------------------------------------------------------------------


def test_growth_turns_dormant_on_time_and_publishes_lifecycle_changed() -> None:
    # Given a one-order customer (growth)
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    assert world.tags()["lifecycle"] == "growth"
    # When the hourly sweep runs an hour after the 90-day mark, with no sweep in between
    sweep(world.engine, world.store, world.store, T0 + 90 * DAY + timedelta(hours=1))
    # Then the stage is dormant since exactly day 90, and lifecycle.changed says growth -> dormant at that instant
    assert world.profile.tags["lifecycle"].value == "dormant"
    assert world.profile.tags["lifecycle"].since == T0 + 90 * DAY
    transitions = world.publisher.of(TagTransition)
    assert [(t.event_name, t.from_, t.to, t.at) for t in transitions] == [
        (topology.LIFECYCLE_CHANGED, None, "growth", T0),
        (topology.LIFECYCLE_CHANGED, "growth", "dormant", T0 + 90 * DAY),
    ]
    assert transitions[-1].model_dump(mode="json")["from"] == "growth"  # published as from/to
    # And the intermediate window edges were replayed at their own instants (recency 5 -> 4 at day 31, ...)
    recency = [(e.new, e.at) for e in world.store.history["p1"] if e.tag == "rfm_recency"]
    assert recency == [(5, T0), (4, T0 + 31 * DAY), (3, T0 + 61 * DAY)]


def test_an_emits_name_from_the_catalog_is_the_published_event_name() -> None:
    # Given a catalog whose VIP flag emits vip.changed
    catalog = TagCatalog.from_documents(
        {
            "vip.yaml": """
version: 1
tags:
  - name: vip
    description: Big spender
    category: value
    kind: rule
    freshness: real_time
    owner: crm
    emits: vip.changed
    rule: {when: {attr: net_spend_minor, gte: 10000}}
"""
        }
    )
    world = World(catalog=catalog)
    world.add(order(T0, total=12_000))
    # When an order makes the person a VIP
    world.refresh("order_placed", T0)
    # Then vip.changed is published with from/to
    (transition,) = world.publisher.of(TagTransition)
    assert transition.event_name == "vip.changed" and (transition.from_, transition.to) == (None, True)


# ---- static tags ----------------------------------------------------------------------------------------------


def test_a_static_tag_keeps_its_first_value() -> None:
    # Given a person acquired through Douyin, tagged so
    first = AcquisitionTouch(platform="douyin", kind="click", at=T0)
    person = Profile(person_id="p1", brand_id="b", created_at=T0, updated_at=T0, facts=ProfileFacts(acquisition=first))
    world = World(profile=person)
    world.refresh("ad_clicked", T0)
    assert world.profile.tags["first_ad_platform"] == TagValue(value="douyin", since=T0)
    # When the attribute later reads another platform and the tag's triggers fire again (even a full refresh)
    later = AcquisitionTouch(platform="wechat_ads", kind="lead", at=T0 - DAY)
    world.store.profiles["p1"] = world.profile.model_copy(update={"facts": ProfileFacts(acquisition=later)})
    world.refresh("lead_submitted", T0 + DAY)
    world.refresh(FULL_REFRESH, T0 + 2 * DAY)
    # Then the static tag is untouched
    assert world.profile.tags["first_ad_platform"] == TagValue(value="douyin", since=T0)


def test_a_static_tag_is_set_again_when_its_validity_lapses() -> None:
    # Given a static tag valid for 30 days
    catalog = TagCatalog.from_documents(
        {
            "static.yaml": """
version: 1
tags:
  - name: joined_city
    description: The city when first seen, for 30 days
    category: basic
    kind: fact
    dynamic: false
    valid_days: 30
    freshness: real_time
    owner: crm
    rule: {value: {attr: city}}
"""
        }
    )
    person = Profile(person_id="p1", brand_id="b", created_at=T0, updated_at=T0, traits=Traits(city="Shanghai"))
    world = World(catalog=catalog, profile=person)
    world.refresh("identify", T0)
    assert world.profile.next_tag_expiry == T0 + 30 * DAY
    # When the city changes within the 30 days: the tag is kept
    world.store.profiles["p1"] = world.profile.model_copy(update={"traits": Traits(city="Hangzhou")})
    world.refresh("identify", T0 + 10 * DAY)
    assert world.tags()["joined_city"] == "Shanghai"
    # When the sweep passes day 30: it lapses and is set again from the current value, at day 30
    sweep(world.engine, world.store, world.store, T0 + 31 * DAY)
    assert world.profile.tags["joined_city"] == TagValue(
        value="Hangzhou", since=T0 + 30 * DAY, expires_at=T0 + 60 * DAY
    )


# ---- dynamic audiences ----------------------------------------------------------------------------------------


RECENT_BUYERS = audience("recent_buyers", {"tag": "purchased_last_7d", "eq": True})
BROWSERS = audience("browsers", {"agg": "count", "event": "page_view", "within_days": 1, "gte": 2})


def test_audience_entered_and_exited_follow_the_tags_they_read() -> None:
    # Given a dynamic audience of recent buyers
    world = World(audiences=[RECENT_BUYERS])
    world.add(order(T0))
    # When an order arrives
    world.refresh("order_placed", T0)
    # Then the person entered it (membership tag and audience.entered)
    assert world.tags()["audience:recent_buyers"] is True
    assert [(e.audience_id, e.at) for e in world.publisher.of(AudienceEntered)] == [("recent_buyers", T0)]
    assert world.profile.next_tag_expiry == T0 + 7 * DAY
    # When the window closes (the sweep, later than the edge)
    sweep(world.engine, world.store, world.store, T0 + 8 * DAY)
    # Then the person exited at the edge
    assert "audience:recent_buyers" not in world.tags()
    assert [(e.audience_id, e.at) for e in world.publisher.of(AudienceExited)] == [("recent_buyers", T0 + 7 * DAY)]


def test_an_audience_reading_events_no_tag_reads_wakes_tag_update_for_them() -> None:
    # Given an audience of people who viewed 2 pages within a day (no bundled tag reads page views)
    world = World(audiences=[BROWSERS])
    assert TagRules(CATALOG).select("page_view").empty
    assert TagRules(CATALOG, [BROWSERS]).select("page_view").audiences == {"browsers"}
    # When two page views arrive
    world.add(page_view(T0))
    assert not world.refresh("page_view", T0).changes
    world.add(page_view(T0 + timedelta(hours=1)))
    outcome = world.refresh("page_view", T0 + timedelta(hours=1))
    # Then only the audience was evaluated (no tag), and the person entered it; a day after the first view they exit
    assert [c.tag for c in outcome.changes] == ["audience:browsers"]
    assert world.profile.next_tag_expiry == T0 + DAY
    sweep(world.engine, world.store, world.store, T0 + DAY)
    assert world.publisher.of(AudienceExited)[0].at == T0 + DAY


def test_a_deleted_audience_membership_leaves_on_the_next_full_evaluation() -> None:
    # Given a member of an audience that is then deleted
    world = World(audiences=[RECENT_BUYERS])
    world.add(order(T0))
    world.refresh("order_placed", T0)
    world.engine = TagEngine(CATALOG, StaticAudiences([]), world.store, world.store, world.store, world.publisher)
    # When a partial refresh runs the membership stays; an identity change (full) removes it with audience.exited
    world.refresh("order_placed", T0 + timedelta(hours=1))
    assert "audience:recent_buyers" in world.tags()
    world.refresh(IDENTITY_CHANGED, T0 + timedelta(hours=2))
    assert "audience:recent_buyers" not in world.tags()
    assert world.publisher.of(AudienceExited)[-1].audience_id == "recent_buyers"


# ---- history and as-of reads ----------------------------------------------------------------------------------


def test_as_of_reads_give_the_value_inside_and_outside_a_window() -> None:
    # Given an order at t, tagged at t, and the sweep after the window closed
    world = World()
    world.add(order(T0))
    world.refresh("order_placed", T0)
    sweep(world.engine, world.store, world.store, T0 + 9 * DAY)
    read = world.store.tags_as_of
    # Then inside the window the flag reads true (since t); at and after the edge it is absent; before t, nothing
    assert read("p1", T0 + 3 * DAY)["purchased_last_7d"] == TagValue(value=True, since=T0)
    assert read("p1", T0 + 7 * DAY - timedelta(seconds=1), ["purchased_last_7d"]) == {
        "purchased_last_7d": TagValue(value=True, since=T0)
    }
    assert "purchased_last_7d" not in read("p1", T0 + 7 * DAY)
    assert "purchased_last_7d" not in read("p1", T0 + 8 * DAY)
    assert read("p1", T0 - timedelta(seconds=1)) == {}
    # And the as-of answer equals what the engine computes at that instant from the same events
    fresh = World()
    fresh.add(order(T0))
    for at in (T0 + 3 * DAY, T0 + 8 * DAY):
        fresh.store.profiles["p1"] = fresh.profile.model_copy(update={"tags": {}, "next_tag_expiry": None})
        fresh.refresh(SWEEP, at)
        assert {k: v.value for k, v in read("p1", at).items()} == fresh.tags()


def test_every_change_is_one_history_entry_with_its_cause() -> None:
    # Given an order processed for bus event "bus-1"
    world = World()
    world.add(order(T0))
    outcome = world.refresh("order_placed", T0, cause="bus-1")
    # Then each new tag is one entry (old None) caused by bus-1, and they match the outcome's changes
    entries = world.store.history["p1"]
    assert entries == list(outcome.changes)
    assert {e.cause for e in entries} == {"bus-1"} and all(e.old is None and e.at == T0 for e in entries)
    assert {e.tag for e in entries} == set(world.tags())


# ---- predictive and batch tags --------------------------------------------------------------------------------


def test_predictive_tags_follow_a_new_score_and_other_models_cost_nothing() -> None:
    # Given a person scored by the response model
    score = ModelScore(score=0.72, model_version="v3", scored_at=T0)
    world = World(profile=Profile(person_id="p1", brand_id="b", created_at=T0, updated_at=T0))
    world.store.profiles["p1"] = world.profile.model_copy(update={"scores": {"response": score}})
    # When the scoring stage refreshes after writing the score
    world.refresh(scored("response"), T0)
    # Then the predictive tag is set; a model no rule reads skips without a read
    assert world.tags() == {"response_propensity": "high"}
    reads = world.store.reads
    assert world.refresh(scored("unread_model"), T0).skipped and world.store.reads == reads


def test_batch_freshness_tags_are_computed_only_by_the_full_refresh() -> None:
    # Given cake orders in March of two years
    world = World()
    world.add(order(T0 - 365 * DAY, category="birthday_cake"), order(T0, category="birthday_cake"))
    # When an order refreshes the tags, then the nightly full refresh runs
    world.refresh("order_placed", T0)
    assert "cake_months" not in world.tags()
    report = sweep(world.engine, world.store, world.store, T0 + timedelta(hours=15), full=True)
    # Then only the full refresh computed the batch tag
    assert report.refreshed == 1 and world.tags()["cake_months"] == "3"


def test_the_full_refresh_reads_each_timeline_with_the_scan_not_once_per_person() -> None:
    # Given a store that reads profiles with their timelines in bulk (as the DynamoDB adapter does for one shard)
    class BulkStore(InMemoryTagStore):
        bulk_reads = 0

        def scan_with_timelines(self, shard: int, total_shards: int) -> Iterator[tuple[Profile, list[TimelineEntry]]]:
            self.bulk_reads += 1
            for profile in self.scan_shard(shard, total_shards):
                yield profile, InMemoryProfiles.timeline(self, profile)  # the read of the scan: not counted

    world = World()
    world.store = BulkStore(list(world.store.profiles.values()))
    world.engine = TagEngine(CATALOG, StaticAudiences(), world.store, world.store, world.store, world.publisher)
    world.add(order(T0 - 365 * DAY, category="birthday_cake"), order(T0, category="birthday_cake"))
    # When the nightly full refresh runs
    report = sweep(world.engine, world.store, world.store, T0 + timedelta(hours=15), full=True)
    # Then it read the timelines with its one scan, none one by one, and computed the tags from them
    assert report.refreshed == 1 and world.tags()["cake_months"] == "3"
    assert world.store.bulk_reads == 1 and world.store.timeline_reads == 0


def test_tags_no_definition_yields_are_removed_by_a_full_evaluation_only() -> None:
    # Given a person still carrying a tag of the old built-in family (rfm_score)
    person = Profile(
        person_id="p1", brand_id="b", created_at=T0, updated_at=T0, tags={"rfm_score": TagValue(value="555", since=T0)}
    )
    world = World(profile=person)
    world.add(order(T0))
    world.refresh("order_placed", T0)
    assert world.tags()["rfm_score"] == "555"
    # When the identity changes (a full recompute): it is removed, with its history entry
    world.refresh(IDENTITY_CHANGED, T0 + DAY)
    assert "rfm_score" not in world.tags()
    assert [(e.old, e.new) for e in world.store.history["p1"] if e.tag == "rfm_score"] == [("555", None)]


# ---- writes and delivery --------------------------------------------------------------------------------------


def test_a_concurrent_write_makes_the_engine_recompute_on_fresh_state() -> None:
    # Given a writer that moves the profile's version once before our write
    world = World()
    world.add(order(T0))
    world.store.interfere = 1
    # When tags are refreshed: Then the first write conflicts, the second attempt succeeds
    outcome = world.refresh("order_placed", T0)
    assert outcome.attempts == 2 and world.tags()["lifecycle"] == "growth"
    # And a writer that never lets go makes it give up with the conflict (SQS retries later)
    world.add(order(T0 + DAY))
    world.store.interfere = 10
    with pytest.raises(ConflictError):
        world.refresh("order_placed", T0 + DAY)


def test_a_redelivered_trigger_announces_again_what_its_first_attempt_wrote() -> None:
    # Given an order whose tags were written but whose announcements failed to publish
    world = World()
    world.add(order(T0))
    world.publisher.fail = 1
    with pytest.raises(PublishError):
        world.refresh("order_placed", T0, cause="bus-7")
    assert world.tags()["purchased_last_7d"] is True and world.publisher.published == []
    # When SQS redelivers the same trigger
    outcome = world.refresh("order_placed", T0 + timedelta(seconds=30), cause="bus-7", redelivered=True)
    # Then nothing new changed, but the first attempt's changes are announced
    assert not outcome.changes and outcome.published >= 2
    (changed,) = world.publisher.of(TagsChanged)
    assert {c.tag for c in changed.changes} >= {"purchased_last_7d", "lifecycle"}
    assert [t.to for t in world.publisher.of(TagTransition)] == ["growth"]


def test_an_unknown_person_is_reported_not_found() -> None:
    # Given no such person; When refreshed; Then nothing is written or published
    world = World()
    outcome = world.engine.refresh("nobody", "order_placed", T0)
    assert not outcome.found and not outcome.wrote and world.publisher.published == []


# ---- the audience port and audience order ---------------------------------------------------------------------


def test_cached_audiences_load_once_per_ttl_and_keep_the_same_tuple_when_unchanged() -> None:
    # Given a loader and a clock
    loads: list[int] = []
    clock = [0.0]
    stored = [RECENT_BUYERS, audience("frozen", {"tag": "lifecycle", "eq": "mature"}, kind="static")]

    def load() -> list[AudienceDefinition]:
        loads.append(1)
        return list(stored)

    cached = CachedAudiences(load, ttl_seconds=60, clock=lambda: clock[0])
    # When read twice within the TTL: one load, static audiences left out
    first = cached.definitions()
    clock[0] = 59
    assert cached.definitions() is first and len(loads) == 1
    assert [a.id for a in first] == ["recent_buyers"]
    # When the TTL passed with nothing changed: reloaded, but the same tuple (the engine keeps its prepared rules)
    clock[0] = 61
    assert cached.definitions() is first and len(loads) == 2
    # When a definition was added: the next load after the TTL returns it
    stored.append(BROWSERS)
    clock[0] = 200
    assert [a.id for a in cached.definitions()] == ["recent_buyers", "browsers"]


def test_an_audience_reading_another_is_evaluated_after_it_and_wakes_with_it() -> None:
    # Given "loyal_recent" = member of recent_buyers and of 2+ orders (ids sort the other way round)
    loyal = audience(
        "a_loyal_recent", {"all": [{"audience": "recent_buyers", "eq": True}, {"attr": "order_count", "gte": 2}]}
    )
    rules = TagRules(CATALOG, [loyal, RECENT_BUYERS])
    assert rules.audience_order == ["recent_buyers", "a_loyal_recent"]
    assert rules.select("order_placed").audiences == {"recent_buyers", "a_loyal_recent"}
    # When two orders arrive
    world = World(audiences=[loyal, RECENT_BUYERS])
    world.add(order(T0), order(T0 + timedelta(hours=1)))
    world.refresh("order_placed", T0 + timedelta(hours=1))
    # Then both memberships are set in one refresh, and both leave together when the window closes
    assert world.tags()["audience:recent_buyers"] is True and world.tags()["audience:a_loyal_recent"] is True
    sweep(world.engine, world.store, world.store, T0 + 8 * DAY)
    assert {e.audience_id for e in world.publisher.of(AudienceExited)} == {"recent_buyers", "a_loyal_recent"}


# ---- batch jobs publish together --------------------------------------------------------------------------------


class BatchRecordingPublisher(RecordingPublisher):
    """Counts the publish_batches calls and notes how many tag writes the store had made when each came."""

    def __init__(self, store: InMemoryTagStore, fail: int = 0) -> None:
        super().__init__(fail)
        self.store = store
        self.batches: list[tuple[int, int]] = []  # (groups in the call, store writes done by then)

    def publish_batches(self, batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[str]:
        self.batches.append((len(batches), self.store.writes))
        return super().publish_batches(batches)


def _scored_world(persons: int, fail: int = 0) -> tuple[InMemoryTagStore, BatchRecordingPublisher, TagEngine]:
    score = ModelScore(score=0.72, model_version="v3", scored_at=T0)
    store = InMemoryTagStore(
        [
            Profile(person_id=f"p{i}", brand_id="b", created_at=T0, updated_at=T0, scores={"response": score})
            for i in range(persons)
        ]
    )
    publisher = BatchRecordingPublisher(store, fail)
    return store, publisher, TagEngine(CATALOG, StaticAudiences(), store, store, store, publisher)


def test_a_sweep_publishes_its_persons_announcements_together_after_writing_them() -> None:
    # Given three scored persons whose predictive tag is not set yet
    store, publisher, engine = _scored_world(3)
    # When the nightly full refresh runs
    report = sweep(engine, store, store, T0, full=True)
    # Then every person's changes are announced in one go, once all three were written
    assert report.refreshed == 3 and report.changed == 3
    assert publisher.batches == [(3, 3)]
    assert len(publisher.of(TagsChanged)) == 3


def test_a_sweep_whose_publish_fails_fails_the_run() -> None:
    # Given a bus that refuses the sweep's announcements
    store, publisher, engine = _scored_world(2, fail=1)
    # When the full refresh runs, then it raises rather than reporting success
    with pytest.raises(PublishError):
        sweep(engine, store, store, T0, full=True)
    assert store.writes == 2 and publisher.published == []


def test_the_tags_following_new_scores_are_announced_per_chunk_not_per_person() -> None:
    # Given three persons just scored by the response model
    store, publisher, engine = _scored_world(3)
    scored_persons = ScoredPersons(store)
    for person_id in ("p0", "p1", "p2"):
        scored_persons.scored.setdefault("response", set()).add(person_id)
    # When their predictive tags follow the scores
    changes = refresh_scored(engine, scored_persons, T0)
    # Then the three changes are published in one call, after the three writes
    assert changes == 3 and publisher.batches == [(3, 3)]


def test_a_batch_of_scores_is_written_with_the_tags_reading_them_in_one_write_per_person() -> None:
    # Given two persons as the scorer read them, one of whose tags change before the write
    store, publisher, engine = _scored_world(2)
    read = {pid: store.profiles[pid] for pid in ("p0", "p1")}
    store.profiles["p1"] = read["p1"].model_copy(update={"tags_version": read["p1"].tags_version + 1})
    fresh = ModelScore(score=0.1, model_version="v4", scored_at=T0)
    scored_persons = ScoredPersons(store, engine, T0)
    # When the batch of new scores is put
    scored_persons.put_scores([(read["p0"], {"response": fresh}), (read["p1"], {"response": fresh})])
    # Then p0's score and predictive tag came in one write and were announced after it
    assert store.profiles["p0"].scores["response"] == fresh
    assert store.profiles["p0"].tags["response_propensity"].value == "low" and scored_persons.changes == 1
    assert publisher.batches == [(1, 1)]
    # and p1, changed since the read, got its score alone and waits for refresh_scored
    assert store.profiles["p1"].scores["response"] == fresh and "response_propensity" not in store.profiles["p1"].tags
    assert scored_persons.scored == {"response": {"p1"}}
    assert refresh_scored(engine, scored_persons, T0) == 1
    assert store.profiles["p1"].tags["response_propensity"].value == "low"
