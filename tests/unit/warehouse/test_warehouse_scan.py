"""The DynamoDB adapter of the warehouse source, on a stub client: persons assembled from their person and tags
items per segment, events parsed, the filter it asks DynamoDB for, and a failing segment that fails the run (an
export of part of the table would replace the snapshots with part of the persons)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdp.errors import StoreError
from cdp.ingest.events import parse_event
from cdp.org import OrgDirectory
from cdp.profile import keys
from cdp.profile.dynamodb import profile_item, tags_item
from cdp.profile.models import Profile, TagValue
from cdp.shared.dynamo import to_item
from cdp.warehouse.aws import DynamoWarehouseSource
from cdp.warehouse.parquet import DuckDbTableWriter
from cdp.warehouse.ports import FiledEventItem, PersonItem
from cdp.warehouse.service import ExportRequest, export_warehouse
from tests.fakes.warehouse import InMemoryWarehouseObjects

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _person(person_id: str, phone: str, tags: bool) -> list[dict[str, Any]]:
    profile = Profile(person_id=person_id, brand_id="demo-brand", created_at=AT, updated_at=AT, identifiers=[phone])
    items = [to_item(profile_item(profile))]
    if tags:
        items.append(to_item(tags_item(person_id, 1, {"lifecycle": TagValue(value="growth", since=AT)}, {}, None)))
    return items


def _filed(phone: str) -> dict[str, Any]:
    event = parse_event(
        {
            "event_id": "e-1",
            "source": "app",
            "brand_id": "demo-brand",
            "occurred_at": AT.isoformat(),
            "event_type": "custom",
            "identifiers": [{"type": "phone", "value": phone.removeprefix("phone:")}],
            "properties": {"name": "tapped"},
        }
    )
    anchor = keys.anchor_pk(OrgDirectory().brand("demo-brand").namespace, phone)
    return to_item({"pk": anchor, "sk": keys.timeline_sk(AT, "e-1"), "event": event.model_dump_json()})


class StubScan:
    """Serves pages per segment; records the requests; a page given as an exception is raised."""

    def __init__(self, pages: dict[int, list[list[dict[str, Any]] | Exception]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> StubScan:
        return self

    def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
        self.requests.append(request)
        for page in self.pages.get(request["Segment"], []):
            if isinstance(page, Exception):
                raise page
            yield {"Items": page, "ConsumedCapacity": {"CapacityUnits": 0.5}}


def test_persons_come_with_their_tags_and_events_with_their_anchor() -> None:
    # Given a segment where a person's tags item follows them, a person without one, and a merged-away person's
    # tags item (their person item was filtered out), spread over two pages; and an event in another segment
    a, b = _person("p-a", "phone:+8613800000001", tags=True), _person("p-b", "phone:+8613800000002", tags=False)
    orphan_tags = to_item(tags_item("p-gone", 3, {}, {}, None))
    stub = StubScan({0: [[a[0]], [a[1], *b, orphan_tags]], 1: [[_filed("phone:+8613800000001")]]})
    source = DynamoWarehouseSource("t", client=stub, org=OrgDirectory(), segments=2)  # type: ignore[arg-type]
    # When scanned
    items = list(source.scan(date(2026, 11, 1), "demo-brand"))
    # Then both persons come once (p-a with their tags), and the event with the anchor it is filed under
    persons = {i.profile.person_id: i for i in items if isinstance(i, PersonItem)}
    assert set(persons) == {"p-a", "p-b"} and persons["p-a"].profile.tags["lifecycle"].value == "growth"
    namespace = OrgDirectory().brand("demo-brand").namespace
    assert persons["p-a"].anchors == (keys.anchor_pk(namespace, "phone:+8613800000001"),)
    (event,) = [i for i in items if isinstance(i, FiledEventItem)]
    assert event.anchor == persons["p-a"].anchors[0] and source.read_units == 1.5
    # And DynamoDB was asked for current persons, tags items and the brand's events since that day, per segment
    request = stub.requests[0]
    assert "attribute_not_exists(merged_into)" in request["FilterExpression"]
    assert request["ExpressionAttributeValues"][":from"] == {"S": "T#2026-11-01"}
    assert request["ExpressionAttributeValues"][":brand"] == {"S": "demo-brand"}
    assert sorted(r["Segment"] for r in stub.requests) == [0, 1]


@pytest.mark.parametrize(
    "failure",
    [ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Scan"), TypeError("a bug")],
    ids=["sdk", "bug"],
)
def test_a_failing_segment_fails_the_run_before_anything_is_replaced(failure: Exception, tmp_path: Path) -> None:
    # Given an export in place, and a scan whose second segment fails after the first delivered a person
    objects = InMemoryWarehouseObjects()
    objects.objects["warehouse/profiles/brand_id=demo-brand/part-0.parquet"] = b"yesterday's snapshot"
    stub = StubScan({0: [_person("p-a", "phone:+8613800000001", tags=False)], 1: [failure]})
    source = DynamoWarehouseSource("t", client=stub, org=OrgDirectory(), segments=2)  # type: ignore[arg-type]
    # When the export runs / Then it raises (a retry runs it again) and yesterday's files are untouched
    with DuckDbTableWriter(tmp_path) as writer, pytest.raises((StoreError, TypeError)):
        export_warehouse(ExportRequest(), source, objects, writer, OrgDirectory(), AT, tmp_path)
    assert objects.objects == {"warehouse/profiles/brand_id=demo-brand/part-0.parquet": b"yesterday's snapshot"}
