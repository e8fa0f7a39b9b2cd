"""Through the real HTTP API on the local runtime: events become one person with facts and tags; bad input is 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdp import topology
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import PostEvents

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "canonical"

BRAND = "demo-brand"  # the brand of the samples under events/canonical (the packaged keys' brand)


def sample(name: str, **changes: Any) -> dict[str, Any]:
    event = json.loads((SAMPLES / f"{name}.v1.json").read_text())
    event.update(changes)
    return event


def store(runtime: LocalRuntime) -> DynamoIdentityStore:
    return DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=runtime.client("dynamodb"))


def test_channels_become_one_person_with_facts_and_tags(runtime: LocalRuntime, post_events: PostEvents) -> None:
    # Given the app knows a phone + device, the web an e-mail + the same device, and the POS the card + phone
    phone = {"type": "phone", "value": "13911112222"}
    device = {"type": "device_id", "value": "e2e-device-1"}
    email = {"type": "email", "value": "e2e.one@example.cn"}
    card = {"type": "member_card", "value": "MC-E2E-0001"}
    events = [
        sample("identify", event_id="e2e-1", identifiers=[phone, device]),
        sample("page_view", event_id="e2e-2", identifiers=[email, device]),
        sample("order_placed", event_id="e2e-3", identifiers=[card, phone], occurred_at="2026-11-20T10:00:00+08:00"),
    ]
    # When they are posted through the HTTP API
    response, report = post_events(events)
    # Then all are accepted, processed without dead letters, and one person holds everything
    assert response.status == 202, response.body
    assert report.dead_lettered == 0 and report.quiet
    profiles = store(runtime)
    person_id = profiles.person_for_identifier(BRAND, "email:e2e.one@example.cn")
    assert person_id is not None
    assert {profiles.person_for_identifier(BRAND, k) for k in ("phone:+8613911112222", "member_card:MC-E2E-0001")} == {
        person_id
    }
    profile = profiles.get(person_id)
    assert profile is not None
    assert profile.facts.order_count == 1 and profile.facts.spend_minor == 27800
    assert profile.tags["lifecycle"].value in {"growth", "dormant", "churned"}
    assert {"rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment"} <= set(profile.tags)
    assert len(profiles.timeline(profile)) == 4  # and the club points the order earned (points_changed)


def test_bad_input_is_rejected_with_the_field_and_nothing_is_stored(
    runtime: LocalRuntime, post_events: PostEvents
) -> None:
    # Given an order with an invalid phone and a batch holding one event of an unknown type
    bad_phone = sample("order_placed", event_id="e2e-bad-1", identifiers=[{"type": "phone", "value": "555"}])
    unknown = sample("identify", event_id="e2e-bad-2", event_type="order_cancelled")
    # When posted
    single, _ = post_events(bad_phone)
    batch, _ = post_events(
        [sample("identify", event_id="e2e-ok-9", identifiers=[{"type": "email", "value": "ok9@example.cn"}]), unknown]
    )
    # Then the single one is a 400 naming the field, the batch a 207 that accepted the good event only
    assert single.status == 400
    assert json.loads(single.body)["rejected"][0]["errors"][0]["field"] == "identifiers.0.value"
    assert batch.status == 207
    body = json.loads(batch.body)
    assert body["accepted"] == 1 and body["rejected"][0]["index"] == 1
    assert store(runtime).person_for_identifier(BRAND, "phone:555") is None


def test_wrong_api_key_is_401(runtime: LocalRuntime, post_events: PostEvents) -> None:
    response, _ = post_events(sample("identify", event_id="e2e-auth-1"), headers={"x-api-key": "not-a-key"})
    assert response.status == 401
