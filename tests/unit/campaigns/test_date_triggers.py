"""A person's own dates as journey triggers: when each kind falls in its window, and the key that makes it fire once
per period (a birthday once a year, a month once, a predicted purchase once per predicted date)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from cdp.campaigns.triggers import DateTrigger, LocationTrigger, Trigger, WeatherTrigger
from cdp.profile.models import Profile, ProfileFacts, TagValue, Traits

T = datetime(2026, 1, 1, tzinfo=UTC)


def person(birthday: date | None = None, **tags: str | int) -> Profile:
    return Profile(
        person_id="p",
        brand_id="b",
        created_at=T,
        updated_at=T,
        traits=Traits(birthday=birthday),
        tags={name: TagValue(value=value, since=T) for name, value in tags.items()},
    )


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 5, 2), None),  # 8 days before
        (date(2026, 5, 3), (date(2026, 5, 10), "birthday:2026")),  # 7 days before: in
        (date(2026, 5, 10), (date(2026, 5, 10), "birthday:2026")),  # the day itself (a late sweep still enters)
        (date(2026, 5, 11), None),  # after: the next one is a year away
    ],
)
def test_a_birthday_falls_in_its_window_once_a_year(today: date, expected: tuple[date, str] | None) -> None:
    assert DateTrigger(of="birthday", days_before=7).occasion(person(date(1990, 5, 10)), today) == expected


def test_a_birthday_early_in_january_is_next_years_and_29_february_counts_on_the_28th() -> None:
    trigger = DateTrigger(of="birthday", days_before=7)
    assert trigger.occasion(person(date(1990, 1, 3)), date(2026, 12, 30)) == (date(2027, 1, 3), "birthday:2027")
    assert trigger.occasion(person(date(2000, 2, 29)), date(2027, 2, 21)) == (date(2027, 2, 28), "birthday:2027")
    assert trigger.occasion(person(), date(2027, 2, 21)) is None  # no birthday known


def test_a_month_tag_fires_before_the_first_of_each_listed_month() -> None:
    trigger = DateTrigger(of="month_tag", tag="cake_months", days_before=7)
    cakes = person(cake_months="3,11")
    assert trigger.occasion(cakes, date(2026, 2, 22)) == (date(2026, 3, 1), "cake_months:2026-03")
    assert trigger.occasion(cakes, date(2026, 2, 21)) is None
    assert trigger.occasion(cakes, date(2026, 10, 28)) == (date(2026, 11, 1), "cake_months:2026-11")
    assert trigger.occasion(person(cake_months="12"), date(2026, 11, 25)) == (date(2026, 12, 1), "cake_months:2026-12")
    assert trigger.occasion(person(cake_months="1"), date(2026, 12, 28)) == (date(2027, 1, 1), "cake_months:2027-01")
    assert (
        trigger.occasion(person(), date(2026, 2, 22)) is None
        and trigger.occasion(person(cake_months="x,13"), date(2026, 2, 22)) is None
    )


def test_a_predicted_purchase_is_the_last_order_plus_the_cycle() -> None:
    trigger = DateTrigger(of="predicted_purchase", days_before=3)
    buyer = person(repurchase_cycle_days=30)
    buyer.facts = ProfileFacts(last_order_at=datetime(2026, 3, 1, 15, tzinfo=UTC))
    assert trigger.occasion(buyer, date(2026, 3, 28)) == (date(2026, 3, 31), "predicted_purchase:2026-03-31")
    assert trigger.occasion(buyer, date(2026, 3, 27)) is None
    assert trigger.occasion(person(repurchase_cycle_days=30), date(2026, 3, 28)) is None  # no order yet


def test_a_predicted_purchase_counts_from_the_local_date_of_the_last_order() -> None:
    # an order at 00:30 on 2 March in Shanghai is 16:30 UTC on 1 March: its cycle counts from 2 March there
    trigger = DateTrigger(of="predicted_purchase", days_before=0)
    late = person(repurchase_cycle_days=30)
    late.facts = ProfileFacts(last_order_at=datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    shanghai = ZoneInfo("Asia/Shanghai")
    assert trigger.occasion(late, date(2026, 4, 1), shanghai) == (date(2026, 4, 1), "predicted_purchase:2026-04-01")
    assert trigger.occasion(late, date(2026, 3, 31)) == (date(2026, 3, 31), "predicted_purchase:2026-03-31")  # UTC


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"date": {"of": "month_tag"}}, "names the tag"),
        ({"date": {"of": "birthday", "tag": "x"}}, "remove `tag`"),
        ({"date": {"of": "birthday", "days_before": 91}}, "less than or equal to 90"),
        ({"date": {"of": "birthday", "at": "09:00:30"}}, "HH:MM"),
        ({"weather": {"city": "Shanghai"}}, "exactly one of below_c or above_c"),
        ({"weather": {"below_c": 5, "above_c": 30}}, "exactly one of below_c or above_c"),
        ({"location": {"place": "office"}}, "place"),
        ({"location": {"place": "home", "between": ["18:00", "18:00"]}}, "two different times"),
        ({"date": {"of": "birthday"}, "event": "identify"}, "exactly one of event"),
        ({"date": {"of": "birthday"}, "where": {"sku": "x"}}, "filters an event trigger"),
    ],
)
def test_a_bad_trigger_is_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Trigger.model_validate(raw)


def test_weather_crosses_its_threshold_only_from_the_other_side() -> None:
    cold = WeatherTrigger(city="Shanghai", below_c=5)
    assert cold.covers("shanghai") and not cold.covers("Beijing") and WeatherTrigger(below_c=5).covers("Beijing")
    assert cold.crossed(8.0, 3.0) and cold.crossed(None, 3.0)
    assert not cold.crossed(4.0, 3.0) and not cold.crossed(8.0, 5.0)
    hot = WeatherTrigger(above_c=30)
    assert hot.crossed(29.5, 31.0) and not hot.crossed(31.0, 33.0)


def test_a_location_trigger_covers_its_place_stores_and_local_hours() -> None:
    evening = LocationTrigger(place="home", between=(time(17, 0), time(21, 0)))
    assert evening.covers("home", None, datetime(2026, 1, 1, 19, 30))
    assert not evening.covers("home", None, datetime(2026, 1, 1, 21, 0))
    assert not evening.covers("store", "SH-01", datetime(2026, 1, 1, 19, 30))
    night = LocationTrigger(place="home", between=(time(22, 0), time(2, 0)))  # across midnight
    assert night.covers("home", None, datetime(2026, 1, 1, 23, 0)) and night.covers(
        "home", None, datetime(2026, 1, 2, 1)
    )
    stores = LocationTrigger(place="store", store_ids=["SH-01"])
    assert stores.covers("store", "SH-01", datetime(2026, 1, 1, 12)) and not stores.covers(
        "store", "BJ-02", datetime(2026, 1, 1, 12)
    )
