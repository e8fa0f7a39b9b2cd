"""The tag replay of imported history: what it leaves, and what its history says as of any past instant, is what a
fresh evaluation of the events up to then gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp.identity.history import plan_history
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import load_org
from cdp.profile.models import Profile, fold_event
from cdp.tags.backfill import replay_tags, to_millis
from cdp.tags.catalog import bundled_catalog
from cdp.tags.history import as_of
from cdp.tags.recompute import recompute
from cdp.tags.records import event_records
from cdp.tags.selection import FULL_REFRESH, SWEEP, TagRules
from cdp_local.demo.brand import generate_brand

BRAND = load_org().brand("demo-brand")
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
RULES = TagRules(bundled_catalog())


@pytest.fixture(scope="module")
def persons() -> list[tuple[Profile, list[CanonicalEvent]]]:
    events = [parse_event(e) for e in generate_brand(customers=40, seed=3, now=NOW).events]
    load = plan_history(events, BRAND, fold=False)
    owner = {k: p.person_id for p in load.profiles for k in p.identifiers}
    mine: dict[str, list[CanonicalEvent]] = {p.person_id: [] for p in load.profiles}
    for anchor, event in load.filed:
        if anchor in owner:
            mine[owner[anchor]].append(event)
    return [(p, mine[p.person_id]) for p in load.profiles if mine[p.person_id]]


def fresh(person: Profile, events: list[CanonicalEvent], at: datetime, trigger: str) -> dict[str, object]:
    """The tags of a person evaluated once at `at`, from nothing, over the events up to then."""
    profile = person.model_copy(deep=True)
    before = sorted((e for e in events if e.occurred_at <= at), key=lambda e: (e.occurred_at, e.event_id))
    for event in before:
        fold_event(profile, event, BRAND)
    records = sorted((r for e in before for r in event_records(e)), key=lambda r: (r.ts, r.event_id))
    result = recompute(RULES, RULES.select(trigger), profile, records, at, "fresh")
    return {name: tag.value for name, tag in result.tags.items()}


def test_the_replay_leaves_what_a_fresh_full_evaluation_gives(
    persons: list[tuple[Profile, list[CanonicalEvent]]],
) -> None:
    assert len(persons) >= 30
    for person, events in persons:
        replayed = replay_tags(RULES, person, events, BRAND, NOW, "import")
        assert {n: t.value for n, t in replayed.profile.tags.items()} == fresh(person, events, NOW, FULL_REFRESH)
        assert replayed.profile.next_tag_expiry is None or replayed.profile.next_tag_expiry > NOW


def test_history_as_of_each_event_is_the_fresh_evaluation_then(
    persons: list[tuple[Profile, list[CanonicalEvent]]],
) -> None:
    # What an event can change (its trigger's selection, as tag_update evaluates it) reads, as of the event, what
    # evaluating everything afresh from the events up to then gives: past values are true when they are recorded.
    checked = 0
    for person, events in persons[:15]:
        replayed = replay_tags(RULES, person, events, BRAND, NOW, "import")
        assert all(h.cause == "import" for h in replayed.history)
        for event in events:
            at = to_millis(event.occurred_at)
            names = sorted(RULES.select(event.event_type).tags)
            past = {n: t.value for n, t in as_of(replayed.history, at, names).items()}
            expected = {n: v for n, v in fresh(person, events, at, SWEEP).items() if n in names}
            assert past == expected, (person.person_id, event.event_type, at)
            checked += len(names)
    assert checked >= 100


def test_each_event_is_folded_once_into_the_profile(persons: list[tuple[Profile, list[CanonicalEvent]]]) -> None:
    person, events = max(persons, key=lambda p: len(p[1]))
    replayed = replay_tags(RULES, person, events, BRAND, NOW, "import")
    assert replayed.profile.facts.event_count == len(events)
    assert replayed.profile.identifiers == person.identifiers
