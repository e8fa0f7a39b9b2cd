"""Timelines are read only for persons whose verdict the events could change (three-valued decision first)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from cdp.audiences.evaluation import AudiencePlan, AudienceScanner, decide_without_events
from cdp.audiences.models import ExportRequest, SizeRequest
from cdp.audiences.service import AudienceService
from cdp.audiences.validation import parse_definition
from cdp.tags.evaluate import RuleEvaluator
from cdp.tags.records import person_record
from tests.unit.audiences.conftest import NOW, CountingProfiles, definition, make_profile, order_event

RETURNED = {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}


def _evaluator(**profile: Any) -> RuleEvaluator:
    return RuleEvaluator(person_record(make_profile("p", **profile), []), NOW)


def _conditions(*definitions: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(d["id"], parse_definition(d).condition()) for d in definitions]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ({"attr": "city", "eq": "Beijing"}, [RETURNED], False),  # the include fails: events cannot help
        ({"attr": "city", "eq": "Shanghai"}, [RETURNED], None),  # the exclude aggregates: the events decide
        ({"attr": "city", "eq": "Shanghai"}, [{"tag": "lifecycle", "eq": "dormant"}], True),
        ({"attr": "city", "eq": "Shanghai"}, [{"tag": "lifecycle", "eq": "mature"}, RETURNED], False),
        ({"any": [RETURNED, {"attr": "city", "eq": "Shanghai"}]}, [], True),  # one true part decides `any`
        ({"any": [RETURNED, {"attr": "city", "eq": "Beijing"}]}, [], None),
        ({"all": [RETURNED, {"attr": "city", "eq": "Beijing"}]}, [], False),  # one false part decides `all`
        ({"not": RETURNED}, [], None),
        ({"not": {"attr": "city", "eq": "Beijing"}}, [], True),
    ],
)
def test_a_verdict_is_decided_without_events_only_when_no_aggregate_could_change_it(
    include: dict[str, Any], exclude: list[dict[str, Any]], expected: bool | None
) -> None:
    # Given a Shanghai person tagged mature, When the audience is decided without events, Then as expected
    conditions = _conditions(definition("a", include=include, exclude=exclude))
    assert decide_without_events(conditions, _evaluator(city="Shanghai", tags={"lifecycle": "mature"})) is expected


def test_a_referenced_audience_that_aggregates_leaves_its_readers_undecided() -> None:
    # Given "buyers" (aggregates events) and "sh_buyers" reading it
    buyers = definition("buyers", "dynamic", include=RETURNED)
    readers = definition(
        "sh_buyers", include={"all": [{"audience": "buyers", "eq": True}, {"attr": "city", "eq": "Shanghai"}]}
    )
    conditions = _conditions(buyers, readers)
    # Then a Shanghai person is undecided (the events decide "buyers"), a Beijing person is out either way
    assert decide_without_events(conditions, _evaluator(city="Shanghai")) is None
    assert decide_without_events(conditions, _evaluator(city="Beijing")) is False
    # And a reference to an audience without aggregates is decided through its condition, not a stored tag
    gold = definition("gold", "dynamic", include={"attr": "member_level", "eq": "gold"})
    gold_sh = definition("gold_sh", include={"audience": "gold", "eq": True}, exclude=[RETURNED])
    gold_conditions = _conditions(gold, gold_sh)
    assert (
        decide_without_events(gold_conditions, _evaluator(member_level="silver", tags={"audience:gold": True})) is False
    )
    assert decide_without_events(gold_conditions, _evaluator(member_level="gold")) is None


def _random_condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    leaves: list[dict[str, Any]] = [
        {"attr": "city", "eq": "Shanghai"},
        {"tag": "lifecycle", "in": ["mature", "dormant"]},
        {"attr": "consent_sms", "eq": True},
        {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 1},
        {"agg": "count", "event": "order_placed", "within_days": 30, "gte": 3},
        {"agg": "sum", "event": "order_placed", "field": "amount_minor", "within_days": 60, "gt": 8000},
    ]
    if depth >= 2 or rng.random() < 0.4:
        return rng.choice(leaves)
    kind = rng.choice(["all", "any", "not"])
    if kind == "not":
        return {"not": _random_condition(rng, depth + 1)}
    return {kind: [_random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}


def test_skipping_timelines_never_changes_a_membership() -> None:
    # Given persons with every mix of city, lifecycle, consent and recent orders
    rng = random.Random(5)
    profiles = CountingProfiles()
    for i in range(48):
        pid = f"p{i:02d}"
        profiles.profiles[pid] = make_profile(
            pid,
            city="Shanghai" if i % 2 else "Beijing",
            tags={"lifecycle": ("mature", "dormant", "new")[i % 3]},
            consent={"sms": bool(i % 5)},
        )
        profiles.add_events(pid, [order_event(pid, NOW - timedelta(days=d + 1), 3000) for d in range(i % 4)])
    for trial in range(60):
        # When a random audience (include, excludes, consent) is evaluated by the scanner
        raw = definition(
            f"a{trial}",
            include=_random_condition(rng),
            exclude=[_random_condition(rng) for _ in range(rng.randint(0, 2))],
            **({"consent_channel": "sms"} if rng.random() < 0.5 else {}),
        )
        plan = AudiencePlan(definition=parse_definition(raw), version=1)
        scanner = AudienceScanner(profiles, plan, NOW)
        for profile in profiles.profiles.values():
            events = [entry.event for entry in profiles.timeline(profile)]
            full = RuleEvaluator(person_record(profile, events), NOW).audience(
                plan.definition.id, plan.conditions[0][1]
            )
            # Then its verdict is the full evaluation's, timeline read or not
            assert scanner.evaluate(profile).member is (full.value is True), (raw, profile.person_id)


def test_size_and_export_read_timelines_only_for_persons_the_events_could_decide(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    # Given 40 persons, half in Shanghai, and an audience of Shanghai persons without two orders this month
    for i in range(40):
        pid = f"p{i:02d}"
        profiles.profiles[pid] = make_profile(pid, city="Shanghai" if i % 2 else "Beijing")
        profiles.add_events(pid, [order_event(pid, NOW - timedelta(days=d + 1)) for d in range(i % 3)])
    service.define(definition("sh_light", include={"attr": "city", "eq": "Shanghai"}, exclude=[RETURNED]))
    # When it is sized and exported
    size = service.size("sh_light", SizeRequest(segments=4, sample_segments=4))  # per person, not one scan
    manifest = service.export("sh_light", ExportRequest(segments=4))
    # Then the counts are right and only the 20 Shanghai persons' timelines were read, each time
    expected = sum(1 for i in range(40) if i % 2 and i % 3 < 2)
    assert size.exact and size.estimate == expected == manifest.count
    assert size.read_timelines and size.timings.timelines_read == 20 and size.profiles_scanned == 40
    assert profiles.timeline_reads == 40


def test_one_segment_reads_the_events_with_the_profiles_in_one_scan(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    # Given the same persons and audience as above
    for i in range(40):
        pid = f"p{i:02d}"
        profiles.profiles[pid] = make_profile(pid, city="Shanghai" if i % 2 else "Beijing")
        profiles.add_events(pid, [order_event(pid, NOW - timedelta(days=d + 1)) for d in range(i % 3)])
    service.define(definition("sh_light", include={"attr": "city", "eq": "Shanghai"}, exclude=[RETURNED]))
    bulk_reads: list[tuple[int, int]] = []
    scan_with_timelines = profiles.scan_with_timelines

    def spy(shard: int, total: int) -> Any:
        bulk_reads.append((shard, total))
        return scan_with_timelines(shard, total)

    profiles.scan_with_timelines = spy  # type: ignore[method-assign]
    # When it is sized and exported over one segment
    size = service.size("sh_light", SizeRequest(segments=1))
    manifest = service.export("sh_light", ExportRequest(segments=1))
    # Then each is one scan with the timelines (no timeline read of its own), with the same members as segments give
    assert bulk_reads == [(0, 1), (0, 1)]
    assert size.exact and [c.model_dump() for c in size.sample] == [{"segment": 0, "profiles": 40, "members": 14}]
    assert size.estimate == manifest.count == service.size("sh_light", SizeRequest(segments=4)).estimate == 14
    assert size.timings.timelines_read == size.profiles_scanned == manifest.profiles_scanned == 40
    assert size.timings.timelines_ms == 0
    four = service.export("sh_light", ExportRequest(segments=4))
    assert list(service._store.members(four)) == list(service._store.members(manifest))
