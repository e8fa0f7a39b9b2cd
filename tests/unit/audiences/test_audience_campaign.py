"""A campaign selecting from a stored audience: dynamic by membership tag, static by snapshot through merges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cdp.audiences.models import ExportRequest
from cdp.audiences.service import AudienceService
from cdp.audiences.store import AudienceStore
from cdp.campaigns.models import AudienceDocument, CampaignRequest
from cdp.campaigns.service import AudienceWiringError, select_audience
from cdp.errors import InvalidInputError
from tests.fakes.artifacts import InMemoryArtifactStore
from tests.unit.audiences.conftest import NOW, CountingProfiles, definition, make_profile

SAMPLE = Path(__file__).resolve().parents[3] / "events" / "sfn" / "campaign_input.json"
SMS = {"sms": True}


def _request(audience: dict[str, Any], run_id: str = "run-a") -> CampaignRequest:
    data = json.loads(SAMPLE.read_text())["request"]
    data.update(brand_id="demo-brand", run_id=run_id, audience={"require_consent_channel": "sms", **audience})
    data["holdout_fraction"] = 0.0
    return CampaignRequest.model_validate(data)


def _selected(artifacts: InMemoryArtifactStore, run_id: str) -> AudienceDocument:
    return AudienceDocument.model_validate(artifacts.get_json(f"campaigns/{run_id}/audience.json"))


def test_a_dynamic_audience_selects_the_persons_whose_membership_tag_is_true(
    service: AudienceService, store: AudienceStore, profiles: CountingProfiles
) -> None:
    # Given tag_update's memberships of "vip": p1 and p3 in (p3 without SMS consent), p2 out, p4 of another brand
    profiles.profiles["p1"] = make_profile("p1", tags={"audience:vip": True}, consent=SMS)
    profiles.profiles["p2"] = make_profile("p2", tags={"audience:vip": False}, consent=SMS)
    profiles.profiles["p3"] = make_profile("p3", tags={"audience:vip": True}, consent={"sms": False})
    profiles.profiles["p4"] = make_profile("p4", tags={"audience:vip": True}, consent=SMS, brand_id="other")
    service.define(definition("vip", "dynamic"))
    artifacts = InMemoryArtifactStore()
    # When a campaign names the audience
    result = select_audience(_request({"audience_id": "vip"}), profiles, artifacts, NOW, audiences=store)
    # Then only p1 is eligible (consent and brand still apply), and the manifest names the audience
    doc = _selected(artifacts, "run-a")
    assert [m.person_id for m in doc.treatment] == ["p1"] and result.selection.counts.eligible == 1
    source = doc.manifest.audience
    assert source is not None and (source.audience_id, source.kind, source.version) == ("vip", "dynamic", 1)
    assert source.snapshot_id is None and source.resolved == 3


def test_a_static_audience_selects_its_latest_snapshot_re_resolved_through_merges(
    service: AudienceService, store: AudienceStore, profiles: CountingProfiles
) -> None:
    # Given a snapshot of Shanghai buyers p1, p2, p3
    for pid in ("p1", "p2", "p3"):
        profiles.profiles[pid] = make_profile(pid, city="Shanghai", consent=SMS)
    profiles.profiles["p9"] = make_profile("p9", city="Beijing", consent=SMS)
    service.define(definition("sh"))
    first = service.export("sh", ExportRequest())
    assert first.count == 3
    # And since then p2 was merged into p9 (a Beijing person) and p3 merged into p1; p4 moved to Shanghai
    profiles.profiles["p2"] = make_profile("p2", city="Shanghai", consent=SMS, merged_into="p9")
    profiles.profiles["p3"] = make_profile("p3", city="Shanghai", consent=SMS, merged_into="p1")
    profiles.profiles["p4"] = make_profile("p4", city="Shanghai", consent=SMS)
    artifacts = InMemoryArtifactStore()
    # When the campaign selects from the static audience (no snapshot named: the latest)
    select_audience(_request({"audience_id": "sh"}), profiles, artifacts, NOW, audiences=store)
    # Then the frozen members are taken as they are now: p1 (once, p3 folded in) and p9 (p2's survivor); not p4
    doc = _selected(artifacts, "run-a")
    assert sorted(m.person_id for m in doc.treatment) == ["p1", "p9"]
    source = doc.manifest.audience
    assert source is not None and source.snapshot_id == first.snapshot_id and source.snapshot_count == 3
    assert source.resolved == 2
    # And the normalized request names the snapshot it read, so the run can be audited and repeated
    assert doc.manifest.request.audience.snapshot_id == first.snapshot_id


def test_a_named_snapshot_is_used_and_missing_ones_are_clear_errors(
    service: AudienceService, store: AudienceStore, profiles: CountingProfiles
) -> None:
    profiles.profiles["p1"] = make_profile("p1", city="Shanghai", consent=SMS)
    service.define(definition("sh"))
    with pytest.raises(InvalidInputError, match="export it first") as caught:
        select_audience(_request({"audience_id": "sh"}), profiles, InMemoryArtifactStore(), NOW, audiences=store)
    assert caught.value.location == "audience.audience_id"
    old = service.export("sh", ExportRequest())
    profiles.profiles["p2"] = make_profile("p2", city="Shanghai", consent=SMS)
    service.export("sh", ExportRequest())
    artifacts = InMemoryArtifactStore()
    select_audience(
        _request({"audience_id": "sh", "snapshot_id": old.snapshot_id}), profiles, artifacts, NOW, audiences=store
    )
    assert [m.person_id for m in _selected(artifacts, "run-a").treatment] == ["p1"]
    with pytest.raises(InvalidInputError, match="no snapshot") as missing:
        select_audience(
            _request({"audience_id": "sh", "snapshot_id": "20990101T000000Z-00000000"}, "run-b"),
            profiles,
            InMemoryArtifactStore(),
            NOW,
            audiences=store,
        )
    assert missing.value.location == "audience.snapshot_id"
    with pytest.raises(InvalidInputError, match="no audience 'nope'"):
        select_audience(_request({"audience_id": "nope"}), profiles, InMemoryArtifactStore(), NOW, audiences=store)
    with pytest.raises(AudienceWiringError):
        select_audience(_request({"audience_id": "sh"}), profiles, InMemoryArtifactStore(), NOW)


def test_tag_conditions_still_apply_on_top_of_the_audience(
    service: AudienceService, store: AudienceStore, profiles: CountingProfiles
) -> None:
    profiles.profiles["p1"] = make_profile("p1", tags={"audience:vip": True, "lifecycle": "dormant"}, consent=SMS)
    profiles.profiles["p2"] = make_profile("p2", tags={"audience:vip": True, "lifecycle": "churned"}, consent=SMS)
    service.define(definition("vip", "dynamic"))
    artifacts = InMemoryArtifactStore()
    request = _request({"audience_id": "vip", "none_of": [{"tag": "lifecycle", "equals": "churned"}]})
    select_audience(request, profiles, artifacts, NOW, audiences=store)
    assert [m.person_id for m in _selected(artifacts, "run-a").treatment] == ["p1"]


def test_a_snapshot_id_needs_an_audience_id() -> None:
    with pytest.raises(ValidationError, match="snapshot_id needs audience_id"):
        _request({"snapshot_id": "20260101T000000Z-00000000"})
