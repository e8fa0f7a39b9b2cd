"""Journeys entered by a sweep over the profiles (a person's own date, a weather reading crossing a threshold) and by a
location signal, on the real campaigns table under moto: a sweep opens once per day at the trigger's local time,
scans the profiles shard by shard and page by page (resuming from the page's cursor when a tick runs out of time),
enters each person once per period, and a reading crosses a threshold only from the other side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest

from cdp import topology
from cdp.campaigns.journeys_dynamodb import DynamoSweepStore
from cdp.campaigns.sweeps import (
    SWEEP_SHARDS,
    LocationSignal,
    Sweep,
    WeatherSignal,
    on_location,
    on_weather,
    open_date_sweeps,
    run_sweeps,
)
from cdp.profile.dynamodb import DynamoProfileStore, profile_item, profile_tags_item
from cdp.profile.models import Profile, TagValue, Traits
from cdp.profile.ports import ScanPage
from cdp.shared.dynamo import to_item
from cdp_local.runtime.core import create_table
from tests.integration.campaigns.journey_world import BRAND, ORG, T0, World, live


def sms(body: str) -> dict[str, Any]:
    return {"send": {"channel": "sms", "template": {"body": body}}}


def add(world: World, person_id: str, brand: str = BRAND, **traits: Any) -> None:
    world.profiles.profiles[person_id] = Profile(
        person_id=person_id, brand_id=brand, created_at=T0, updated_at=T0, traits=Traits(**traits)
    )


def messaged(world: World) -> list[str]:
    return sorted(r.person_ids[0] for r in world.orders.sent)


def sweep(world: World, at: datetime) -> tuple[int, int]:
    world.clock.at = at
    opened = open_date_sweeps(world.engine, world.sweeps, ORG, at)
    report = run_sweeps(world.engine, world.sweeps, world.profiles, lambda: 60.0)
    return opened, report.entered


def test_a_birthday_journey_enters_each_person_once_in_the_week_before(world: World) -> None:
    trigger = {"date": {"of": "birthday", "days_before": 7, "at": "09:00"}}
    live(world, trigger=trigger, exit_on=[], steps=[sms("A birthday cake on us this week")], holdout=0.0)
    add(world, "ann", birthday=date(1990, 12, 10))
    add(world, "bob", birthday=date(1985, 12, 13))
    add(world, "cem")  # no birthday known
    add(world, "dan", brand="demo-outlet", birthday=date(1990, 12, 10))  # another brand's customer
    # Before 09:00 Shanghai time nothing is swept; at 09:00 the day's sweep opens once and enters ann (Dec 10 is 3 days
    # away), not bob (Dec 13 is 7 days away from the 6th... see below), nor cem, nor the other brand's dan
    assert sweep(world, datetime(2026, 12, 6, 0, 59, tzinfo=UTC)) == (0, 0)
    assert sweep(world, datetime(2026, 12, 6, 1, 0, tzinfo=UTC)) == (1, 2)
    assert messaged(world) == ["ann", "bob"]  # Dec 6 is exactly 7 days before bob's Dec 13: in the window
    assert world.sweeps.opened() == []  # every shard scanned: closed
    assert sweep(world, datetime(2026, 12, 6, 1, 1, tzinfo=UTC)) == (0, 0)  # asked again the same day: nothing
    # The next days' sweeps find them in the window again, and enter nobody twice for this year's birthday
    assert sweep(world, datetime(2026, 12, 7, 1, 0, tzinfo=UTC)) == (1, 0)
    assert sweep(world, datetime(2026, 12, 10, 1, 0, tzinfo=UTC)) == (1, 0)
    assert messaged(world) == ["ann", "bob"]
    results = world.service.journey(BRAND, "abandoned_cart")
    assert results.entered == {"treatment": 2, "holdout": 0}


def test_a_sweep_that_runs_out_of_time_goes_on_at_the_next_tick(world: World) -> None:
    live(world, trigger={"date": {"of": "birthday", "days_before": 3}}, exit_on=[], steps=[sms("x")], holdout=0.0)
    for i in range(40):
        add(world, f"p{i:02}", birthday=date(1990, 12, 8))
    at = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    world.clock.at = at
    assert open_date_sweeps(world.engine, world.sweeps, ORG, at) == 1
    left = iter([60.0, 60.0, 60.0, 1.0])  # three shards' worth of time, then too little for another
    first = run_sweeps(world.engine, world.sweeps, world.profiles, lambda: next(left, 1.0))
    assert first.shards == 3 and first.closed == 0
    (still_open,) = world.sweeps.opened()
    assert still_open.done == frozenset({0, 1, 2})
    second = run_sweeps(world.engine, world.sweeps, world.profiles, lambda: 60.0)
    assert second.shards == SWEEP_SHARDS - 3 and second.closed == 1
    assert first.entered + second.entered == 40 and len(messaged(world)) == 40


class PagedProfiles(DynamoProfileStore):
    """The profiles table read in pages of a few items (a table of many GB in small); notes each page it served:
    (shard, cursor it started from, cursor of the next page, persons on it)."""

    def __init__(self, page_items: int) -> None:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        super().__init__(topology.PROFILES_TABLE.local_name, client=ddb, org=ORG, page_items=page_items)
        self.pages: list[tuple[int, str | None, str | None, int]] = []

    def scan_page(self, shard: int, total_shards: int, cursor: str | None = None) -> ScanPage:
        page = super().scan_page(shard, total_shards, cursor)
        self.pages.append((shard, cursor, page.next_cursor, len(page.profiles)))
        return page


def cake_lovers(n: int, page_items: int = 3) -> PagedProfiles:
    """`n` persons on the profiles table whose `cake_months` tag (on their tags item, read with their person item)
    lists December; with 3 items a page, pages stop between a person's two items."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, topology.PROFILES_TABLE)
    december = {"cake_months": TagValue(value="12", since=T0)}
    for i in range(n):
        person = Profile(person_id=f"c{i:03}", brand_id=BRAND, created_at=T0, updated_at=T0, tags=december)
        for item in (profile_item(person), profile_tags_item(person, 1)):
            ddb.put_item(TableName=topology.PROFILES_TABLE.local_name, Item=to_item(item))
    return PagedProfiles(page_items)


def open_cake_sweep(world: World) -> None:
    trigger = {"date": {"of": "month_tag", "tag": "cake_months", "days_before": 7}}
    live(world, trigger=trigger, exit_on=[], steps=[sms("December: your cake month")], holdout=0.0)
    world.clock.at = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 3 days before December 1
    assert open_date_sweeps(world.engine, world.sweeps, ORG, world.clock.at) == 1


def one_page() -> Callable[[], float]:
    """What a tick with time for one page has left: enough before its first page, too little before the next."""
    left = iter([60.0])
    return lambda: next(left, 1.0)


def test_a_shard_larger_than_a_tick_is_resumed_from_its_page_cursor(world: World) -> None:
    profiles = cake_lovers(60)
    open_cake_sweep(world)
    # Each tick has time for one page only: a shard of several pages takes several ticks
    entered = ticks = 0
    while world.sweeps.opened():
        report = run_sweeps(world.engine, world.sweeps, profiles, one_page())
        entered, ticks = entered + report.entered, ticks + 1
        assert report.pages == 1
        shard, _, next_cursor, _ = profiles.pages[-1]
        if next_cursor is not None:  # the shard is begun: the sweep keeps where its next page starts
            (still_open,) = world.sweeps.opened()
            assert still_open.cursors == {shard: next_cursor} and shard not in still_open.done
        assert ticks < 500
    # Every page after one that left a cursor is the same shard's, from that cursor: resumed, nothing re-read
    for (shard, _, next_cursor, _), (then, cursor, _, _) in zip(profiles.pages, profiles.pages[1:], strict=False):
        if next_cursor is not None:
            assert (then, cursor) == (shard, next_cursor)
    per_shard = Counter(shard for shard, *_ in profiles.pages)
    assert sorted(per_shard) == list(range(SWEEP_SHARDS)) and max(per_shard.values()) >= 3
    assert ticks == len(profiles.pages)
    # Everyone entered exactly once, their tags read whichever page their tags item came on
    assert entered == 60 and messaged(world) == [f"c{i:03}" for i in range(60)]


class StoppingSweeps(DynamoSweepStore):
    """A tick that stops (its time up) after a page's persons were entered, before the page is recorded: at the first
    page of a shard not its last that entered someone."""

    def __init__(self, profiles: PagedProfiles) -> None:
        super().__init__(topology.CAMPAIGNS_TABLE.local_name, boto3.client("dynamodb", region_name="us-east-1"))
        self.profiles = profiles

    def mark(self, sweep: Sweep, shard: int, cursor: str | None = None) -> None:
        if cursor is not None and self.profiles.pages[-1][3] > 0:
            raise TimeoutError("the tick's time is up")
        super().mark(sweep, shard, cursor)


def test_a_sweep_stopped_mid_shard_reads_the_page_again_and_enters_nobody_twice(world: World) -> None:
    profiles = cake_lovers(60)
    open_cake_sweep(world)
    with pytest.raises(TimeoutError):
        run_sweeps(world.engine, StoppingSweeps(profiles), profiles, lambda: 60.0)
    shard, cursor, next_cursor, found = profiles.pages[-1]
    assert next_cursor is not None and found > 0
    before, scanned = messaged(world), len(profiles.pages)
    assert len(before) >= found  # the page's persons were entered, the page not recorded
    (stopped,) = world.sweeps.opened()
    assert stopped.cursors.get(shard) == cursor and shard not in stopped.done
    # The next tick reads that page again from the cursor recorded before it, and goes on to the end
    report = run_sweeps(world.engine, world.sweeps, profiles, lambda: 60.0)
    assert profiles.pages[scanned][:2] == (shard, cursor)
    assert report.closed == 1 and len(before) + report.entered == 60
    assert messaged(world) == [f"c{i:03}" for i in range(60)]  # nobody twice


def test_a_cold_snap_enters_everyone_in_the_city_once_when_the_reading_crosses(world: World) -> None:
    trigger = {"weather": {"city": "Shanghai", "below_c": 5}}
    live(world, trigger=trigger, exit_on=[], steps=[sms("Cold tonight: hot drinks 2 for 1")], holdout=0.0)
    add(world, "sh1", city="Shanghai")
    add(world, "sh2", city="shanghai")
    add(world, "bj", city="Beijing")

    def reading(celsius: float, at: datetime, city: str = "Shanghai") -> list[str]:
        signal = WeatherSignal(brand_id=BRAND, city=city, temperature_c=celsius, observed_at=at)
        return on_weather(world.engine, world.sweeps, ORG, signal)

    assert reading(8.0, T0) == []  # above the threshold: nothing
    # A reading kept by a delivery that then failed before opening its sweep is handled again when redelivered
    crash = WeatherSignal(brand_id=BRAND, city="Shanghai", temperature_c=8.5, observed_at=T0 + timedelta(minutes=1))
    world.sweeps.reading(crash)
    assert world.sweeps.reading(crash).kept and world.sweeps.reading(crash).previous == 8.0
    assert reading(9.0, T0 - timedelta(hours=1)) == []  # an older reading arriving late crosses nothing
    assert reading(3.0, T0 + timedelta(hours=1)) == ["Shanghai 3 C: sweep opened for abandoned_cart"]
    assert reading(2.0, T0 + timedelta(hours=2)) == []  # still below: no new crossing
    assert reading(-1.0, T0 + timedelta(hours=2), city="Beijing") == []  # another city's journey is not this one
    report = run_sweeps(world.engine, world.sweeps, world.profiles, lambda: 60.0)
    assert report.entered == 2 and messaged(world) == ["sh1", "sh2"]
    # Warmer, then cold again the same day: the sweep of that day was done, nobody is entered twice
    reading(7.0, T0 + timedelta(hours=2, minutes=30))
    assert reading(1.0, T0 + timedelta(hours=3)) == []  # 23:00 in Shanghai: the same local day
    # The next local day it crosses again: a new sweep, and re-entry follows the journey's reentry_after_days (7)
    reading(7.0, T0 + timedelta(hours=5))
    assert reading(1.0, T0 + timedelta(hours=6)) == ["Shanghai 1 C: sweep opened for abandoned_cart"]
    assert run_sweeps(world.engine, world.sweeps, world.profiles, lambda: 60.0).entered == 0


def test_near_home_in_the_evening_by_the_persons_own_clock(world: World) -> None:
    trigger = {"location": {"place": "home", "between": ["17:00", "21:00"]}}
    live(world, trigger=trigger, exit_on=[], steps=[sms("Dinner sorted? 15% off delivery tonight")], holdout=0.0)
    add(world, "sh")  # the brand's zone: T0 is 20:00 in Shanghai
    add(world, "ny", timezone="America/New_York")  # 07:00 in New York

    def home(person: str, at: datetime) -> list[str]:
        return on_location(world.engine, LocationSignal(brand_id=BRAND, person_id=person, place="home", at=at))

    assert home("sh", T0) == ["sh entered abandoned_cart (treatment)"]
    assert home("ny", T0) == []
    assert home("sh", T0 + timedelta(minutes=30)) == []  # once per place and local day
    assert home("ny", T0 + timedelta(hours=11)) == ["ny entered abandoned_cart (treatment)"]  # 18:00 in New York
    assert home("nobody", T0) == [] and messaged(world) == ["ny", "sh"]


def test_a_store_geofence_enters_only_for_the_named_stores(world: World) -> None:
    trigger = {"location": {"place": "store", "store_ids": ["SH-01"]}}
    live(world, trigger=trigger, exit_on=[], steps=[sms("Welcome in: today's fresh cakes")], holdout=0.0)
    add(world, "ann")

    def visit(store: str) -> list[str]:
        signal = LocationSignal(brand_id=BRAND, person_id="ann", place="store", store_id=store, at=T0)
        return on_location(world.engine, signal)

    assert visit("BJ-02") == [] and visit("SH-01") == ["ann entered abandoned_cart (treatment)"]
