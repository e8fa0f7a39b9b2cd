"""Concurrent identity resolution against the emulated DynamoDB (moto in-process, 8 worker threads).

Events that bridge the same persons (typos linking two customers, a family iPad and a store tablet that turn into
hubs after persons merged through them) are resolved by parallel workers in a shuffled order; optimistic
concurrency (version conditions in one TransactWriteItems) makes losers re-plan. The table must end in the
reference partition with every point counted once, and a second, concurrent redelivery of every event must change
nothing. moto's backend is not thread-safe, so each DynamoDB operation is made atomic as DynamoDB makes it: a
transaction as a whole, a BatchGetItem item by item (so readers may see a transaction half-way, as on AWS).
Workers resolve one event at a time, or in batches as identity_merge does (the batch's reads kept, each person's
events planned on what the batch made of them and the person written once at the end).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.errors import ConflictError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.resolution import ResolutionPlan
from cdp.identity.service import ResolutionOutcome, resolve_batch_reads, resolve_event, settle
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import load_org
from cdp.profile.models import Profile
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb
from cdp_local.runtime.moto_speedups import fast_dynamodb_responses, fast_transactions, partition_queries
from tests.fakes.identity_oracle import assert_converged, usable_keys

WORKERS = 8
ORG = load_org()
BRAND = ORG.brand("demo-brand")
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


class CountingStore(DynamoIdentityStore):
    """The real adapter, counting the optimistic-concurrency conflicts each event met."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conflicts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool:
        try:
            return super().commit(plan, event)
        except ConflictError:
            with self._lock:
                self.conflicts[event.dedupe_key if event else "-"] += 1
            raise


class LockedPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []
        self._lock = threading.Lock()

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        with self._lock:
            self.published.extend(events)
        return [str(i) for i in range(len(events))]


@pytest.fixture
def store() -> Iterator[CountingStore]:
    # The local runtime's moto speed-ups (transactions snapshot only the items they write), then one lock per
    # operation on top of them.
    with (
        mock_aws(),
        fast_transactions(),
        fast_dynamodb_responses(),
        partition_queries(),
        atomic_dynamodb(),
    ):
        db = boto3.client("dynamodb")
        create_table(db, topology.PROFILES_TABLE)
        yield CountingStore(topology.PROFILES_TABLE.local_name, client=db, org=ORG)


def _ids(person: int) -> dict[str, dict[str, str]]:
    return {
        "phone": {"type": "phone", "value": f"1390000{2000 + person}"},
        "email": {"type": "email", "value": f"c{person}@bakery.cn"},
        "device": {"type": "device_id", "value": f"dev-{person}"},
        "openid": {"type": "wechat_openid", "value": f"oW{person}", "scope": "wx-oa"},
        "card": {"type": "member_card", "value": f"MC9{person:03d}"},
    }


FAMILY_IPAD = {"type": "device_id", "value": "family-ipad-7"}
STORE_TABLET = {"type": "device_id", "value": "store-tablet-sh01"}
JUNK_DEVICE = {"type": "device_id", "value": "00000000-0000-0000-0000-000000000000"}


def world(seed: int = 7, persons: int = 8) -> list[CanonicalEvent]:
    """Seed-scenario persons (phone+device, e-mail+device, e-mail+OpenID, card+phone) with loyalty events, plus:
    typos chaining persons 0-1-2-3 into one (one's e-mail on another's order), one of whose devices then turns
    into a hub; a family iPad first seen with person 4's e-mail and person 5's OpenID (a bridge), later with
    persons 4's and 5's phones (a hub: the merged person splits again); a store tablet used by persons 0, 2, 6
    and 7 (a hub); junk device ids on some events."""
    rnd = random.Random(seed)
    specs: list[tuple[list[dict[str, str]], str]] = []
    types = ["points_changed", "order_placed", "card_balance_changed", "benefit_changed", "identify"]
    for p in range(persons):
        ids = _ids(p)
        for combo in (["phone", "device"], ["email", "device"], ["email", "openid"], ["card", "phone"]):
            specs.append(([ids[k] for k in combo], rnd.choice(types)))
        specs.append(([ids["card"]], "points_changed"))
        specs.append(([ids["openid"], JUNK_DEVICE], "order_placed"))
    specs += [
        ([_ids(0)["phone"], _ids(1)["email"]], "order_placed"),  # typo: person 1's e-mail on person 0's order
        ([_ids(1)["card"], _ids(2)["email"]], "points_changed"),  # and so on: persons 0-3 are one hot person
        ([_ids(3)["card"], _ids(2)["device"]], "points_changed"),
        ([_ids(2)["phone"], _ids(1)["device"]], "identify"),  # device 1 with a second phone: a hub inside it
        ([FAMILY_IPAD, _ids(4)["email"]], "points_changed"),
        ([FAMILY_IPAD, _ids(5)["openid"]], "card_balance_changed"),
        ([FAMILY_IPAD, _ids(4)["phone"]], "points_changed"),
        ([FAMILY_IPAD, _ids(5)["phone"]], "order_placed"),
        ([FAMILY_IPAD], "points_changed"),  # filed under the iPad: a hub at the end, so nobody's points
    ]
    specs += [([STORE_TABLET, _ids(p)["phone"]], "order_placed") for p in (0, 2, 6, 7)]
    specs += [([STORE_TABLET], "points_changed")]
    events = []
    for n, (identifiers, event_type) in enumerate(specs):
        events.append(
            parse_event(
                {
                    "event_id": f"w{n}",
                    "event_type": event_type,
                    "source": rnd.choice(["app", "pos", "mini_program"]),
                    "brand_id": BRAND.brand_id,
                    "store_id": rnd.choice([None, "sh01"]),
                    "occurred_at": (T0 + timedelta(minutes=rnd.randrange(30))).isoformat(),
                    "identifiers": identifiers,
                    "properties": _properties(rnd, event_type, n),
                }
            )
        )
    return events


def _properties(rnd: random.Random, event_type: str, n: int) -> dict[str, Any]:
    if event_type == "points_changed":
        return {"delta": rnd.randrange(-100, 600), "program": rnd.choice(["app", "dealer-sh01"]), "reason": "bonus"}
    if event_type == "order_placed":
        price = rnd.choice([1990, 25900])
        return {
            "order_id": f"o{n}",
            "lines": [{"sku": "cake", "category": "cake", "quantity": 1, "unit_price_minor": price}],
            "total_minor": price,
            "currency": "CNY",
        }
    if event_type == "card_balance_changed":
        card = rnd.choice(["SV-1", "GC-7"])
        kind = "gift_card" if card.startswith("GC") else "stored_value"
        return {"card_id": card, "kind": kind, "delta_minor": rnd.randrange(-2000, 10000), "currency": "CNY"}
    if event_type == "benefit_changed":
        return {"benefit_id": rnd.choice(["free-delivery", "birthday-gift"]), "granted": rnd.random() < 0.7}
    return {"name": rnd.choice(["Li Na", "Na Li"]), "member_level": rnd.choice(["silver", "gold"])}


def _resolve_concurrently(
    events: list[CanonicalEvent], store: DynamoIdentityStore, publisher: EventPublisher, batch: int = 0
) -> list[ResolutionOutcome]:
    """`batch`: each worker resolves its events as identity_merge does a batch of that many (reads first, each
    person written once at the end); 0: one event at a time."""
    start = threading.Barrier(WORKERS)

    def work(chunk: list[CanonicalEvent]) -> list[ResolutionOutcome]:
        start.wait()  # every worker starts at once: the bridged persons are contended from the first event
        if not batch:
            return [resolve_event(event, store, publisher, org=ORG) for event in chunk]
        out: list[ResolutionOutcome] = []
        for i in range(0, len(chunk), batch):
            with store.batch_reads(), store.deferred_writes():
                resolve_batch_reads(chunk[i : i + batch], store, ORG)
                out += [resolve_event(event, store, publisher, org=ORG) for event in chunk[i : i + batch]]
                settle(store, ORG)
        return out

    chunks = [events[i::WORKERS] for i in range(WORKERS)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(work, chunks))
    return [o for chunk in results for o in chunk]


def _table_state(store: DynamoIdentityStore, events: list[CanonicalEvent]) -> tuple[list[Profile], set[str]]:
    """Surviving persons (a scan of profile items without merged_into or dissolved) and the shared identifiers."""
    keys = sorted({k for e in events for k in usable_keys(e, BRAND)})
    records = store.lookup_identifiers(BRAND.namespace, keys)
    persons = sorted(store.scan_shard(0, 1), key=lambda p: p.person_id)
    owners = {k: store.person_for_identifier(BRAND.brand_id, k) for k in keys}  # the index, following merges
    shared = {k for k, r in records.items() if r.shared}
    assert owners == {k: p.person_id for p in persons for k in p.identifiers} | dict.fromkeys(shared)
    return persons, shared


@pytest.mark.parametrize(("shuffle", "batch"), [(11, 0), (26, 0), (11, 6), (26, 12)])
def test_parallel_workers_converge_to_the_reference_and_redelivery_changes_nothing(
    store: CountingStore, shuffle: int, batch: int
) -> None:
    # Given a shuffled world whose events bridge the same persons and turn three devices into hubs
    events = world()
    random.Random(shuffle).shuffle(events)
    publisher = LockedPublisher()
    # When 8 workers resolve them concurrently against the emulated table
    outcomes = _resolve_concurrently(events, store, publisher, batch)
    # Then every event is applied once, and the table holds the reference partition and hubs, with every point,
    # order and card balance on exactly one person (or under a hub) and each person the fold of its events
    assert all(o.applied for o in outcomes)
    persons, shared = _table_state(store, events)
    assert {"device_id:family-ipad-7", "device_id:store-tablet-sh01"} <= shared
    assert_converged(persons, shared, events, BRAND)
    filed = store.events_anchored(BRAND.namespace, {k for e in events for k in usable_keys(e, BRAND)})
    assert sorted(e.event_id for _, e in filed) == sorted(e.event_id for e in events)  # each filed exactly once
    assert store.conflicts, "the workers never contended: the test proves nothing about concurrency"
    before = [p.model_dump(mode="json") for p in persons]

    # When every event is redelivered, again by 8 concurrent workers in another order
    random.Random(shuffle + 1).shuffle(events)
    again = _resolve_concurrently(events, store, publisher, batch)
    # Then nothing is applied again and no profile item changed (not even its version)
    assert not any(o.applied for o in again)
    persons_after, shared_after = _table_state(store, events)
    assert [p.model_dump(mode="json") for p in persons_after] == before and shared_after == shared
