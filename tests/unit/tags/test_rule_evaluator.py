"""The in-memory evaluator: aggregates over windows, NULL semantics, and the next instant a value changes by itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from cdp.tags.catalog import bundled_catalog
from cdp.tags.evaluate import RuleEvaluator
from cdp.tags.records import DAY, EventRecord, PersonRecord, epoch
from cdp.tags.rules import Condition, Ref, TagRule

NOW = epoch(datetime(2026, 11, 1, tzinfo=UTC))
CONDITION: TypeAdapter[Any] = TypeAdapter(Condition)


def order(i: int, days_ago: float, *, store: str = "s1", total: int = 10_000, source: str = "pos") -> EventRecord:
    return EventRecord(
        f"pos#o{i}", "order_placed", NOW - int(days_ago * DAY), source=source, store_id=store, amount_minor=total
    )


def line(i: int, days_ago: float, category: str, n: int = 0) -> EventRecord:
    return EventRecord(f"pos#o{i}#{n}", "order_line", NOW - int(days_ago * DAY), category=category, quantity=1)


def person(events: list[EventRecord], **columns: Any) -> PersonRecord:
    return PersonRecord("p1", columns, events=sorted(events, key=lambda e: (e.ts, e.event_id)))


def check(p: PersonRecord, condition: dict[str, Any], at: int = NOW) -> tuple[Any, int | None]:
    computed = RuleEvaluator(p, at).condition(CONDITION.validate_python(condition))
    return computed.value, computed.next_change


def value(p: PersonRecord, ref: dict[str, Any], at: int = NOW) -> Any:
    return RuleEvaluator(p, at).tag("t", TagRule(value=Ref.model_validate(ref))).value


def test_window_counts_and_the_instant_the_oldest_event_leaves() -> None:
    p = person([order(1, 40), order(2, 20), order(3, 5)])
    hit, edge = check(p, {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2})
    assert hit is True and edge == NOW - 20 * DAY + 30 * DAY  # order 2 leaves the window then
    # one second past the edge, with no new event, the count is 1
    assert check(p, {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}, edge)[0] is False
    assert check(p, {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}, edge - 1)[0] is True


def test_events_after_the_evaluation_time_are_ignored_until_they_happen() -> None:
    p = person([order(1, -2)])  # stamped two days in the future (clock skew, or an as-of read)
    hit, edge = check(p, {"agg": "count", "event": "order_placed", "gte": 1})
    assert hit is False and edge == NOW + 2 * DAY


def test_days_since_flips_exactly_at_its_threshold() -> None:
    p = person([order(1, 80)])
    dormant = {"agg": "days_since_last", "event": "order_placed", "gte": 90}
    hit, edge = check(p, dormant)
    assert hit is False and edge == NOW - 80 * DAY + 90 * DAY
    assert check(p, dormant, edge)[0] is True and check(p, dormant, edge - 1)[0] is False


def test_age_is_full_years_and_changes_on_the_birthday() -> None:
    p = person([], birth_year=1986, birth_month=11, birth_day=2)
    assert value(p, {"attr": "age"}) == 39
    hit, edge = check(p, {"attr": "age", "between": [40, 60]})
    assert hit is False and edge == epoch(datetime(2026, 11, 2, tzinfo=UTC))
    leap = person([], birth_year=2000, birth_month=2, birth_day=29)
    assert value(leap, {"attr": "age"}, epoch(datetime(2025, 2, 28, tzinfo=UTC))) == 24
    assert value(leap, {"attr": "age"}, epoch(datetime(2025, 3, 1, tzinfo=UTC))) == 25


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"agg": "sum", "event": "order_placed", "field": "amount_minor"}, 36_000),
        ({"agg": "sum", "event": "order_placed", "field": "amount_minor", "within_days": 1}, 0),
        ({"agg": "min", "event": "order_placed", "field": "amount_minor"}, 0),
        ({"agg": "max", "event": "order_placed", "field": "amount_minor", "within_days": 1}, None),
        ({"agg": "last", "event": "order_placed", "field": "store_id"}, "s2"),
        ({"agg": "most_frequent", "event": "order_placed", "field": "store_id"}, "s1"),
        ({"agg": "distinct", "event": "order_placed", "field": "store_id"}, 2),
        ({"agg": "count", "event": "order_line", "where": {"category": ["cake", "tea"]}}, 3),
        ({"agg": "days_since_first", "event": "order_placed"}, 400),
        ({"agg": "cycle_days", "event": "order_placed"}, 97),  # (400 - 10) days over 4 gaps, floored
        ({"agg": "days_until_expected", "event": "order_placed"}, 87),  # 97 - 10 days since the last
        ({"agg": "usual_months", "event": "order_line", "where": {"category": "cake"}}, None),
        ({"agg": "usual_months", "event": "order_line", "where": {"category": "cake"}, "min_years": 1}, "9,10"),
    ],
)
def test_aggregates(ref: dict[str, Any], expected: Any) -> None:
    p = person(
        [
            order(1, 400, total=10_000),
            order(2, 100, total=6_000),
            order(3, 30, store="s2", total=10_000),
            order(4, 10, store="s2", total=10_000),
            order(5, 200, store="s1", total=0),  # a free order
            line(1, 400, "cake"),
            line(2, 100, "tea"),
            line(3, 30, "cake"),
        ]
    )
    assert value(p, ref) == expected


def test_most_frequent_ties_go_to_the_smallest_value_and_last_ties_to_the_greatest_id() -> None:
    p = person([order(1, 5, store="b"), order(2, 4, store="a"), order(3, 3, store="b"), order(4, 3, store="a")])
    assert value(p, {"agg": "most_frequent", "event": "order_placed", "field": "store_id"}) == "a"
    assert value(p, {"agg": "last", "event": "order_placed", "field": "store_id"}) == "a"  # o4 > o3 at the same second


def test_usual_months_need_distinct_years() -> None:
    march = [epoch(datetime(y, 3, 10, tzinfo=UTC)) for y in (2024, 2025)]
    p = PersonRecord("p", {}, events=[EventRecord(f"x#{t}", "order_line", t, category="cake") for t in march])
    assert value(p, {"agg": "usual_months", "event": "order_line", "where": {"category": "cake"}}) == "3"
    assert check(p, {"agg": "usual_months", "event": "order_line", "contains": 3})[0] is True
    assert check(p, {"agg": "usual_months", "event": "order_line", "contains": 4})[0] is False


def test_a_test_on_a_missing_value_is_false_and_its_negation_true() -> None:
    p = person([])
    assert check(p, {"attr": "city", "ne": "Shanghai"})[0] is False
    assert check(p, {"not": {"attr": "city", "eq": "Shanghai"}})[0] is True
    assert check(p, {"attr": "city", "exists": False})[0] is True
    assert check(p, {"agg": "count", "event": "order_placed", "eq": 0})[0] is True  # count of nothing is 0


def test_bool_and_number_are_never_equal() -> None:
    p = person([], consent_sms=True, order_count=1)
    assert check(p, {"attr": "consent_sms", "eq": True})[0] is True
    assert check(p, {"attr": "order_count", "eq": True})[0] is False


def test_bundled_lifecycle_moves_on_time_without_new_events() -> None:
    catalog = bundled_catalog()
    rule = catalog.definitions["lifecycle"].rule
    p = person([order(1, 80), order(2, 85)], order_count=2)
    growth = RuleEvaluator(p, NOW).tag("lifecycle", rule)
    assert growth.value == "growth" and growth.next_change == NOW + 10 * DAY
    assert RuleEvaluator(p, growth.next_change).tag("lifecycle", rule).value == "dormant"
    assert RuleEvaluator(person([], order_count=0), NOW).tag("lifecycle", rule).value == "introduction"


def test_a_tag_reading_another_tag_inherits_its_next_change() -> None:
    catalog = bundled_catalog()
    p = person([order(1, 5), order(2, 3), order(3, 1)], order_count=3, net_spend_minor=30_000)
    ev = RuleEvaluator(p, NOW)
    for name in catalog.order:
        ev.tag(name, catalog.definitions[name].rule)
    assert ev.tags["rfm_recency"].value == 5 and ev.tags["rfm_segment"].value == "loyal"
    assert ev.tags["rfm_segment"].next_change == ev.tags["rfm_recency"].next_change == NOW - DAY + 30 * DAY + DAY
