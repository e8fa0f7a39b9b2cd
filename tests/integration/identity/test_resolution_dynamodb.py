"""Identity resolution against the emulated DynamoDB table (moto): links, merges, shared devices, redelivery."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.errors import ConflictError
from cdp.identity.dynamodb import DynamoIdentityStore, TimelineKeyTakenError
from cdp.identity.service import ResolutionOutcome, resolve_batch_reads, resolve_event, settle
from cdp.ingest.events import CanonicalEvent, SourceChannel, parse_event
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]

    def names(self) -> list[str]:
        return [e.event_name for e in self.published]


@pytest.fixture
def store() -> Iterator[DynamoIdentityStore]:
    with mock_aws():
        db = boto3.client("dynamodb")
        create_table(db, topology.PROFILES_TABLE)
        yield DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=db)


_counter = itertools.count()


def event(
    *identifiers: dict[str, str], event_type: str = "identify", minutes: int = 0, **props: object
) -> CanonicalEvent:
    n = next(_counter)
    return parse_event(
        {
            "event_id": f"evt-{n}",
            "event_type": event_type,
            "source": "app",
            "brand_id": "brand-1",
            "occurred_at": (T0 + timedelta(minutes=minutes or n)).isoformat(),
            "identifiers": list(identifiers),
            "properties": props,
        }
    )


PHONE = {"type": "phone", "value": "13800138000"}
PHONE_2 = {"type": "phone", "value": "13900139000"}
EMAIL = {"type": "email", "value": "Ann@Example.com"}
DEVICE = {"type": "device_id", "value": "DEV-1"}
TABLET = {"type": "device_id", "value": "store-tablet-1"}
OPENID = {"type": "wechat_openid", "value": "oABC", "scope": "wx-oa"}


def test_seed_scenario_three_platforms_become_one_person(store: DynamoIdentityStore) -> None:
    # Given platform A (phone + device), B (email + same device) and C (same email + OpenID)
    publisher = RecordingPublisher()
    # When the events are resolved in the order C, A, B (B bridges the two persons created before it)
    c = resolve_event(event(EMAIL, OPENID), store, publisher)
    a = resolve_event(event(PHONE, DEVICE), store, publisher)
    b = resolve_event(event(EMAIL, DEVICE), store, publisher)
    # Then one person remains: it holds every identifier and the three events
    assert b.merged_ids and c.person_id != a.person_id
    survivor = store.get(a.person_id)
    assert survivor is not None and survivor.person_id == store.get(c.person_id).person_id  # type: ignore[union-attr]
    assert set(survivor.identifiers) == {
        "email:ann@example.com",
        "wechat_openid:wx-oa:oABC",
        "phone:+8613800138000",
        "device_id:dev-1",
    }
    assert survivor.facts.event_count == 3
    assert len(store.timeline(survivor)) == 3
    assert "profile.merged" in publisher.names()
    for key in survivor.identifiers:
        assert store.person_for_identifier("brand-1", key) == survivor.person_id


def test_shared_tablet_does_not_fuse_two_customers(store: DynamoIdentityStore) -> None:
    # Given a store tablet used by two customers who sign in with their own phones
    publisher = RecordingPublisher()
    first = resolve_event(event(PHONE, TABLET), store, publisher)
    # When the second customer's event arrives with the same tablet
    second = resolve_event(event(PHONE_2, TABLET), store, publisher)
    # Then they stay two persons and the tablet is quarantined so it never links again
    assert first.person_id != second.person_id
    assert second.quarantined == ("device_id:store-tablet-1",)
    third = resolve_event(event(EMAIL, TABLET), store, publisher)
    assert third.person_id not in (first.person_id, second.person_id)
    namespace = store.namespace_of("brand-1")
    assert store.lookup_identifiers(namespace, ["device_id:store-tablet-1"])["device_id:store-tablet-1"].shared


def test_redelivered_event_is_applied_once(store: DynamoIdentityStore) -> None:
    # Given an order event
    publisher = RecordingPublisher()
    order = event(
        PHONE,
        event_type="order_placed",
        order_id="o-1",
        lines=[{"sku": "cake", "category": "cake", "quantity": 1, "unit_price_minor": 19900}],
        total_minor=19900,
        currency="CNY",
    )
    # When SQS delivers it twice
    first = resolve_event(order, store, publisher)
    again = resolve_event(order, store, publisher)
    # Then spend counts once, and the second delivery is reported as not applied
    assert first.applied and not again.applied
    profile = store.get(first.person_id)
    assert profile is not None and profile.facts.order_count == 1 and profile.facts.spend_minor == 19900


def _order(order_id: str, total: int) -> CanonicalEvent:
    line = {"sku": "cake", "category": "cake", "quantity": 1, "unit_price_minor": total}
    return event(PHONE, event_type="order_placed", order_id=order_id, lines=[line], total_minor=total, currency="CNY")


def test_a_known_persons_event_is_two_conditional_writes_not_a_transaction(
    store: DynamoIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a known customer
    publisher = RecordingPublisher()
    person_id = resolve_event(_order("o-1", 100), store, publisher).person_id
    calls: list[str] = []
    for name in ("put_item", "transact_write_items"):
        real = getattr(store._db, name)
        monkeypatch.setattr(
            store._db, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1]
        )
    # When their next order is resolved
    outcome = resolve_event(_order("o-2", 200), store, publisher)
    # Then the event is filed and the person written with one conditional put each, no transaction
    assert outcome.applied and outcome.person_id == person_id and calls == ["put_item", "put_item"]
    profile = store.get(person_id)
    assert profile is not None and profile.facts.order_count == 2 and profile.facts.spend_minor == 300


def _resolve_batch(
    store: DynamoIdentityStore, events: list[CanonicalEvent], publisher: RecordingPublisher
) -> list[ResolutionOutcome]:
    with store.batch_reads(), store.deferred_writes():
        resolve_batch_reads(events, store)
        outcomes = [resolve_event(e, store, publisher) for e in events]
        settle(store)
    return outcomes


def test_a_batch_writes_each_known_person_once_after_filing_its_events_together(
    store: DynamoIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a known customer, one of whose orders was filed by an attempt that stopped before the person's write
    publisher = RecordingPublisher()
    person_id = resolve_event(_order("o-1", 100), store, publisher).person_id
    stopped = _order("o-2", 200)
    monkeypatch.setattr(store, "put_person", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        resolve_event(stopped, store, publisher)
    monkeypatch.undo()
    calls: list[str] = []
    for name in ("put_item", "transact_write_items", "batch_write_item"):
        real = getattr(store._db, name)
        monkeypatch.setattr(
            store._db, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1]
        )
    # When a batch brings the stopped order again and three new orders of theirs, one of them twice
    third = _order("o-3", 400)
    batch = [stopped, third, _order("o-4", 800), third, _order("o-5", 1600)]
    outcomes = _resolve_batch(store, batch, publisher)
    # Then each order counts once, the redelivered ones are reported as not applied, and the person is whole
    assert [o.applied for o in outcomes] == [False, True, True, False, True]
    profile = store.get(person_id)
    assert profile is not None and (profile.facts.order_count, profile.facts.spend_minor) == (5, 3100)
    # And the stopped event's fold wrote the person, then the new events were filed in one BatchWriteItem and
    # the person written once: no transaction, no write per event
    assert calls.count("batch_write_item") == 1 and "transact_write_items" not in calls
    assert calls.count("put_item") == 2
    # When the whole batch is redelivered, Then nothing changes, not even the version
    version = profile.version
    again = _resolve_batch(store, batch, publisher)
    assert not any(o.applied for o in again) and store.get(person_id).version == version  # type: ignore[union-attr]


def test_a_batch_whose_person_moved_meanwhile_folds_them_again_with_every_event_once(
    store: DynamoIdentityStore,
) -> None:
    # Given a known customer, and a batch of their orders read before another worker changes them
    publisher = RecordingPublisher()
    person_id = resolve_event(_order("o-1", 100), store, publisher).person_id
    batch = [_order("o-2", 200), _order("o-3", 400)]
    with store.batch_reads(), store.deferred_writes():
        resolve_batch_reads(batch, store)
        outcomes = [resolve_event(e, store, publisher) for e in batch]
        # When another worker applies an order of theirs before this batch writes
        other = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=store._db)
        resolve_event(_order("o-9", 1000), other, publisher)
        settle(store)
    # Then the batch's write lost, and the person was folded again: every order once
    profile = store.get(person_id)
    assert all(o.applied for o in outcomes) and profile is not None
    assert (profile.facts.order_count, profile.facts.spend_minor) == (4, 1700)


def test_an_event_filed_by_an_attempt_that_stopped_before_the_person_is_folded_in_once(
    store: DynamoIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a known customer, and an order whose first attempt filed it and then lost the person's write
    publisher = RecordingPublisher()
    person_id = resolve_event(_order("o-1", 100), store, publisher).person_id
    lost = _order("o-2", 200)
    real_put_person = store.put_person
    failures = iter([True])

    def put_person_once_lost(profile, expected_version):  # type: ignore[no-untyped-def]
        if next(failures, False):
            raise ConflictError("another writer was first")
        real_put_person(profile, expected_version)

    monkeypatch.setattr(store, "put_person", put_person_once_lost)
    # When it is resolved: the person moved after the filing, so the person is folded again from their events
    first = resolve_event(lost, store, publisher)
    profile = store.get(person_id)
    assert first.applied and profile is not None and (profile.facts.order_count, profile.facts.spend_minor) == (2, 300)
    # When an attempt filed a third order and stopped (a crash) before the person's write, and SQS redelivers it
    crashed = _order("o-3", 400)
    monkeypatch.setattr(store, "put_person", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        resolve_event(crashed, store, publisher)
    monkeypatch.setattr(store, "put_person", real_put_person)
    assert store.get(person_id).facts.order_count == 2  # type: ignore[union-attr]
    again = resolve_event(crashed, store, publisher)
    # Then the person includes it exactly once, and a further redelivery changes nothing, not even the version
    profile = store.get(person_id)
    assert again.person_id == person_id and profile is not None
    assert (profile.facts.order_count, profile.facts.spend_minor) == (3, 700)
    version = profile.version
    resolve_event(crashed, store, publisher)
    assert store.get(person_id).version == version  # type: ignore[union-attr]
    assert publisher.names().count("profile.updated") >= 4


def test_merge_adds_points_and_orders_without_loss(store: DynamoIdentityStore) -> None:
    # Given two persons with points from two programs
    publisher = RecordingPublisher()
    resolve_event(
        event(PHONE, event_type="points_changed", delta=300, program="app", reason="purchase"), store, publisher
    )
    resolve_event(
        event(EMAIL, event_type="points_changed", delta=100, program="dealer", reason="bonus"), store, publisher
    )
    # When an event links them
    outcome = resolve_event(event(PHONE, EMAIL), store, publisher)
    # Then the survivor holds both programs' points
    profile = store.get(outcome.person_id)
    assert profile is not None
    assert profile.facts.points_by_program == {"app": 300, "dealer": 100}
    assert profile.facts.event_count == 3


class CountingClient:
    """The DynamoDB client, counting BatchGetItem calls."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.batch_gets = 0

    def batch_get_item(self, **kwargs: object) -> object:
        self.batch_gets += 1
        return self._inner.batch_get_item(**kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_batch_reads_each_item_once_and_sees_its_own_commits(store: DynamoIdentityStore) -> None:
    # Given a store whose reads are counted, and a batch of events of two persons (the second links a new device)
    counting = CountingClient(store._db)
    batch_store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=counting)  # type: ignore[arg-type]
    other = {"type": "email", "value": "other@example.com"}
    device = {"type": "device_id", "value": "dev-batch-1"}
    events = [event(PHONE), event(other), event(PHONE, device), event(PHONE, event_type="page_view", url="/")]
    publisher = RecordingPublisher()
    # When the batch is read once up front and then resolved event by event
    with batch_store.batch_reads():
        resolve_batch_reads(events, batch_store)
        prefetch_reads = counting.batch_gets
        outcomes = [resolve_event(e, batch_store, publisher) for e in events]
    # Then the events read only what the batch's first reads and commits did not hold (the new device), and the
    # persons stored are what a store without the batch cache reads
    assert prefetch_reads <= 2 and counting.batch_gets - prefetch_reads <= 1
    assert all(o.applied for o in outcomes) and outcomes[0].person_id == outcomes[2].person_id == outcomes[3].person_id
    stored = store.get(outcomes[0].person_id or "")
    assert stored is not None and stored.facts.page_views == 1 and "device_id:dev-batch-1" in stored.identifiers


def test_a_batch_read_made_stale_by_another_writer_is_replanned(store: DynamoIdentityStore) -> None:
    # Given a person, and a batch that read them before another writer changed them
    publisher = RecordingPublisher()
    first = resolve_event(event(PHONE), store, publisher)
    batch_store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=store._db)
    late = event(PHONE, event_type="page_view", url="/a")
    with batch_store.batch_reads():
        resolve_batch_reads([late], batch_store)
        resolve_event(event(PHONE, event_type="page_view", url="/b"), store, publisher)  # the other writer
        # When the batch resolves its event on the stale read
        outcome = resolve_event(late, batch_store, publisher)
    # Then the version check failed, the change was re-planned on a fresh read, and both page views count
    assert outcome.applied and outcome.person_id == first.person_id
    stored = store.get(first.person_id or "")
    assert stored is not None and stored.facts.page_views == 2


def test_the_filed_event_is_its_own_marker_and_a_collision_is_refused_with_its_reason(
    store: DynamoIdentityStore,
) -> None:
    # Given an event applied once (no separate APPLIED# item is written for a filed event)
    publisher = RecordingPublisher()
    first = event(PHONE, event_type="page_view", url="/x")
    assert resolve_event(first, store, publisher).applied
    assert store._get_item(f"APPLIED#{first.dedupe_key}", "APPLIED") is None
    # When another source sends the same event id for the same identifier at the same instant
    twin = first.model_copy(update={"source": SourceChannel.WEB})
    # Then it is refused for good (dead-lettered with this reason), not taken for a redelivery and dropped
    with pytest.raises(TimelineKeyTakenError, match="same event id"):
        resolve_event(twin, store, publisher)
    # And a true redelivery is still applied once
    assert not resolve_event(first, store, publisher).applied
