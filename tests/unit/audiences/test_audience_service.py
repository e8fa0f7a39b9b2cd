"""Preview, export and references through the service, on in-memory ports; who may call."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from cdp.audiences.models import SNAPSHOT_ID_PATTERN, EstimateRequest, ExportRequest, SizeRequest
from cdp.audiences.service import (
    AudienceAccess,
    AudienceInUseError,
    AudienceService,
    authorize_audiences,
    snapshot_id_for,
)
from cdp.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.ports import TimelineEntry
from tests.fakes.objects import InMemoryObjectStore
from tests.unit.audiences.conftest import BRAND, NOW, CountingProfiles, definition, make_profile, order_event

DORMANT_SHANGHAI = {"all": [{"tag": "lifecycle", "eq": "dormant"}, {"attr": "city", "eq": "Shanghai"}]}


def test_preview_shows_members_with_masked_traits_and_the_values_the_condition_reads(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    # Given a dormant Shanghai member with a name and birthday, and a non-member
    profiles.profiles["p1"] = make_profile(
        "p1",
        tags={"lifecycle": "dormant"},
        city="Shanghai",
        name="Li Leilei",
        birthday=date(1980, 7, 1),
        gender="female",
    )
    profiles.profiles["p2"] = make_profile("p2", tags={"lifecycle": "mature"}, city="Shanghai", name="Wang Fang")
    service.define(definition("dormant_sh", include=DORMANT_SHANGHAI))
    # When it is previewed
    preview = service.preview("dormant_sh", limit=10)
    # Then only the member shows, the name masked, the birthday as an age, and what the condition read
    (member,) = preview.members
    assert member.person_id == "p1" and member.brand_id == "demo-brand"
    assert member.traits["name"] == "*****ilei"
    assert member.traits["age"] == 45 and member.traits["city"] == "Shanghai" and member.traits["gender"] == "female"
    assert member.reads == {"tag:lifecycle": "dormant", "attr:city": "Shanghai"}
    assert preview.complete and preview.profiles_scanned == 2 and not preview.read_timelines
    assert profiles.timeline_reads == 0


def test_preview_stops_at_the_limit_and_reads_timelines_only_for_aggregates(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    for i in range(30):
        profiles.profiles[f"p{i:02d}"] = make_profile(f"p{i:02d}", city="Shanghai")
        profiles.add_events(
            f"p{i:02d}", [order_event(f"p{i:02d}", NOW - timedelta(days=d)) for d in range(1, 1 + i % 4)]
        )
    service.define(definition("buyers", include={"agg": "count", "event": "order_placed", "within_days": 30, "gte": 2}))
    preview = service.preview("buyers", limit=5)
    assert len(preview.members) == 5 and not preview.complete
    assert preview.read_timelines and profiles.timeline_reads == preview.profiles_scanned < 30
    assert all(m.reads["count of order_placed in the last 30 days"] >= 2 for m in preview.members)
    with pytest.raises(InvalidInputError, match="limit"):
        service.preview("buyers", limit=0)


def test_a_referenced_audience_is_evaluated_on_the_spot(service: AudienceService, profiles: CountingProfiles) -> None:
    # Given a dynamic "gold" audience (no membership tag written yet) and a static one that reads it
    profiles.profiles["g"] = make_profile("g", member_level="gold", city="Shanghai")
    profiles.profiles["s"] = make_profile("s", member_level="silver", city="Shanghai")
    service.define(definition("gold", "dynamic", include={"attr": "member_level", "eq": "gold"}))
    service.define(
        definition("gold_sh", include={"all": [{"audience": "gold", "eq": True}, {"attr": "city", "eq": "Shanghai"}]})
    )
    # Then the static audience finds the gold member through gold's condition
    preview = service.preview("gold_sh", limit=10)
    assert [m.person_id for m in preview.members] == ["g"]
    assert preview.members[0].reads["audience:gold"] is True
    # And the referenced audience cannot be deleted while it is read
    with pytest.raises(AudienceInUseError, match="referenced by gold_sh"):
        service.delete("gold")
    service.delete("gold_sh")
    service.delete("gold")
    with pytest.raises(NotFoundError):
        service.get("gold")


def test_export_of_a_static_audience_evaluates_every_profile(
    service: AudienceService, profiles: CountingProfiles, objects: InMemoryObjectStore
) -> None:
    for i in range(40):
        profiles.profiles[f"p{i:02d}"] = make_profile(
            f"p{i:02d}", tags={"lifecycle": "dormant" if i % 3 else "mature"}, city="Shanghai" if i % 2 else "Beijing"
        )
    service.define(definition("dormant_sh", include=DORMANT_SHANGHAI))
    manifest = service.export("dormant_sh", ExportRequest(segments=4))
    expected = sorted(f"p{i:02d}" for i in range(40) if i % 3 and i % 2)
    assert manifest.source == "evaluated" and manifest.count == len(expected) and manifest.profiles_scanned == 40
    assert manifest.version == 1 and manifest.catalog_version.startswith("basic@")
    members = [json.loads(line)["person_id"] for line in objects.get_bytes(manifest.member_keys[0]).splitlines()]
    assert members == expected
    assert objects.writes[-1].endswith(f"{manifest.snapshot_id}/manifest.json")
    # And the same condition hashes the same; listing shows the snapshot
    assert service.export("dormant_sh", ExportRequest(segments=2)).condition_hash == manifest.condition_hash
    assert len(service.snapshots("dormant_sh").snapshots) == 2


def test_export_of_a_dynamic_audience_freezes_the_membership_tags(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    # Given tag_update's memberships: p1 in, p2 out (whatever the condition says now), p3 never evaluated
    profiles.profiles["p1"] = make_profile("p1", tags={"audience:vip": True}, city="Beijing")
    profiles.profiles["p2"] = make_profile("p2", tags={"audience:vip": False}, city="Shanghai")
    profiles.profiles["p3"] = make_profile("p3", city="Shanghai")
    service.define(definition("vip", "dynamic", include={"attr": "city", "eq": "Shanghai"}))
    manifest = service.export("vip", ExportRequest())
    assert manifest.source == "membership_tags" and manifest.count == 1 and manifest.kind == "dynamic"
    assert list(service._store.members(manifest)) == ["p1"]


def test_unknown_audiences_are_not_found(service: AudienceService) -> None:
    with pytest.raises(NotFoundError):
        service.size("nope", SizeRequest())
    with pytest.raises(NotFoundError):
        service.preview("nope", 5)
    with pytest.raises(NotFoundError):
        service.export("nope", ExportRequest())
    with pytest.raises(NotFoundError):
        service.snapshots("nope")


def test_audience_routes_need_the_scope_and_a_key_that_holds_whole_brands() -> None:
    reader = ApiClient(name="r", scopes=frozenset({"audiences:read"}))
    assert authorize_audiences(reader, write=False).everything
    with pytest.raises(ForbiddenError, match="lacks scope audiences:write"):
        authorize_audiences(reader, write=True)
    brand = ApiClient(name="b", scopes=frozenset({"audiences:read"}), org_scope=ScopeRef(brand_id="demo-brand"))
    assert not authorize_audiences(brand, write=False, org=OrgDirectory()).everything
    store = ApiClient(
        name="s", scopes=frozenset({"audiences:read"}), org_scope=ScopeRef(brand_id="demo-brand", store_id="sh01")
    )
    with pytest.raises(ForbiddenError, match=r"limited to .*sh01"):
        authorize_audiences(store, write=False)


def _brand_access(brand: str) -> AudienceAccess:
    return AudienceAccess(ScopeRef(brand_id=brand), OrgDirectory(), f"the key of {brand}")


def test_a_brands_key_sees_defines_and_sizes_only_its_brands_audiences(
    service: AudienceService, profiles: CountingProfiles
) -> None:
    # Given Shanghai customers of two brands, and an unscoped audience of every brand's Shanghai customers
    for i in range(3):
        profiles.profiles[f"a{i}"] = make_profile(f"a{i}", city="Shanghai", tags={"lifecycle": "mature"})
    for i in range(2):
        profiles.profiles[f"o{i}"] = make_profile(
            f"o{i}", city="Shanghai", brand_id="demo-outlet", tags={"lifecycle": "growth"}
        )
    service.define(definition("everyone_shanghai"))
    mine, theirs = _brand_access(BRAND), _brand_access("demo-outlet")
    # When the brand's key defines one without naming a brand, Then it is bound to the key's brand
    stored = service.define(definition("brand_shanghai"), mine)
    assert stored.definition.brand_id == BRAND
    # And it holds only that brand's customers: its size, its portrait's customers and its preview
    assert service.size("brand_shanghai", SizeRequest(segments=2), mine).estimate == 3
    estimate = service.estimate(EstimateRequest(definition=definition("brand_shanghai"), portrait=["lifecycle"]), mine)
    assert (estimate.size.estimate, estimate.portrait.customers) == (3, 3)
    assert {v.value for v in estimate.portrait.dimensions[0].values} == {"mature"}
    assert {m.brand_id for m in service.preview("brand_shanghai", 10, access=mine).members} == {BRAND}
    # And the unscoped one still counts every brand's
    assert service.size("everyone_shanghai", SizeRequest(segments=2)).estimate == 5
    # When another brand's key looks, Then the audience is not there for it (list, get, size, snapshots)
    assert [a.id for a in service.list(theirs).audiences] == []
    assert [a.id for a in service.list(mine).audiences] == ["brand_shanghai"]
    for call in (
        lambda: service.get("brand_shanghai", theirs),
        lambda: service.size("brand_shanghai", SizeRequest(), theirs),
        lambda: service.snapshots("brand_shanghai", theirs),
        lambda: service.get("everyone_shanghai", mine),
    ):
        with pytest.raises(NotFoundError):
            call()
    # And it cannot take the id, name the other brand, or reference the other brand's audience
    with pytest.raises(ConflictError, match="taken"):
        service.define(definition("brand_shanghai"), theirs)
    with pytest.raises(ForbiddenError, match="not brand demo-brand"):
        service.define(definition("outlet_x", brand_id=BRAND), theirs)
    report = service.validate(definition("outlet_y", include={"audience": "brand_shanghai", "eq": True}), theirs)
    assert not report.valid and report.errors[0].field == "include.audience"
    # When an unscoped key binds an audience to one brand and references another brand's, Then it names the path
    crossed = definition("crossed", brand_id="demo-outlet", include={"audience": "brand_shanghai", "eq": True})
    report = service.validate(crossed)
    assert not report.valid and "holds brand demo-brand's customers" in report.errors[0].message


def test_timeline_entries_of_merged_persons_count_once(service: AudienceService, profiles: CountingProfiles) -> None:
    # Given one order filed under two anchors of one person (the same event id): it counts once
    profiles.profiles["p1"] = make_profile("p1")
    event = order_event("p1", NOW - timedelta(days=1))
    profiles.timelines["p1"] = [TimelineEntry("a", event), TimelineEntry("b", event)]
    service.define(definition("once", include={"agg": "count", "event": "order_placed", "eq": 1}))
    assert [m.person_id for m in service.preview("once", 5).members] == ["p1"]


def test_snapshot_ids_of_one_second_sort_in_export_order() -> None:
    # Two exports within one second: the latest snapshot must be the later one (a campaign reads "latest")
    second = datetime(2026, 12, 6, 7, 41, 1, tzinfo=UTC)
    ids = [snapshot_id_for(second.replace(microsecond=us)) for us in (999_999, 5, 0, 500_000)]
    assert all(re.fullmatch(SNAPSHOT_ID_PATTERN, i) for i in ids)
    assert sorted(ids) == [ids[2], ids[1], ids[3], ids[0]]
