"""History import: bulk-resolved past events loaded into DynamoDB, then live events resolved on top of them."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.errors import InvalidInputError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.history import import_history
from cdp.identity.service import resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import load_org
from cdp_local.demo.brand import generate_brand
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_speedups import fast_dynamodb_responses, fast_transactions, partition_queries
from tests.fakes.identity import NullPublisher
from tests.fakes.identity_oracle import assert_converged

BRAND = load_org().brand("demo-brand")


@pytest.fixture
def store() -> Iterator[DynamoIdentityStore]:
    with mock_aws(), fast_transactions(), fast_dynamodb_responses(), partition_queries():
        db = boto3.client("dynamodb")
        create_table(db, topology.PROFILES_TABLE)
        yield DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=db)


@pytest.fixture(scope="module")
def events() -> list[CanonicalEvent]:
    brand = generate_brand(customers=120, seed=5)
    return sorted((parse_event(e) for e in brand.events), key=lambda e: (e.occurred_at, e.event_id))


def _shared(store: DynamoIdentityStore, keys: set[str]) -> set[str]:
    records = store.lookup_identifiers(BRAND.namespace, keys)
    return {k for k, r in records.items() if r.shared}


def test_imported_history_and_live_events_converge_to_the_reference(
    store: DynamoIdentityStore, events: list[CanonicalEvent]
) -> None:
    # Given the older 60% of a brand's events imported in bulk (shared tablets, family iPads and typos included)
    cut = int(len(events) * 0.6)
    load = import_history(events[:cut], BRAND, store)
    assert load.hubs and len(load.profiles) > 100
    # When the newer 40% arrive live, and one imported event is redelivered
    publisher = NullPublisher()
    for event in events[cut:]:
        resolve_event(event, store, publisher)
    assert not resolve_event(events[0], store, publisher).applied
    # Then persons, hubs, points/orders/cards and every person's facts are what the reference gives for all events
    persons = list(store.scan_shard(0, 1))
    keys = {i.key for e in events for i in e.identifiers}
    assert_converged(persons, _shared(store, keys), events, BRAND)


def test_an_import_into_a_namespace_with_live_data_is_refused(
    store: DynamoIdentityStore, events: list[CanonicalEvent]
) -> None:
    # Given a namespace that already resolved live events
    for event in events[:20]:
        resolve_event(event, store, NullPublisher())
    # When history is imported into it
    # Then it is refused with the reason, and nothing is written
    with pytest.raises(InvalidInputError, match="import history before live traffic"):
        import_history(events[:50], BRAND, store)


def test_an_import_of_another_brands_events_is_refused(
    store: DynamoIdentityStore, events: list[CanonicalEvent]
) -> None:
    stranger = events[0].model_copy(update={"brand_id": "someone-else"})
    with pytest.raises(InvalidInputError, match="events of other brands"):
        import_history([stranger, *events[:5]], BRAND, store)
