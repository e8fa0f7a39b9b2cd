"""The synthetic brand: valid canonical events, a consistent ground truth, planted hard cases, seasonality."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cdp.ingest.events import EVENT_TYPES, PLATFORM_EVENT_TYPES, parse_event
from cdp_local.demo import DEFAULT_NOW, PAST_CAMPAIGN_ID, SyntheticBrand, generate_brand, identifier_key
from cdp_local.demo.brand import PAST_CAMPAIGN_SHARE
from cdp_local.demo.truth import event_keys


def _owner(brand: SyntheticBrand, event: dict[str, Any]) -> str:
    owners = {brand.truth[k] for k in event_keys(event) if k in brand.truth}
    assert len(owners) == 1, event
    return owners.pop()


def test_same_seed_same_brand_other_seed_other_brand() -> None:
    # Given two brands from one seed and one from another
    # When generated
    first, second = generate_brand(300, seed=11), generate_brand(300, seed=11)
    other = generate_brand(300, seed=12)
    # Then the same seed reproduces every event and the truth; another seed does not
    assert first.events == second.events
    assert first.truth == second.truth
    assert first.counts == second.counts
    assert other.events != first.events


def test_every_event_is_a_valid_canonical_event(brand: SyntheticBrand) -> None:
    # Given the default brand
    # When every event is parsed by the platform's own model
    parsed = [parse_event(event) for event in brand.events]
    # Then all validate (phones are valid CN mobiles, e-mails valid, totals cover lines) and all types appear
    assert len(parsed) == brand.counts.events
    assert {e.event_type for e in parsed} == set(EVENT_TYPES) - PLATFORM_EVENT_TYPES  # those the platform emits
    # and every identifier normalizes to a key the truth or the shared set knows
    keys = {i.key for e in parsed for i in e.identifiers}
    assert keys == set(brand.truth) | brand.shared_identifiers


def test_history_is_sorted_spans_18_months_and_stays_in_the_past(brand: SyntheticBrand) -> None:
    # Given the default brand
    stamps = [e["occurred_at"] for e in brand.events]
    # When its timestamps are read
    first = datetime.fromisoformat(stamps[0])
    last = datetime.fromisoformat(stamps[-1])
    # Then they are sorted and cover ~18 months before `now`
    assert stamps == sorted(stamps)
    assert last < DEFAULT_NOW
    assert DEFAULT_NOW - first > timedelta(days=500)
    assert len({e["event_id"] for e in brand.events}) == len(brand.events)


def test_volume_sources_and_channel_identifiers_look_like_reality(brand: SyntheticBrand) -> None:
    # Given the default brand
    counts = brand.counts
    # When its volumes are read
    # Then ~8 events per person over at least 6 customer-facing sources
    assert counts.persons == 2500
    assert 6 <= counts.events / counts.persons <= 17  # incl. monthly coupon drops, four randomized SMS tests
    assert {"app", "web", "mini_program", "wechat_oa", "tmall", "jd", "pos"} <= set(counts.events_by_source)
    # and each channel carries the identifiers it really knows
    kinds: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for event in brand.events:
        for ident in event["identifiers"]:
            kinds[event["source"]].add((ident["type"], ident.get("scope")))
        if event["source"] == "pos":
            assert event.get("store_id"), event
    assert {("phone", None), ("device_id", None)} <= kinds["app"]
    assert {("email", None), ("device_id", None)} <= kinds["web"]
    assert {("wechat_openid", "wx-mini-app"), ("wechat_unionid", None)} <= kinds["mini_program"]
    assert kinds["wechat_oa"] == {("wechat_openid", "wx-oa"), ("wechat_unionid", None)}
    assert {("platform_buyer_id", "tmall"), ("phone", None)} == kinds["tmall"]
    assert {("platform_buyer_id", "jd"), ("phone", None)} == kinds["jd"]
    assert {("member_card", None), ("phone", None)} <= kinds["pos"]


def test_hard_cases_are_planted_and_counted(brand: SyntheticBrand) -> None:
    # Given the default brand's hard-case counts
    hard = brand.counts.hard_cases
    # When read
    # Then every hard case is present in useful numbers
    assert hard.seed_scenario_persons >= 50
    assert hard.store_tablets == 3
    assert hard.max_customers_per_tablet >= 100
    assert hard.family_devices >= 10
    assert 2 * hard.family_devices <= hard.family_members <= 3 * hard.family_devices
    assert 0 < hard.typo_unlinkable < hard.typo_identifiers
    assert hard.returns == brand.counts.events_by_type["order_returned"] > 0
    assert hard.member_level_conflicts > 0
    assert brand.counts.shared_identifiers == hard.store_tablets + hard.family_devices
    assert hard.sms_consent_granted > hard.sms_consent_refused > 0
    assert hard.sms_consent_withdrawn > 0 and hard.email_consent_withdrawn > 0


def test_seed_scenario_chains_phone_device_email_openid(brand: SyntheticBrand) -> None:
    # Given the persons of the A/B/C scenario
    scenario = {p.person_id: p for p in brand.persons if p.seed_scenario}
    # When their events are grouped by source
    shapes: dict[str, set[tuple[str, frozenset[str]]]] = defaultdict(set)
    for event in brand.events:
        keys = [k for k in event_keys(event) if k in brand.truth]
        if keys and brand.truth[keys[0]] in scenario:
            shapes[brand.truth[keys[0]]].add((event["source"], frozenset(k.split(":")[0] for k in keys)))
    # Then A knows phone+device, B e-mail+the same device, C the same e-mail+an OpenID, and nothing else links them
    complete = 0
    for person_id, seen in shapes.items():
        person = scenario[person_id]
        assert person.web_device == person.app_device
        has_a = ("app", frozenset({"phone", "device_id"})) in seen
        has_b = ("web", frozenset({"email", "device_id"})) in seen
        has_c = ("mini_program", frozenset({"email", "wechat_openid"})) in seen
        complete += has_a and has_b and has_c
        assert not any("wechat_unionid" in kinds for _, kinds in seen)
    assert complete >= 30


def test_shared_devices_are_used_by_several_persons_and_kept_out_of_the_truth(brand: SyntheticBrand) -> None:
    # Given the shared identifiers
    users: dict[str, set[str]] = defaultdict(set)
    # When the owners of the identifiers seen beside them are collected
    for event in brand.events:
        keys = event_keys(event)
        for shared in brand.shared_identifiers.intersection(keys):
            users[shared].update(brand.truth[k] for k in keys if k in brand.truth)
    # Then every shared device has 2+ true persons behind it, tablets hundreds, and none is in the truth
    assert set(users) == brand.shared_identifiers
    assert all(len(persons) >= 2 for persons in users.values())
    assert sum(len(persons) >= 100 for persons in users.values()) >= 1
    assert not brand.shared_identifiers & set(brand.truth)


def test_typos_belong_to_their_person_but_lone_ones_are_not_linkable(brand: SyntheticBrand) -> None:
    # Given the typo'd identifiers
    typos = brand.typo_identifiers
    # When looked up in the truth and in the linkable truth
    # Then each belongs to a true person and differs from that person's correctly typed value
    persons = {p.person_id: p for p in brand.persons}
    assert typos
    for typo in typos:
        person = persons[brand.truth[typo]]
        real = {identifier_key("phone", person.phone)} | (
            {identifier_key("email", person.email)} if person.email else set()
        )
        assert typo not in real
        assert typo.split(":")[0] in ("phone", "email")
    # and exactly the typos seen only alone are missing from the linkable truth
    unlinkable = [t for t in typos if t not in brand.linkable_truth]
    assert len(unlinkable) == brand.counts.hard_cases.typo_unlinkable
    assert len(typos) == brand.counts.hard_cases.typo_identifiers


def test_cake_orders_concentrate_in_the_birth_month(brand: SyntheticBrand) -> None:
    # Given every order with a birthday cake, mapped back to its true person
    persons = {p.person_id: p for p in brand.persons}
    in_birth_month = total = 0
    for event in brand.events:
        if event["event_type"] != "order_placed":
            continue
        if any(line["category"] == "birthday_cake" for line in event["properties"]["lines"]):
            person = persons[_owner(brand, event)]
            local = datetime.fromisoformat(event["occurred_at"]).astimezone(ZoneInfo(person.timezone))
            total += 1
            in_birth_month += local.month == person.birthday.month
    # When the share bought in the buyer's birth month is computed
    # Then it is far above the 1-in-12 of a flat year
    assert total > 300
    assert in_birth_month / total > 0.7
    assert brand.counts.hard_cases.cake_orders == total


def test_air_conditioners_sell_in_summer_and_orders_peak_before_11_11(brand: SyntheticBrand) -> None:
    # Given every order by calendar month and day
    orders = [e for e in brand.events if e["event_type"] == "order_placed"]
    months = Counter(datetime.fromisoformat(e["occurred_at"]).month for e in orders if _has(e, "air_conditioner"))
    # When the air-conditioner months and the 11.11 run-up are counted
    summer = months[6] + months[7] + months[8]
    per_day: Counter[date] = Counter(datetime.fromisoformat(e["occurred_at"]).astimezone(UTC).date() for e in orders)
    rush = [n for d, n in per_day.items() if d.month == 11 and d.day <= 11]
    # Then ~all air conditioners sell in summer, and a day before 11.11 sees twice the average day
    assert summer / sum(months.values()) > 0.9
    assert (sum(rush) / 22) > 2 * (len(orders) / 548)


def _has(event: dict[str, Any], category: str) -> bool:
    return any(line["category"] == category for line in event["properties"]["lines"])


def test_past_campaign_was_a_randomized_test_on_consenting_persons_and_moved_them(brand: SyntheticBrand) -> None:
    # Given the autumn SMS campaign in the history
    past = brand.past_campaign
    sent = [
        e
        for e in brand.events
        if e["event_type"] == "message_delivered" and e["properties"].get("campaign_id") == PAST_CAMPAIGN_ID
    ]
    # When its messages and the orders in its window are read
    attributed = [
        e
        for e in brand.events
        if e["event_type"] == "order_placed" and e["properties"].get("campaign_id") == PAST_CAMPAIGN_ID
    ]
    # Then about half of the eligible persons (PAST_CAMPAIGN_SHARE) got it, by SMS from the brand's CRM, on 15 September
    assert PAST_CAMPAIGN_SHARE - 0.08 < len(past.recipients) / len(past.eligible) < PAST_CAMPAIGN_SHARE + 0.08
    # and the CRM recorded the held-out persons (the send log records the treated)
    assigned = [
        e
        for e in brand.events
        if e["event_type"] == "campaign_assigned" and e["properties"]["campaign_id"] == PAST_CAMPAIGN_ID
    ]
    held_out = {_owner(brand, e) for e in assigned}
    assert {e["properties"]["group"] for e in assigned} == {"holdout"} and len(held_out) == len(assigned)
    assert held_out == set(past.eligible) - set(past.recipients)
    assert len(sent) == len(past.recipients)
    assert {e["source"] for e in sent} == {"crm"}
    assert {e["occurred_at"][:10] for e in sent} == {"2026-09-15"}
    assert all(e["identifiers"][0]["type"] == "phone" for e in sent)
    assert {_owner(brand, e) for e in sent} == set(past.recipients)
    # and treated persons bought more often than eligible persons left out
    untreated = len(past.eligible) - len(past.recipients)
    assert len(past.buyers_treated) / len(past.delivered) > len(past.buyers_untreated) / untreated
    assert len(attributed) == past.attributed_orders > 0


def test_identifier_keys_use_the_platform_normalization(brand: SyntheticBrand) -> None:
    # Given phones written in several shapes by the channels
    shapes = {i["value"][:3] for e in brand.events for i in e["identifiers"] if i["type"] == "phone"}
    # When normalized
    # Then they become E.164 keys, as the platform makes them
    assert "+86" in shapes and len(shapes) > 1
    assert (
        identifier_key("phone", "+86 138 0013 8000") == identifier_key("phone", "13800138000") == "phone:+8613800138000"
    )
    assert all(
        k.startswith(("phone:+86", "email:", "device_id:", "wechat_", "member_card:", "platform_", "ad_click_id:"))
        for k in brand.truth
    )
