"""Failed processing is parked in the DLQ with its reason and re-driven by an operator; archived raw requests are
replayed for a time range. All through the HTTP API (operations routes, scope operations:replay)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.errors import StoreError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.shared.time import iso, utc_now
from cdp_local.runtime import LocalRuntime
from tests.e2e.conftest import put_on_bus


def _admin(runtime: LocalRuntime) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.admin_key}


def _call(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    status, _, payload = runtime.http(method, path, raw, _admin(runtime))
    return status, json.loads(payload or b"null")


def _segment(runtime: LocalRuntime, calls: list[dict[str, Any]]) -> tuple[int, Any]:
    auth = base64.b64encode(f"{runtime.write_key}:".encode()).decode()
    headers = {"content-type": "application/json", "authorization": f"Basic {auth}"}
    status, _, payload = runtime.http("POST", "/v1/batch", json.dumps({"batch": calls}).encode(), headers)
    return status, json.loads(payload)


def _person(runtime: LocalRuntime, kind: str, value: str) -> dict[str, Any] | None:
    status, body = _call(runtime, "GET", f"/v1/profiles/by-identifier/{kind}/{value}?brand_id=demo-brand")
    return body if status == 200 else None


def _empty(runtime: LocalRuntime, queue_name: str) -> None:
    """Delete every message (PurgeQueue is allowed once a minute per queue)."""
    sqs, url = runtime.client("sqs"), runtime.queue_urls[queue_name]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _purge_dlq(runtime: LocalRuntime) -> None:
    _empty(runtime, topology.dlq_name(topology.IDENTITY_QUEUE))


def test_a_malformed_bus_event_is_parked_at_once_with_its_reason(runtime: LocalRuntime) -> None:
    # Given an event on the bus that no consumer can ever parse (it names no identifiers)
    bad = {"event_id": "dlq-bad-1", "event_type": "page_view", "source": "web", "brand_id": "demo-brand"}
    put_on_bus(runtime, bad, correlation_id="dlq-test")
    try:
        # When it is delivered
        report = runtime.drain()
        # Then it is parked on the first attempt (retrying cannot help), with the reason
        assert report.by_queue[topology.IDENTITY_QUEUE.local_name].failed == 0
        status, listing = _call(runtime, "GET", "/v1/admin/dead-letters?queue=identity-merge")
        assert status == 200
        reasons = [item["reason"] for item in listing["listed"] if item["reason"]]
        parked = [r for r in reasons if "dlq-test" in json.dumps(r) or r["error_type"] == "ValidationError"]
        assert parked, listing
        assert parked[0]["permanent"] is True and parked[0]["receive_count"] == 1
        assert "identifiers" in parked[0]["error"]
    finally:
        _purge_dlq(runtime)


def test_a_bad_event_packed_with_good_ones_is_parked_alone_and_the_good_ones_are_resolved(
    runtime: LocalRuntime,
) -> None:
    runtime.drain()
    _purge_dlq(runtime)
    # Given one bus entry packing two good events and one that names no identifier (as ingest packs a request)
    good = [
        {
            "event_id": f"pack-good-{i}",
            "event_type": "identify",
            "source": "app",
            "brand_id": "demo-brand",
            "occurred_at": iso(utc_now()),
            "identifiers": [{"type": "phone", "value": f"1370009{i:04d}"}],  # not the packaged seed list's phone
            "properties": {"name": f"Packed {i}"},
        }
        for i in range(2)
    ]
    bad = {"event_id": "pack-bad", "event_type": "page_view", "source": "web", "brand_id": "demo-brand"}
    put_on_bus(runtime, [good[0], bad, good[1]], correlation_id="pack-test")
    try:
        # When it is delivered
        runtime.drain()
        # Then both good events made persons, and only the bad one is parked, with its reason and its brand
        assert _person(runtime, "phone", "+8613700090000") and _person(runtime, "phone", "+8613700090001")
        sqs = runtime.client("sqs")
        url = runtime.queue_urls[topology.dlq_name(topology.IDENTITY_QUEUE)]
        letters = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        (parked,) = [m for m in letters.get("Messages", []) if "pack-" in m["Body"]]
        body = json.loads(parked["Body"])
        assert [e["event_id"] for e in body["detail"]["data"]["events"]] == ["pack-bad"]
        assert body["detail"]["data"]["brand_id"] == "demo-brand"
        reason = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
        assert reason["cdp-permanent"] == "true" and "identifiers" in reason["cdp-error"]
        assert reason["cdp-brand-id"] == "demo-brand"
    finally:
        _purge_dlq(runtime)


def test_a_failure_that_outlasts_the_retries_is_parked_and_redriven_after_the_fix(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.drain()  # other tests' messages processed first: this test counts its own deliveries
    # Given the profile store fails on every write (an outage)

    def outage(*args: Any, **kwargs: Any) -> bool:
        raise StoreError("simulated DynamoDB outage")

    monkeypatch.setattr(DynamoIdentityStore, "commit", outage)
    call = {"type": "identify", "messageId": "dlq-redrive-1", "userId": "dlq-user-1", "traits": {"name": "Wu"}}
    assert _segment(runtime, [call])[0] == 200
    try:
        # When the message fails on every allowed receive
        report = runtime.drain()
        assert (
            report.by_queue[topology.IDENTITY_QUEUE.local_name].failed == topology.IDENTITY_QUEUE.max_receive_count - 1
        )
        status, listing = _call(runtime, "GET", "/v1/admin/dead-letters?queue=identity-merge")
        reasons = [i["reason"] for i in listing["listed"] if i["reason"] and i["reason"]["error_type"] == "StoreError"]
        # Then it is parked on the last receive with the error, not lost
        assert reasons and reasons[0]["permanent"] is False
        assert reasons[0]["receive_count"] == topology.IDENTITY_QUEUE.max_receive_count
        assert "simulated DynamoDB outage" in reasons[0]["error"]
        assert _person(runtime, "user_id", "dlq-user-1") is None
        # And once the outage is over an operator redrives it and the person appears
        monkeypatch.undo()
        status, summary = _call(runtime, "POST", "/v1/admin/dead-letters/redrive", {"queue": "identity-merge"})
        assert status == 200 and summary["redriven"] >= 1
        runtime.drain()
        person = _person(runtime, "user_id", "dlq-user-1")
        assert person is not None and person["traits"]["name"] == "Wu"
    finally:
        monkeypatch.undo()
        _purge_dlq(runtime)


def test_archived_requests_are_replayed_for_a_time_range(runtime: LocalRuntime) -> None:
    runtime.drain()
    # Given a Segment batch accepted and archived, whose bus messages were lost before processing
    start = utc_now() - timedelta(seconds=1)
    calls = [
        {"type": "identify", "messageId": "replay-1", "userId": "replay-user-1", "traits": {"email": "r1@example.cn"}},
        {"type": "track", "messageId": "replay-2", "userId": "replay-user-1", "event": "Coupon Viewed"},
    ]
    status, body = _segment(runtime, calls)
    assert status == 200 and body["accepted"] == 2
    _empty(runtime, topology.IDENTITY_QUEUE.local_name)
    runtime.drain()
    assert _person(runtime, "user_id", "replay-user-1") is None
    # When an operator replays the segment archive of that time range
    end = utc_now() + timedelta(seconds=1)
    request = {"source": "segment", "start": iso(start), "end": iso(end)}
    status, summary = _call(runtime, "POST", "/v1/admin/replay", request)
    assert status == 200, summary
    assert summary["objects"] >= 1 and summary["accepted"] >= 2 and summary["failures"] == []
    runtime.drain()
    # Then the person is there with both events, and replaying again changes nothing (event ids apply once)
    person = _person(runtime, "user_id", "replay-user-1")
    assert person is not None and person["activity"]["custom_counts"] == {"Coupon Viewed": 1}
    _call(runtime, "POST", "/v1/admin/replay", request)
    runtime.drain()
    again = _person(runtime, "user_id", "replay-user-1")
    assert again is not None and again["activity"]["event_count"] == person["activity"]["event_count"] == 2


def test_operations_need_the_replay_scope_and_valid_requests(runtime: LocalRuntime) -> None:
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}  # events:write only
    status, _, _ = runtime.http("GET", "/v1/admin/dead-letters", b"", headers)
    assert status == 403
    status, body = _call(
        runtime,
        "POST",
        "/v1/admin/replay",
        {"source": "segment", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert status == 400 and "end must be after start" in body["message"]
    status, body = _call(runtime, "GET", "/v1/admin/dead-letters?queue=nope")
    assert status == 400 and body["field"] == "queue"
