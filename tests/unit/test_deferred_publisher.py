"""identity_merge publishes a batch's announcements together: fewer PutEvents calls, and none lost on failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp.errors import PublishError
from cdp.identity.events import ProfileMerged, ProfileUpdated, packed_updates
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.ports import DeferredPublisher


class FakeEvents:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if self.fail:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}] * len(Entries)}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"id-{i}"} for i in range(len(Entries))]}


def updated(n: int) -> ProfileUpdated:
    return ProfileUpdated(
        person_id=f"p{n}", brand_id="demo-brand", event_id=f"e{n}", event_type="order_placed", version=1
    )


def test_a_batch_of_records_goes_out_in_one_call_per_ten_entries_with_each_correlation_id() -> None:
    deferred, events = DeferredPublisher(), FakeEvents()
    for n in range(12):  # twelve records, one announcement each
        assert deferred.publish([updated(n)], correlation_id=f"e{n}") == []
    assert events.calls == []  # nothing leaves before the flush
    assert deferred.flush(EventBridgePublisher("bus", events)) == 12
    assert [len(c) for c in events.calls] == [10, 2]
    details = [e["Detail"] for call in events.calls for e in call]
    assert all(f'"correlation_id":"e{n}"' in details[n] for n in range(12))
    assert deferred.flush(EventBridgePublisher("bus", events)) == 0 and len(events.calls) == 2


def test_a_failed_flush_raises_so_the_whole_batch_is_redelivered() -> None:
    deferred = DeferredPublisher()
    deferred.publish([updated(1)], correlation_id="e1")
    with pytest.raises(PublishError):
        deferred.flush(EventBridgePublisher("bus", FakeEvents(fail=True)))


def test_identitys_profile_updates_are_packed_per_brand_and_the_rest_go_as_they_are() -> None:
    # Given a batch: 250 updates of one brand, one of another, and a merge announcement
    deferred, events = DeferredPublisher(), FakeEvents()
    for n in range(250):
        deferred.publish([updated(n)], correlation_id=f"e{n}")
    other = ProfileUpdated(person_id="q", brand_id="outlet", event_id="x", event_type="identify", version=3)
    merged = ProfileMerged(
        survivor_id="p1", merged_ids=["p2"], bridging_identifiers=["phone:1"], event_id="m", rule="r"
    )
    deferred.publish([other, merged], correlation_id="x")
    # When flushed with identity's packing
    assert deferred.flush(EventBridgePublisher("bus", events), pack=packed_updates) == 252
    # Then three entries leave in one call: the merge, and one packed entry per brand carrying every update
    (call,) = events.calls
    details = [json.loads(e["Detail"]) for e in call]
    assert [e["DetailType"] for e in call] == ["profile.merged", "profile.updated", "profile.updated"]
    demo, outlet = details[1]["data"], details[2]["data"]
    assert demo["brand_id"] == "demo-brand" and [u["person_id"] for u in demo["updates"]] == [
        f"p{n}" for n in range(250)
    ]
    assert outlet == {
        "brand_id": "outlet",
        "updates": [{"person_id": "q", "event_id": "x", "event_type": "identify", "version": 3}],
    }
    assert details[1]["metadata"]["correlation_id"] == "e0" and all(len(e["Detail"]) < 64 * 1024 for e in call)


def test_updates_carry_the_events_correlation_keys_and_packs_stay_under_the_entry_limit() -> None:
    from cdp.ingest.events import correlation_keys, parse_event

    order = parse_event(
        {
            "event_id": "o1",
            "brand_id": "demo-brand",
            "event_type": "order_placed",
            "occurred_at": "2026-12-01T10:00:00Z",
            "source": "pos",
            "identifiers": [{"type": "phone", "value": "+8613800138000"}],
            "properties": {
                "order_id": "A-1",
                "currency": "CNY",
                "total_minor": 300,
                "lines": [
                    {"sku": "CAKE-1", "category": "birthday_cake", "quantity": 1, "unit_price_minor": 200},
                    {"sku": "MUG-9", "category": "kitchen", "quantity": 1, "unit_price_minor": 100},
                ],
            },
        }
    )
    keys = correlation_keys(order)
    assert keys == {"order_id": ["A-1"], "sku": ["CAKE-1", "MUG-9"], "category": ["birthday_cake", "kitchen"]}
    # Big keys pack fewer updates per entry: every entry stays within what EventBridge takes
    big = {"sku": [f"SKU-{i:0>100}" for i in range(20)], "category": [f"c{i}" for i in range(20)]}
    deferred, events = DeferredPublisher(), FakeEvents()
    for n in range(200):
        deferred.publish([updated(n).model_copy(update={"keys": big})], correlation_id=f"e{n}")
    deferred.flush(EventBridgePublisher("bus", events), pack=packed_updates)
    entries = [e for call in events.calls for e in call]
    assert len(entries) > 1 and all(len(e["Detail"]) <= 256 * 1024 for e in entries)
    assert sum(len(json.loads(e["Detail"])["data"]["updates"]) for e in entries) == 200


def test_invocations_running_in_threads_each_flush_only_what_they_collected() -> None:
    import threading

    # Given one module-level collector shared by two invocations running at once (the local runtime's Map threads)
    deferred = DeferredPublisher()
    flushed: dict[str, int] = {}
    collected, flushing = threading.Barrier(2), threading.Barrier(2)

    def invocation(name: str, n: int) -> None:
        for i in range(n):
            deferred.publish([updated(i)], correlation_id=f"{name}-{i}")
        collected.wait()  # both have collected before either flushes
        flushed[name] = deferred.flush(EventBridgePublisher("bus", FakeEvents()))
        flushing.wait()

    threads = [threading.Thread(target=invocation, args=(name, n)) for name, n in (("a", 3), ("b", 5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each flushed its own announcements, none twice and none lost
    assert flushed == {"a": 3, "b": 5}
