"""`DynamoProfileStore.scan_with_timelines`: the batch jobs' read of every profile with its timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cdp import topology
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader, TimelineEntry
from cdp_local.runtime import LocalRuntime

BRAND = "demo-brand"


def _event(n: int, event_type: str, identifiers: list[dict[str, str]], **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"swt-{n}",
        "event_type": event_type,
        "source": fields.pop("source", "app"),
        "brand_id": BRAND,
        "occurred_at": f"2026-03-{n:02d}T10:00:00+08:00",
        "identifiers": identifiers,
        **fields,
    }


@pytest.fixture(scope="module")
def store() -> Iterator[DynamoProfileStore]:
    """Three persons; one of them merged from two (events filed under two anchors), one with points events."""
    phone, device = {"type": "phone", "value": "13811112001"}, {"type": "device_id", "value": "swt-dev-1"}
    email, card = {"type": "email", "value": "swt@example.com"}, {"type": "member_card", "value": "MC-SWT-2"}
    events = [
        _event(1, "identify", [phone], properties={"name": "Li Lei"}),
        _event(2, "page_view", [device], properties={"url": "https://shop.example/a"}),
        _event(3, "identify", [phone, device]),  # merges the device-only person into the phone's
        _event(4, "identify", [email], properties={"name": "Han Meimei"}),
        _event(5, "points_changed", [card], source="pos", store_id="sh01",
               properties={"delta": 100, "program": "dealer-sh01", "reason": "purchase"}),
        _event(6, "points_changed", [card], source="pos", store_id="sh01",
               properties={"delta": 50, "program": "dealer-sh01", "reason": "purchase"}),
    ]  # fmt: skip
    with LocalRuntime(state_machines=()) as rt:
        headers = {"content-type": "application/json", "x-api-key": rt.api_key}
        assert rt.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202
        rt.drain()
        yield DynamoProfileStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))


def _one_by_one(store: ProfileReader) -> dict[str, tuple[Profile, list[TimelineEntry]]]:
    return {p.person_id: (p, store.timeline(p)) for shard in range(3) for p in store.scan_shard(shard, 3)}


def test_the_whole_table_in_one_scan_reads_what_each_timeline_query_reads(store: DynamoProfileStore) -> None:
    # Given the profiles and their timelines read the one-by-one way (a scan per shard, queries per identifier)
    expected = _one_by_one(store)
    # When every profile is read with its timeline in one scan of the table
    bulk = {profile.person_id: (profile, timeline) for profile, timeline in store.scan_with_timelines(0, 1)}
    # Then the same surviving persons come back, with the same events in the same order (merged persons included)
    assert bulk == expected
    assert len(bulk) == 3
    assert sorted(len(timeline) for _, timeline in bulk.values()) == [1, 2, 3]


def test_one_shard_of_several_reads_its_own_profiles_with_their_timelines(store: DynamoProfileStore) -> None:
    # Given the one-by-one read
    expected = _one_by_one(store)
    # When each of three shards is read with timelines
    shards = [dict((p.person_id, (p, t)) for p, t in store.scan_with_timelines(s, 3)) for s in range(3)]
    # Then together they are every person once, each with their own timeline
    assert {pid: pair for shard in shards for pid, pair in shard.items()} == expected
    assert sum(len(shard) for shard in shards) == len(expected)


def test_get_many_answers_what_get_answers_for_each_id(store: DynamoProfileStore) -> None:
    # Given every surviving person, the ids merged into them, and an id nobody has
    survivors = [p for p, _ in store.scan_with_timelines(0, 1)]
    merged_away = [pid for p in survivors for pid in p.merged_from]
    asked = [*(p.person_id for p in survivors), *merged_away, "nobody", survivors[0].person_id]
    assert merged_away  # the fixture merged the device-only person into the phone's
    # When they are read together (batched reads, one round per merge hop)
    many = store.get_many(asked)
    # Then each requested id maps to what get() returns for it (a merged-away id to its survivor), unknown left out
    assert many == {pid: store.get(pid) for pid in asked if pid != "nobody"}
    assert all(many[pid].person_id != pid for pid in merged_away)
