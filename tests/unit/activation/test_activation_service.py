"""Activation over in-memory ports and the fakes' in-process transports: who is uploaded and why the others are not,
the key's brand and scopes, snapshots too large for one request (parts), chunked files, and failed parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from cdp.activation.models import ActivationRequest
from cdp.activation.ocean_engine import OceanEngine
from cdp.activation.ports import AdPlatform, AdPlatforms, Backoff, PlatformName, RetryingAdPlatform
from cdp.activation.service import ActivationFailed, ActivationService, ActivationStateError
from cdp.activation.store import ActivationStore
from cdp.activation.tencent_ads import TencentAds
from cdp.audiences.models import AudienceDefinition, SnapshotManifest
from cdp.audiences.store import AudienceStore
from cdp.channels.contact import in_global_control
from cdp.connectors.ad_accounts import OceanEngineAccount, TencentAdsAccount
from cdp.errors import ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile
from cdp_local.fakes.ocean_engine import FakeOceanEngine
from cdp_local.fakes.tencent_ads import FakeTencentAds
from tests.fakes.objects import InMemoryObjectStore
from tests.fakes.profiles import InMemoryProfiles
from tests.unit.audiences.conftest import NOW, definition, make_profile

BRAND, OTHER = "demo-brand", "demo-outlet"
SNAPSHOT = "20260601T120000Z-0000abcd"
WRITER = ApiClient("marketing", frozenset({"audiences:read", "audiences:write"}))
CONTROL_SHARE = 0.2


@dataclass
class FakePlatforms(AdPlatforms):
    tencent: FakeTencentAds = field(default_factory=FakeTencentAds)
    ocean: FakeOceanEngine = field(default_factory=FakeOceanEngine)
    max_ids_per_file: int = 1_000_000
    brands: tuple[str, ...] = (BRAND,)

    def platform(self, brand_id: str, name: PlatformName) -> AdPlatform | None:
        if brand_id not in self.brands:
            return None
        inner: AdPlatform
        if name == "tencent_ads":
            account = TencentAdsAccount.model_validate(self.tencent.account())
            inner = TencentAds(account, self.tencent.transport(), max_ids_per_file=self.max_ids_per_file)
        else:
            account_o = OceanEngineAccount.model_validate(self.ocean.account())
            inner = OceanEngine(account_o, self.ocean.transport(), max_ids_per_file=self.max_ids_per_file)
        return RetryingAdPlatform(inner, Backoff(waits_s=(0.0,)), lambda _: None)


def _phone(i: int) -> str:
    return f"+86138{i:08d}"


def _person(i: int, **changes: object) -> Profile:
    profile = make_profile(f"p{i:04d}", consent={"sms": True})
    return profile.model_copy(update={"identifiers": [f"phone:{_phone(i)}"], **changes})


def _control(start: int, count: int, inside: bool) -> list[int]:
    """Person numbers from `start` that are (or are not) in demo-brand's global control group."""
    found = []
    i = start
    while len(found) < count:
        if in_global_control(BRAND, f"p{i:04d}", CONTROL_SHARE) is inside:
            found.append(i)
        i += 1
    return found


class World:
    def __init__(self, profiles: list[Profile], members: list[str], part_size: int = 10_000) -> None:
        self.objects = InMemoryObjectStore()
        self.audiences = AudienceStore(self.objects)
        self.audiences.put(AudienceDefinition.model_validate(definition("winter_buyers")), NOW)
        self.manifest = self.audiences.write_snapshot(_draft(), members)
        self.platforms = FakePlatforms()
        self.clock = [NOW]
        org = OrgDirectory.model_validate(
            {
                "brands": {
                    BRAND: {
                        "group_id": BRAND,
                        "contact": {"global_control_share": CONTROL_SHARE, "suppress_audiences": ["opted_out"]},
                    }
                }
            }
        )
        self.service = ActivationService(
            self.audiences,
            InMemoryProfiles(profiles),
            org,
            ActivationStore(self.objects),
            self.platforms,
            now=lambda: self.clock[0],
            part_size=part_size,
        )


def _draft() -> SnapshotManifest:
    return SnapshotManifest(
        audience_id="winter_buyers",
        snapshot_id=SNAPSHOT,
        kind="static",
        definition=AudienceDefinition.model_validate(definition("winter_buyers")),
        version=1,
        source="evaluated",
        as_of=NOW,
        created_at=NOW,
        count=0,
        member_keys=[],
        condition_hash="h",
        catalog_version="c",
        segments=1,
        profiles_scanned=0,
    )


def _request(platform: PlatformName = "tencent_ads", **fields: object) -> ActivationRequest:
    return ActivationRequest.model_validate(
        {"brand_id": BRAND, "platform": platform, "consent_channel": "sms", **fields}
    )


def test_each_member_is_uploaded_hashed_or_counted_under_the_reason_it_was_left_out() -> None:
    ok, control = _control(0, 3, inside=False), _control(0, 1, inside=True)
    no_consent, suppressed, other, foreign, merged = _control(100, 5, inside=False)
    people = [_person(i) for i in ok]  # three who may be uploaded
    people.append(_person(control[0]))  # in the brand's global control group
    people.append(_person(no_consent, consent={}))
    people.append(_person(suppressed, tags=make_profile("x", tags={"audience:opted_out": True}).tags))
    people.append(_person(other, brand_id=OTHER))  # another brand's customer
    people.append(_person(foreign, identifiers=["phone:+14155550123", "email:a@b.example"]))  # no mainland mobile
    people.append(_person(merged, merged_into=f"p{ok[0]:04d}"))  # merged since into the first: a duplicate
    members = sorted([*(p.person_id for p in people), "p0999"])  # p0999: erased since the snapshot
    world = World(people, members)
    # When the snapshot is activated to Tencent Ads
    done = world.service.activate(WRITER, "winter_buyers", _request())
    # Then it is complete, and every member is counted once under one reason
    counts = done.counts.model_dump()
    assert done.status == "complete" and done.next_offset == len(members)
    assert counts == {
        "members": 10,
        "uploaded": 3,
        "identifiers": 3,
        "not_found": 1,
        "other_brand": 1,
        "no_consent": 1,
        "global_control": 1,
        "suppression_list": 1,
        "no_identifier": 1,
        "duplicate": 1,
    }
    # And the platform holds exactly the three MD5 hashes of the uploadable persons' numbers, in the audience named
    platform = world.platforms.platform(BRAND, "tencent_ads")
    assert platform is not None
    expected = {platform.identifier(_phone(i)) for i in ok}
    assert done.platform_audience_id is not None
    assert world.platforms.tencent.audience_ids(done.platform_audience_id) == expected
    assert done.id_type == "HASH_MOBILE_PHONE" and len(done.file_refs) == 1
    # And the record is listed, and holds counts, never an identifier
    listed = world.service.activations(WRITER, "winter_buyers").activations
    assert [a.activation_id for a in listed] == [done.activation_id]
    stored = world.objects.get_bytes(f"audiences/activations/winter_buyers/{done.activation_id}.json").decode()
    assert "138" not in stored.replace(done.activation_id, "") and all(h not in stored for h in expected if h)


def test_a_brand_scoped_key_uploads_its_own_brand_and_no_other() -> None:
    world = World([_person(i) for i in _control(0, 2, inside=False)], ["p0000"])
    own = ApiClient("brand-key", WRITER.scopes, ScopeRef(brand_id=BRAND))
    other = ApiClient("outlet-key", WRITER.scopes, ScopeRef(brand_id=OTHER))
    store_key = ApiClient("till", WRITER.scopes, ScopeRef(brand_id=BRAND, store_id="sh01"))
    reader = ApiClient("analyst", frozenset({"audiences:read"}))
    # Then another brand's key, a store's key and a key without audiences:write are refused; the brand's own may
    for client in (other, store_key, reader):
        with pytest.raises(ForbiddenError):
            world.service.activate(client, "winter_buyers", _request())
    assert world.service.activate(own, "winter_buyers", _request()).status == "complete"
    # And listing shows another brand's key none of demo-brand's activations
    assert world.service.activations(other, "winter_buyers").activations == []
    assert len(world.service.activations(own, "winter_buyers").activations) == 1


def test_unknown_audiences_snapshots_and_accounts_are_refused_by_name() -> None:
    world = World([_person(1)], ["p0001"])
    with pytest.raises(NotFoundError):
        world.service.activate(WRITER, "no_such_audience", _request())
    with pytest.raises(NotFoundError, match="no snapshot"):
        world.service.activate(WRITER, "winter_buyers", _request(snapshot_id="20990101T000000Z-00000000"))
    with pytest.raises(InvalidInputError) as no_account:
        world.service.activate(WRITER, "winter_buyers", _request(brand_id=OTHER))
    assert no_account.value.location == "platform" and "ad_platforms.demo-outlet" in no_account.value.message
    with pytest.raises(NotFoundError):
        world.service.activations(WRITER, "no_such_audience")


def test_a_snapshot_larger_than_a_request_is_refused_unless_sent_in_parts() -> None:
    ids = _control(0, 7, inside=False)
    world = World([_person(i) for i in ids], [f"p{i:04d}" for i in ids], part_size=3)
    # When 7 members are activated 3 per request without asking for parts / Then it is a 400 naming in_parts
    with pytest.raises(InvalidInputError) as refused:
        world.service.activate(WRITER, "winter_buyers", _request("ocean_engine"))
    assert refused.value.location == "in_parts" and "cdp audience activate" in refused.value.message
    # When asked in parts / Then the first part is uploaded and the rest is said to remain
    first = world.service.activate(WRITER, "winter_buyers", _request("ocean_engine", in_parts=True))
    assert (first.status, first.next_offset, first.counts.uploaded, first.platform_audience_id) == (
        "in_progress",
        3,
        3,
        None,  # Ocean Engine creates the data source from every file at the end
    )
    second = world.service.resume(WRITER, "winter_buyers", first.activation_id)
    last = world.service.resume(WRITER, "winter_buyers", first.activation_id)
    # Then the third part completes it: one data source from the three files, holding the seven hashes
    assert (second.status, last.status, last.next_offset, last.counts.uploaded) == ("in_progress", "complete", 7, 7)
    assert last.platform_audience_id is not None and len(last.file_refs) == 3
    held = world.platforms.ocean.data_source_ids(last.platform_audience_id)
    assert len(held) == 7 and {i.data_type for i in held} == {6}
    # And a complete activation cannot be continued
    with pytest.raises(ActivationStateError, match="complete"):
        world.service.resume(WRITER, "winter_buyers", first.activation_id)


def test_hashes_are_split_into_files_of_the_platforms_size() -> None:
    ids = _control(0, 5, inside=False)
    world = World([_person(i) for i in ids], [f"p{i:04d}" for i in ids])
    world.platforms.max_ids_per_file = 2
    # When five persons are activated to Tencent Ads with files of at most two ids
    done = world.service.activate(WRITER, "winter_buyers", _request())
    # Then three files go to one audience: 2 + 2 + 1
    assert [len(f.ids) for f in world.platforms.tencent.files] == [2, 2, 1]
    assert {f.audience_id for f in world.platforms.tencent.files} == {int(done.platform_audience_id or 0)}
    assert len(world.platforms.tencent.audiences) == 1


def test_a_failed_part_is_recorded_and_runs_again_when_continued() -> None:
    ids = _control(0, 2, inside=False)
    world = World([_person(i) for i in ids], [f"p{i:04d}" for i in ids])
    # Given the platform refuses the upload for good (the token expired)
    world.platforms.tencent.refuse_next(11000, times=1)
    with pytest.raises(ActivationFailed) as failed:
        world.service.activate(WRITER, "winter_buyers", _request())
    record = failed.value.activation
    # Then the record says failed with the platform's code, having counted nothing uploaded
    assert failed.value.permanent and failed.value.code == "credentials_rejected"
    assert (record.status, record.error_code, record.counts.uploaded, record.next_offset) == (
        "failed",
        "credentials_rejected",
        0,
        0,
    )
    assert world.service.activations(WRITER, "winter_buyers").activations[0].status == "failed"
    # When the token is renewed and the activation continued / Then the part runs again and completes
    done = world.service.resume(WRITER, "winter_buyers", record.activation_id)
    assert (done.status, done.counts.uploaded, done.error) == ("complete", 2, None)


def test_nobody_uploadable_completes_without_creating_an_empty_audience() -> None:
    world = World([make_profile("p0001")], ["p0001"])  # no consent
    done = world.service.activate(WRITER, "winter_buyers", _request())
    assert (done.status, done.counts.no_consent, done.platform_audience_id) == ("complete", 1, None)
    assert world.platforms.tencent.audiences == {}


def test_a_running_activation_is_not_continued_twice_until_it_is_stale() -> None:
    ids = _control(0, 4, inside=False)
    world = World([_person(i) for i in ids], [f"p{i:04d}" for i in ids], part_size=2)
    first = world.service.activate(WRITER, "winter_buyers", _request(in_parts=True))
    # Given a request that died while uploading the next part (its record left `running`)
    ActivationStore(world.objects).put(first.model_copy(update={"status": "running"}))
    with pytest.raises(ActivationStateError, match="another request"):
        world.service.resume(WRITER, "winter_buyers", first.activation_id)
    # When the record is older than the API's timeout by far / Then it may be continued
    world.clock[0] = NOW + timedelta(minutes=5)
    assert world.service.resume(WRITER, "winter_buyers", first.activation_id).status == "complete"
