"""Builders for audience tests: profiles with traits, tags, consent and timelines; the service over in-memory ports."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from cdp.audiences.service import AudienceService
from cdp.audiences.store import AudienceStore
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.profile.models import ConsentState, Profile, ProfileFacts, TagValue, Traits
from cdp.profile.ports import TimelineEntry
from cdp.tags.catalog import TagCatalog, bundled_catalog
from tests.fakes.objects import InMemoryObjectStore
from tests.fakes.profiles import InMemoryProfiles

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BRAND = "demo-brand"
_ids = itertools.count()

ProfileFactory = Callable[..., Profile]


def make_profile(
    person_id: str,
    *,
    tags: dict[str, str | int | bool] | None = None,
    city: str | None = None,
    name: str | None = None,
    gender: str | None = None,
    birthday: date | None = None,
    member_level: str | None = None,
    consent: dict[str, bool] | None = None,
    orders: int = 0,
    brand_id: str = BRAND,
    merged_into: str | None = None,
) -> Profile:
    return Profile(
        person_id=person_id,
        brand_id=brand_id,
        created_at=NOW,
        updated_at=NOW,
        traits=Traits(name=name, gender=gender, birthday=birthday, city=city, member_level=member_level),
        tags={k: TagValue(value=v, since=NOW) for k, v in (tags or {}).items()},
        consent={ch: ConsentState(granted=g, changed_at=NOW, source="crm") for ch, g in (consent or {}).items()},
        facts=ProfileFacts(order_count=orders),
        merged_into=merged_into,
    )


def order_event(person_id: str, at: datetime, total_minor: int = 5000, category: str = "cake") -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"o-{next(_ids)}",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "member_card", "value": person_id}],
            "properties": {
                "order_id": f"ord-{next(_ids)}",
                "lines": [{"sku": "sku-1", "category": category, "quantity": 1, "unit_price_minor": total_minor}],
                "total_minor": total_minor,
                "currency": "CNY",
            },
        }
    )


class CountingProfiles(InMemoryProfiles):
    """Counts timeline reads (size and preview read them only for conditions that aggregate events)."""

    def __init__(self, profiles: list[Profile] | None = None) -> None:
        super().__init__(profiles)
        self.timeline_reads = 0

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        self.timeline_reads += 1
        return super().timeline(profile)


def definition(audience_id: str = "shanghai_buyers", kind: str = "static", **fields: Any) -> dict[str, Any]:
    return {
        "id": audience_id,
        "name": audience_id.replace("_", " "),
        "kind": kind,
        "include": fields.pop("include", {"attr": "city", "eq": "Shanghai"}),
        **fields,
    }


@pytest.fixture(scope="session")
def catalog() -> TagCatalog:
    return bundled_catalog()


@pytest.fixture
def objects() -> InMemoryObjectStore:
    return InMemoryObjectStore()


@pytest.fixture
def store(objects: InMemoryObjectStore) -> AudienceStore:
    return AudienceStore(objects)


@pytest.fixture
def profiles() -> CountingProfiles:
    return CountingProfiles()


@pytest.fixture
def service(store: AudienceStore, profiles: CountingProfiles, catalog: TagCatalog) -> AudienceService:
    return AudienceService(store, profiles, lambda: catalog, now=lambda: NOW)
