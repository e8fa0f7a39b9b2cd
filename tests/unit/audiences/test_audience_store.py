"""The audience store: versions and times, tombstones, dynamic definitions, snapshots with the manifest last."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from cdp.audiences.models import AudienceDefinition, SnapshotManifest
from cdp.audiences.store import AudienceStore, manifest_key
from cdp.errors import NotFoundError
from tests.fakes.objects import InMemoryObjectStore
from tests.unit.audiences.conftest import NOW, definition


def _def(audience_id: str, kind: str = "static", city: str = "Shanghai") -> AudienceDefinition:
    return AudienceDefinition.model_validate(definition(audience_id, kind, include={"attr": "city", "eq": city}))


def _draft(audience_id: str, snapshot_id: str) -> SnapshotManifest:
    d = _def(audience_id)
    return SnapshotManifest(
        audience_id=audience_id,
        snapshot_id=snapshot_id,
        kind="static",
        definition=d,
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


def test_each_update_raises_the_version_and_keeps_the_creation_time(store: AudienceStore) -> None:
    # Given an audience defined, then changed an hour later
    first = store.put(_def("a"), NOW)
    second = store.put(_def("a", city="Beijing"), NOW + timedelta(hours=1))
    # Then versions count up, created_at stays, updated_at moves, and get returns the latest
    assert (first.version, second.version) == (1, 2)
    assert second.created_at == NOW and second.updated_at == NOW + timedelta(hours=1)
    assert store.get("a").definition.include.model_dump(exclude_none=True)["eq"] == "Beijing"


def test_a_deleted_audience_is_gone_but_defining_it_again_continues_its_versions(store: AudienceStore) -> None:
    store.put(_def("a"), NOW)
    tombstone = store.delete("a", NOW + timedelta(minutes=1))
    assert tombstone.version == 2 and tombstone.deleted_at is not None
    with pytest.raises(NotFoundError):
        store.get("a")
    assert store.list() == []
    again = store.put(_def("a"), NOW + timedelta(minutes=2))
    assert again.version == 3 and again.created_at == NOW + timedelta(minutes=2) and again.deleted_at is None


def test_dynamic_definitions_are_the_live_dynamic_audiences(store: AudienceStore) -> None:
    store.put(_def("s1"), NOW)
    store.put(_def("d1", "dynamic"), NOW)
    store.put(_def("d2", "dynamic"), NOW)
    store.delete("d2", NOW)
    assert [d.id for d in store.dynamic_definitions()] == ["d1"]
    assert [s.definition.id for s in store.list()] == ["d1", "s1"]


def test_a_snapshot_writes_its_members_files_first_and_the_manifest_last(objects: InMemoryObjectStore) -> None:
    # Given a store that cuts members files at 2 persons
    store = AudienceStore(objects, members_per_file=2)
    # When five members are written
    manifest = store.write_snapshot(_draft("a", "20260601T120000Z-0000abcd"), ["p1", "p2", "p3", "p4", "p5"])
    # Then three members files come first, then the manifest with their keys and the count
    prefix = "audiences/snapshots/a/20260601T120000Z-0000abcd/"
    assert objects.writes == [
        f"{prefix}members-00000.jsonl",
        f"{prefix}members-00001.jsonl",
        f"{prefix}members-00002.jsonl",
        f"{prefix}manifest.json",
    ]
    stored = json.loads(objects.get_bytes(f"{prefix}manifest.json"))
    assert stored["count"] == 5 and stored["member_keys"] == objects.writes[:3]
    assert objects.get_bytes(f"{prefix}members-00002.jsonl") == b'{"person_id": "p5"}\n'
    assert list(store.members(manifest)) == ["p1", "p2", "p3", "p4", "p5"]


def test_an_unfinished_snapshot_is_invisible_and_the_latest_complete_one_wins(objects: InMemoryObjectStore) -> None:
    store = AudienceStore(objects)
    with pytest.raises(NotFoundError, match="export it first"):
        store.latest_snapshot("a")
    store.write_snapshot(_draft("a", "20260601T120000Z-00000001"), ["p1"])
    store.write_snapshot(_draft("a", "20260602T120000Z-00000002"), ["p1", "p2"])
    # Given a newer export that crashed after its members file (no manifest)
    newest = store.write_snapshot(_draft("a", "20260603T120000Z-00000003"), ["p9"])
    objects.delete(manifest_key("a", newest.snapshot_id))
    # Then readers see the two complete ones, newest first
    assert store.latest_snapshot("a").snapshot_id == "20260602T120000Z-00000002"
    assert [s.count for s in store.snapshots("a")] == [2, 1]
    with pytest.raises(NotFoundError, match="no snapshot"):
        store.snapshot("a", newest.snapshot_id)


def test_an_empty_snapshot_still_has_one_members_file(store: AudienceStore) -> None:
    manifest = store.write_snapshot(_draft("a", "20260601T120000Z-0000abcd"), [])
    assert manifest.count == 0 and len(manifest.member_keys) == 1
    assert list(store.members(manifest)) == []
