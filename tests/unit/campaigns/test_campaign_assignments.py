"""Each selected person's randomized group filed on their timeline (`campaign_assigned`), so uplift models learn from
the platform's own campaigns: both groups, under the identifier the timeline is kept by, once per run and person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from cdp.campaigns.assignments import assignment_event_id
from cdp.campaigns.models import AudienceDocument, CampaignRequest
from cdp.campaigns.service import audience_key, select_audience
from cdp.errors import PublishError
from cdp.ingest.events import CampaignAssignedEvent, CanonicalEvent
from cdp.ingest.service import EventsReceived
from cdp.models.labels import PersonHistory, uplift_labels
from cdp.profile.models import Profile
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.fakes.profiles import InMemoryProfiles
from tests.fakes.tags import RecordingPublisher

ProfileFactory = Callable[..., Profile]
RequestFactory = Callable[..., CampaignRequest]
PERSONS = 60


def _budget(amount_minor: int) -> dict[str, object]:
    return {"amount_minor": amount_minor, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}}


def _people(profile: ProfileFactory) -> list[Profile]:
    people = [
        profile(f"p{i:02d}", score=i / 100).model_copy(
            update={"identifiers": [f"phone:+86139{i:08d}", f"device_id:dev-{i}"]}
        )
        for i in range(PERSONS)
    ]
    return [*people, profile("no-ids", score=0.99)]  # known by no identifier: nothing to file it under


def _assigned(publisher: RecordingPublisher) -> list[CampaignAssignedEvent]:
    events: list[CanonicalEvent] = [e for entry in publisher.of(EventsReceived) for e in entry.events]
    assert all(isinstance(e, CampaignAssignedEvent) for e in events)
    return [e for e in events if isinstance(e, CampaignAssignedEvent)]


def test_every_selected_person_is_filed_with_their_group_under_their_anchor(
    profile: ProfileFactory, request_for: RequestFactory, t0: datetime
) -> None:
    # Given 60 persons with a phone and a device, one with no identifier, budget for all and a 25% holdout
    store, publisher = InMemoryArtifactStore(), RecordingPublisher()
    req = request_for(budget=_budget(5 * 100), holdout_fraction=0.25)
    # When the audience is selected
    select_audience(req, InMemoryProfiles(_people(profile)), store, t0, publisher=publisher)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    events = _assigned(publisher)
    # Then each selected person with an identifier has one event with their group, the campaign, the run and channel
    groups = {m.person_id: "treatment" for m in doc.treatment} | {m.person_id: "holdout" for m in doc.holdout}
    assert len(groups) == PERSONS + 1 and 0 < len(doc.holdout) < PERSONS
    by_id = {e.event_id: e for e in events}
    assert set(by_id) == {assignment_event_id("run-1", p) for p in groups if p != "no-ids"}
    for person_id, group in groups.items():
        if person_id == "no-ids":
            continue
        event = by_id[assignment_event_id("run-1", person_id)]
        assert event.properties.group == group and event.properties.campaign_id == req.campaign_id
        assert event.properties.run_id == "run-1" and event.properties.channel == req.touch1.channel
        # And it is filed under the phone (the anchor the brand's rules prefer), at the selection time
        assert [i.key for i in event.identifiers] == [f"phone:+86139{int(person_id[1:]):08d}"]
        assert event.occurred_at == t0 and event.brand_id == req.brand_id
    # And the person without an identifier keeps their group in audience.json only
    assert "no-ids" in groups


def test_a_retried_selection_files_the_same_events_and_a_finished_one_files_none(
    profile: ProfileFactory, request_for: RequestFactory, t0: datetime
) -> None:
    # Given a selection whose publish failed once (the step fails before audience.json: nothing selected yet)
    store, publisher = InMemoryArtifactStore(), RecordingPublisher(fail=1)
    profiles = InMemoryProfiles(_people(profile))
    req = request_for(budget=_budget(5 * 100), holdout_fraction=0.25)
    with pytest.raises(PublishError):
        select_audience(req, profiles, store, t0, publisher=publisher)
    assert not store.exists(audience_key("run-1"))
    # When the step is retried, and then once more after it succeeded
    select_audience(req, profiles, store, t0, publisher=publisher)
    first = sorted(e.event_id for e in _assigned(publisher))
    select_audience(req, profiles, store, t0 + timedelta(minutes=5), publisher=publisher)
    # Then the retry filed every event (ids stable per run and person, so ingest accepts each once) and the finished
    # selection filed nothing more
    assert sorted(e.event_id for e in _assigned(publisher)) == first and len(first) == PERSONS


def test_an_arm_with_its_own_channel_files_that_channel(
    profile: ProfileFactory, request_for: RequestFactory, t0: datetime
) -> None:
    # Given an A/B test whose arm b sends e-mail first
    base = request_for()
    arm = base.touch1.model_dump(mode="json") | {"channel": "email"}
    arm["template"] = {**arm["template"], "subject": "A cake for you"}
    req = request_for(
        budget=_budget(5 * 100),
        holdout_fraction=0.2,
        variants=[
            {"name": "a", "share": 0.5, "touch1": base.touch1.model_dump(mode="json")},
            {"name": "b", "share": 0.5, "touch1": arm},
        ],
    )
    store, publisher = InMemoryArtifactStore(), RecordingPublisher()
    select_audience(req, InMemoryProfiles(_people(profile)), store, t0, publisher=publisher)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    channel = {e.event_id: e.properties.channel for e in _assigned(publisher)}
    # Then arm b's treated persons are filed with e-mail, the rest of the treated and the holdout with touch1's channel
    for m in (m for m in doc.treatment if m.person_id != "no-ids"):
        expected = "email" if m.variant == "b" else base.touch1.channel  # arm a: touch1's
        assert channel[assignment_event_id("run-1", m.person_id)] == expected
    held = {channel[assignment_event_id("run-1", m.person_id)] for m in doc.holdout if m.person_id != "no-ids"}
    assert held == {base.touch1.channel}
    assert any(m.variant == "b" for m in doc.treatment)


def test_the_filed_groups_are_what_uplift_models_learn_from(
    profile: ProfileFactory, request_for: RequestFactory, order: Callable[..., CanonicalEvent], t0: datetime
) -> None:
    # Given a selection filed on the timelines, and orders of some persons in the week after it
    store, publisher = InMemoryArtifactStore(), RecordingPublisher()
    people = _people(profile)
    req = request_for(budget=_budget(5 * 100), holdout_fraction=0.25)
    select_audience(req, InMemoryProfiles(people), store, t0, publisher=publisher)
    doc = AudienceDocument.model_validate(store.get_json(audience_key("run-1")))
    by_person: dict[str, list[CanonicalEvent]] = {p.person_id: [] for p in people}
    phone_owner = {p.identifiers[0]: p.person_id for p in people if p.identifiers}
    for event in _assigned(publisher):
        by_person[phone_owner[event.identifiers[0].key]].append(event)
    buyers = {f"p{i:02d}" for i in range(0, PERSONS, 3)}
    for person_id in buyers:
        by_person[person_id].append(order(person_id, t0 + timedelta(days=2)))
    histories = [PersonHistory(p, by_person[p.person_id]) for p in people]
    # When uplift labels are built for the campaign, with its window complete
    labeled = uplift_labels(histories, [req.campaign_id], 14, t0 + timedelta(days=30))
    # Then every filed person is a row with the group the run drew and whether they ordered
    rows = {ex.person_id: ex for ex in labeled.examples}
    assert {p: ex.group for p, ex in rows.items()} == (
        {m.person_id: "treatment" for m in doc.treatment if m.person_id != "no-ids"}
        | {m.person_id: "holdout" for m in doc.holdout if m.person_id != "no-ids"}
    )
    assert {p for p, ex in rows.items() if ex.label == 1} == buyers
