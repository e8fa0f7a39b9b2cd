"""Properties of deterministic resolution: without shared identifiers, any arrival order gives the same persons
(the connected components of identifiers seen together), and redelivery changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.identity.service import resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from tests.fakes.identity import InMemoryIdentityStore, NullPublisher

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _identifiers(person: int) -> list[dict[str, str]]:
    return [
        {"type": "phone", "value": f"+86138{person + 1:08d}"},
        {"type": "email", "value": f"p{person}@example.cn"},
        {"type": "device_id", "value": f"dev-{person}"},
        {"type": "member_card", "value": f"MC-{person:06d}"},
    ]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[int, list[int]]]:
    """Events as (person, indexes of that person's identifiers it carries)."""
    persons = draw(st.integers(min_value=1, max_value=5))
    events = draw(
        st.lists(
            st.tuples(st.integers(0, persons - 1), st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)),
            min_size=1,
            max_size=14,
        )
    )
    return events


def _event(n: int, person: int, picks: list[int]) -> CanonicalEvent:
    ids = _identifiers(person)
    return parse_event(
        {
            "event_id": f"e{n}",
            "event_type": "identify",
            "source": "app",
            "brand_id": "b",
            "occurred_at": (T0 + timedelta(minutes=n)).isoformat(),
            "identifiers": [ids[i] for i in picks],
        }
    )


def _partition(store: InMemoryIdentityStore) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, person in store.resolved().items():
        groups.setdefault(person, set()).add(key)
    return {frozenset(g) for g in groups.values()}


def _expected(events: list[CanonicalEvent]) -> set[frozenset[str]]:
    """Connected components of identifiers seen together (a tiny union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for event in events:
        keys = [i.key for i in event.identifiers]
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
        find(keys[0])
    groups: dict[str, set[str]] = {}
    for k in parent:
        groups.setdefault(find(k), set()).add(k)
    return {frozenset(g) for g in groups.values()}


@settings(max_examples=60, deadline=None)
@given(history=histories(), order=st.randoms(use_true_random=False))
def test_any_order_gives_the_connected_components(history: list[tuple[int, list[int]]], order: object) -> None:
    # Given events of distinct persons (no shared identifier), in their order and in a shuffled order
    events = [_event(n, person, picks) for n, (person, picks) in enumerate(history)]
    shuffled = list(events)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    partitions = []
    for sequence in (events, shuffled):
        store = InMemoryIdentityStore()
        for event in sequence:
            resolve_event(event, store, NullPublisher())
        partitions.append(_partition(store))
    # Then both orders end in the connected components of identifiers seen together
    assert partitions[0] == partitions[1] == _expected(events)


@settings(max_examples=30, deadline=None)
@given(history=histories())
def test_redelivering_every_event_changes_nothing(history: list[tuple[int, list[int]]]) -> None:
    # Given a resolved history
    events = [_event(n, person, picks) for n, (person, picks) in enumerate(history)]
    store = InMemoryIdentityStore()
    for event in events:
        resolve_event(event, store, NullPublisher())
    before = (_partition(store), {p: v.facts.event_count for p, v in store.persons.items()})
    # When every event is delivered again
    outcomes = [resolve_event(event, store, NullPublisher()) for event in events]
    # Then none is applied again and persons and counts are unchanged
    assert not any(o.applied for o in outcomes)
    assert (_partition(store), {p: v.facts.event_count for p, v in store.persons.items()}) == before


def test_seed_scenario_is_one_person_in_every_order_and_a_tablet_never_links() -> None:
    import itertools

    phone = {"type": "phone", "value": "13800138000"}
    device = {"type": "device_id", "value": "DEV-A"}
    email = {"type": "email", "value": "ann@example.cn"}
    openid = {"type": "wechat_openid", "value": "oX1", "scope": "wx-oa"}

    def ev(n: int, *ids: dict[str, str]) -> CanonicalEvent:
        return parse_event(
            {"event_id": f"s{n}", "event_type": "identify", "source": "web", "brand_id": "b",
             "occurred_at": (T0 + timedelta(minutes=n)).isoformat(), "identifiers": list(ids)}
        )  # fmt: skip

    platform_a, platform_b, platform_c = ev(1, phone, device), ev(2, email, device), ev(3, email, openid)
    for order in itertools.permutations([platform_a, platform_b, platform_c]):
        # Given platforms A (phone+device), B (e-mail+device), C (e-mail+OpenID) in any order
        store = InMemoryIdentityStore()
        for event in order:
            resolve_event(event, store, NullPublisher())
        # Then they are one person
        assert len(set(store.resolved().values())) == 1
    # Given a store tablet that three customers sign in on with their own phones
    store = InMemoryIdentityStore()
    tablet = {"type": "device_id", "value": "store-tablet"}
    for n in range(3):
        resolve_event(ev(10 + n, {"type": "phone", "value": f"1390000000{n}"}, tablet), store, NullPublisher())
    # Then they stay three persons and the tablet is quarantined
    phones = [store.resolved()[f"phone:+861390000000{n}"] for n in range(3)]
    assert len(set(phones)) == 3 and store.shared() == {"device_id:store-tablet"}
