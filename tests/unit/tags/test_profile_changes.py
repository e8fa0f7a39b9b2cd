"""The profile changes tag_update reads up front: a batch's parseable records; one naming no person is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from cdp.shared.deadletter import PERMANENT_ERRORS, entry_with_only, parseable
from cdp.tags.catalog import IDENTITY_CHANGED
from cdp.tags.changes import ProfileChange, ProfileChangeRecord
from cdp.topology import PROFILE_MERGED, PROFILE_UPDATED, SOURCE_IDENTITY


def record(detail_type: str, data: dict[str, Any], n: int = 1) -> dict[str, Any]:
    entry = {
        "version": "0",
        "id": f"bus-{n}",
        "detail-type": detail_type,
        "source": SOURCE_IDENTITY,
        "account": "123456789012",
        "time": "2026-03-08T01:30:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "metadata": {
                "event_name": detail_type,
                "event_source": SOURCE_IDENTITY,
                "event_version": "1",
                "correlation_id": "c",
            },
            "data": data,
        },
    }
    return {
        "messageId": f"m{n}",
        "receiptHandle": "r",
        "body": json.dumps(entry),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "1",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def test_a_batch_parses_what_it_can_and_a_change_naming_no_person_is_refused_for_good() -> None:
    updated = record(PROFILE_UPDATED, {"person_id": "p1", "event_type": "order_placed"}, 1)
    merged = record(PROFILE_MERGED, {"survivor_id": "p2"}, 2)
    nobody = record(PROFILE_UPDATED, {"event_type": "order_placed"}, 3)
    packed = record(
        PROFILE_UPDATED,
        {
            "brand_id": "b",
            "updates": [
                {"person_id": "p3", "event_id": "e3", "event_type": "page_view", "version": 4},
                {"event_id": "e4", "event_type": "page_view", "version": 1},
            ],
        },
        4,
    )
    parsed = parseable(ProfileChangeRecord, [updated, nobody, merged, packed, {"not": "a record"}])
    changes = [(c.subject, c.trigger(r.body.detail_type)) for r in parsed for c in r.body.detail.data.parseable()]
    assert changes == [("p1", "order_placed"), ("p2", IDENTITY_CHANGED), ("p3", "page_view")]
    (alone,) = ProfileChangeRecord.model_validate(nobody).body.detail.data.raw_changes()
    with pytest.raises(ValidationError, match="names no person") as refused:
        ProfileChange.model_validate(alone)
    assert isinstance(refused.value, PERMANENT_ERRORS)  # parked at once, with this reason
    # A bad change of a packed entry is parked alone: the entry it is redriven as carries only it
    entry = ProfileChangeRecord.model_validate(packed).body
    bad = entry.detail.data.raw_changes()[1]
    body = json.loads(entry_with_only(entry.model_dump(mode="json", by_alias=True), "updates", [bad]))
    assert body["detail"]["data"] == {"brand_id": "b", "updates": [bad]} and body["id"] == "bus-4"
    assert ProfileChangeRecord.model_validate({**packed, "body": json.dumps(body)}).body.detail.data.parseable() == []
