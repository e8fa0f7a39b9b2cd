"""Family members a person tells the brand about (a child's birthday for the cake reminder): folded into the
profile whatever the order, updated by the latest telling, unioned on a merge, refused with the field path when
malformed, and read by the `family_birthday` date trigger and the message templates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cdp.campaigns.triggers import DateTrigger
from cdp.channels.models import SendBatchRequest
from cdp.channels.service import template_context
from cdp.channels.templates import render
from cdp.ingest.events import parse_event
from cdp.profile.models import Profile, apply_event, merge_profiles

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LILY = {"relation": "child", "name": "Lily", "birthday": "2019-06-12"}
TOM = {"relation": "child", "name": "Tom", "birthday": "2021-06-08"}
WEI = {"relation": "spouse", "name": "Wei", "birthday": "1988-06-10"}


def told(n: int, *family: dict[str, Any], source: str = "crm") -> Any:
    return parse_event(
        {
            "event_id": f"e{n}",
            "event_type": "identify",
            "source": source,
            "brand_id": "bakery",
            "occurred_at": (T0 + timedelta(days=n)).isoformat(),
            "identifiers": [{"type": "phone", "value": "13800138001"}],
            "properties": {"family": list(family)},
        }
    )


def person(pid: str, *events: Any) -> Profile:
    profile = Profile(person_id=pid, brand_id="bakery", created_at=T0, updated_at=T0)
    for event in events:
        profile = apply_event(profile, event)
    return profile


def test_the_latest_telling_of_a_member_wins_in_any_fold_order() -> None:
    events = [told(1, LILY, WEI), told(2, {**LILY, "birthday": "2019-06-21", "name": "lily"}), told(3, TOM)]
    forward, backward = person("p", *events), person("p", *reversed(events))
    assert forward.facts == backward.facts
    family = forward.facts.family
    assert sorted(family) == ["child:lily", "child:tom", "spouse:wei"]  # lily and Lily are one member
    assert family["child:lily"].birthday == date(2019, 6, 21)  # corrected on day 2


def test_a_merge_unions_the_members_and_keeps_each_ones_latest_telling() -> None:
    a = person("a", told(1, LILY))
    b = person("b", told(2, {**LILY, "birthday": "2019-06-13"}, WEI, source="app"))
    merged = merge_profiles(a, b)
    assert sorted(merged.facts.family) == ["child:lily", "spouse:wei"]
    assert merged.facts.family["child:lily"].birthday == date(2019, 6, 13)
    assert merge_profiles(b, a).facts.family == merged.facts.family


@pytest.mark.parametrize(
    ("member", "where"),
    [
        ({"relation": "cousin", "birthday": "2019-06-12"}, ("properties", "family", 0, "relation")),
        ({"relation": "child", "birthday": "1800-01-01"}, ("properties", "family", 0, "birthday")),
        ({"relation": "child"}, ("properties", "family", 0, "birthday")),
        ({"relation": "child", "birthday": "2019-06-12", "age": 7}, ("properties", "family", 0, "age")),
    ],
)
def test_a_malformed_member_is_refused_with_its_field_path(member: dict[str, Any], where: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        told(1, member)
    assert any(error["loc"][-len(where) :] == where for error in caught.value.errors())


def test_more_than_ten_members_is_refused() -> None:
    with pytest.raises(ValidationError, match="family"):
        told(1, *({"relation": "child", "name": f"c{i}", "birthday": "2019-06-12"} for i in range(11)))


def test_a_family_birthday_trigger_enters_before_each_members_birthday_of_the_relation_asked() -> None:
    profile = person("p", told(1, LILY, TOM, WEI))
    children = DateTrigger(of="family_birthday", relation="child", days_before=7)
    anyone = DateTrigger(of="family_birthday", days_before=7)
    # Tom's (8 June) comes first; the spouse's (10 June) only counts for a trigger on any member
    assert children.occasion(profile, date(2026, 6, 1)) == (date(2026, 6, 8), "family_birthday:child:tom:2026")
    assert anyone.occasion(profile, date(2026, 6, 9)) == (date(2026, 6, 10), "family_birthday:spouse:wei:2026")
    assert children.occasion(profile, date(2026, 6, 9)) == (date(2026, 6, 12), "family_birthday:child:lily:2026")
    assert children.occasion(profile, date(2026, 5, 31)) is None  # 8 days before Tom's
    assert children.occasion(person("q"), date(2026, 6, 1)) is None  # no family known


def test_a_family_birthday_trigger_takes_no_tag_and_relation_goes_only_with_it() -> None:
    with pytest.raises(ValidationError, match="remove `tag`"):
        DateTrigger(of="family_birthday", tag="x")
    with pytest.raises(ValidationError, match="`relation` filters a family_birthday"):
        DateTrigger(of="birthday", relation="child")


def test_a_template_names_the_member_whose_birthday_comes_next() -> None:
    profile = person("p", told(1, LILY, TOM, WEI))
    request = SendBatchRequest(
        campaign_id="c", run_id="r", brand_id="bakery", step="s0", channel="sms",
        template={"body": "x"}, person_ids=["p"],
    )  # fmt: skip
    context = template_context(profile, request, date(2026, 6, 9))
    assert [m["name"] for m in context["family"]] == ["Wei", "Lily", "Tom"]  # Tom's was yesterday: next year
    body = "{% for m in family if m.relation == 'child' %}{% if loop.first %}{{ m.name }}{% endif %}{% endfor %}"
    assert render(f"A cake for {body}'s birthday?", context) == "A cake for Lily's birthday?"


def test_the_360_view_lists_the_family_members() -> None:
    from cdp.app.profile_views import person_summary
    from cdp.org import ScopeRef, load_org

    org = load_org()
    profile = person("p", told(1, LILY, WEI), told(2, TOM))
    summary = person_summary(profile, org, org.brand("bakery"), ScopeRef(brand_id="bakery"))
    assert summary is not None
    assert [(m.relation, m.name) for m in summary.family] == [("child", "Lily"), ("child", "Tom"), ("spouse", "Wei")]
