"""Builders for campaign tests: profiles with tags/scores/consent, order events, and the sample request."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.campaigns.models import CampaignRequest
from cdp.ingest.events import OrderPlacedEvent, parse_event
from cdp.profile.models import ConsentState, ModelScore, Profile, ProfileFacts, TagValue
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.profiles import InMemoryProfiles

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BRAND = "sweet-bakery"
SAMPLE = Path(__file__).resolve().parents[3] / "events" / "sfn" / "campaign_input.json"

ProfileFactory = Callable[..., Profile]
OrderFactory = Callable[..., OrderPlacedEvent]
RequestFactory = Callable[..., CampaignRequest]

_ids = itertools.count()


def make_profile(
    person_id: str,
    *,
    brand_id: str = BRAND,
    tags: dict[str, str | int | bool] | None = None,
    score: float | None = None,
    consent: dict[str, bool] | None = None,
    last_order_at: datetime | None = None,
    merged_into: str | None = None,
    merged_from: tuple[str, ...] = (),
) -> Profile:
    return Profile(
        person_id=person_id,
        brand_id=brand_id,
        created_at=T0,
        updated_at=T0,
        tags={k: TagValue(value=v, since=T0) for k, v in (tags or {}).items()},
        scores={} if score is None else {"response": ModelScore(score=score, model_version="v1", scored_at=T0)},
        consent={
            ch: ConsentState(granted=g, changed_at=T0, source="crm")
            for ch, g in (consent if consent is not None else {"sms": True, "email": True}).items()
        },
        facts=ProfileFacts(last_order_at=last_order_at),
        merged_into=merged_into,
        merged_from=list(merged_from),
    )


def make_order(person_id: str, at: datetime, total_minor: int = 5000, currency: str = "CNY") -> OrderPlacedEvent:
    event = parse_event(
        {
            "event_id": f"o-{next(_ids)}",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "member_card", "value": person_id}],
            "properties": {
                "order_id": f"ord-{next(_ids)}",
                "lines": [{"sku": "cake-1", "quantity": 1, "unit_price_minor": total_minor}],
                "total_minor": total_minor,
                "currency": currency,
            },
        }
    )
    assert isinstance(event, OrderPlacedEvent)
    return event


def sample_request_json() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text())["request"]  # type: ignore[no-any-return]


def make_request(**overrides: Any) -> CampaignRequest:
    """The sample campaign with an open audience (consent only) unless overridden."""
    data = sample_request_json()
    data["audience"] = {"require_consent_channel": "sms"}
    data["run_id"] = "run-1"
    data.update(overrides)
    return CampaignRequest.model_validate(data)


@pytest.fixture
def profile() -> ProfileFactory:
    return make_profile


@pytest.fixture
def order() -> OrderFactory:
    return make_order


@pytest.fixture
def request_for() -> RequestFactory:
    return make_request


@pytest.fixture
def store() -> InMemoryArtifactStore:
    return InMemoryArtifactStore()


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture
def profiles() -> InMemoryProfiles:
    return InMemoryProfiles()
