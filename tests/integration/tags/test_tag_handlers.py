"""tag_update, tag_sweep and the profile API's as-of route in-process on moto: the real DynamoDB adapter (tags,
history items, version checks), dynamic audiences from S3, and what reaches the bus (captured through an SQS target).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.audiences.store import AudienceStore
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.service import resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.profile import keys
from cdp.profile.models import Profile, TagValue
from cdp.settings import get_settings
from cdp.shared.aws import S3ObjectStore
from cdp.shared.deadletter import ATTR_ERROR
from cdp.shared.dynamo import from_item, to_item
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso, utc_now
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.dynamodb import DynamoTagStore, carried_entries, history_entries
from cdp.tags.ports import TagHistoryEntry
from cdp_local.aws_costs import ApiCallCounter
from cdp_local.cost_model import item_size
from cdp_local.runtime import LocalLambdaContext, apigw
from cdp_local.runtime.core import create_table
from cdp_local.runtime.environment import ADMIN_API_KEY, STORE_API_KEY, seeded_api_keys

BRAND = "demo-brand"
_ids = itertools.count()


class _Quiet(EventPublisher):
    def publish(self, events: Any, correlation_id: str) -> list[str]:
        return ["x"] * len(events)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    env = {
        topology.PROFILES_TABLE.env_var: topology.PROFILES_TABLE.local_name,
        topology.LEDGER_TABLE.env_var: topology.LEDGER_TABLE.local_name,
        topology.OFFERS_TABLE.env_var: topology.OFFERS_TABLE.local_name,
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.EVENT_BUS_ENV: topology.EVENT_BUS_LOCAL_NAME,
        topology.API_KEYS_SECRET_ENV: topology.API_KEYS_SECRET_LOCAL_NAME,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        ddb = boto3.client("dynamodb")
        for table in topology.TABLES:
            create_table(ddb, table)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="cdp-tag-update-dlq")["QueueUrl"]
        monkeypatch.setenv(topology.TAG_QUEUE.dlq_env, dlq)
        # Everything the tag engine publishes lands in a capture queue
        events = boto3.client("events")
        events.create_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
        capture = sqs.create_queue(QueueName="capture")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="capture-tags",
            EventBusName=topology.EVENT_BUS_LOCAL_NAME,
            EventPattern=json.dumps({"source": [topology.SOURCE_TAGS]}),
        )
        events.put_targets(
            Rule="capture-tags", EventBusName=topology.EVENT_BUS_LOCAL_NAME, Targets=[{"Id": "q", "Arn": arn}]
        )
        boto3.client("secretsmanager").create_secret(
            Name=topology.API_KEYS_SECRET_LOCAL_NAME,
            SecretString=json.dumps({"keys": seeded_api_keys("ingest-key", ADMIN_API_KEY)}),
        )
        get_settings.cache_clear()
        from functions.profile_api import handler as profile_api
        from functions.tag_sweep import handler as tag_sweep
        from functions.tag_update import handler as tag_update

        caches = [
            tag_update._wired,
            tag_update._dead_letters,
            tag_sweep._ports,
            profile_api.dependencies,
        ]
        for c in caches:
            c.cache_clear()
        yield {
            "ddb": ddb,
            "s3": s3,
            "sqs": sqs,
            "capture": capture,
            "dlq": dlq,
            "store": DynamoTagStore(topology.PROFILES_TABLE.local_name, client=ddb),
            "identity": DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=ddb),
            "tag_update": tag_update,
            "tag_sweep": tag_sweep,
            "profile_api": profile_api,
        }
        for c in caches:
            c.cache_clear()
        get_settings.cache_clear()


# ---- helpers ------------------------------------------------------------------------------------------------------


def order(phone: str, at: datetime, total: int = 30_000) -> CanonicalEvent:
    return parse_event(
        {
            "event_id": f"it-{next(_ids)}",
            "event_type": "order_placed",
            "source": "pos",
            "brand_id": BRAND,
            "store_id": "sh01",
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "phone", "value": phone}],
            "properties": {
                "order_id": f"O-{next(_ids)}",
                "lines": [{"sku": "CAKE", "category": "cake", "quantity": 1, "unit_price_minor": total}],
                "total_minor": total,
                "currency": "CNY",
                "fulfilment": "offline",
            },
        }
    )


def resolve(aws: dict[str, Any], event: CanonicalEvent) -> str:
    outcome = resolve_event(event, aws["identity"], _Quiet())
    assert outcome.person_id is not None
    return outcome.person_id


def sqs_event(
    person_id: str,
    event_type: str,
    bus_id: str | None = None,
    receives: int = 1,
    updates: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One profile.updated; with `updates`: a packed entry of them (as identity publishes a batch's)."""
    body = {
        "version": "0",
        "id": bus_id or str(uuid.uuid4()),
        "detail-type": topology.PROFILE_UPDATED,
        "source": topology.SOURCE_IDENTITY,
        "account": "123456789012",
        "time": "2026-03-08T01:30:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "metadata": {
                "event_name": topology.PROFILE_UPDATED,
                "event_source": topology.SOURCE_IDENTITY,
                "event_version": "1",
                "correlation_id": "corr-1",
            },
            "data": {
                "person_id": person_id,
                "brand_id": BRAND,
                "event_id": "e",
                "event_type": event_type,
                "version": 1,
            }
            if updates is None
            else {"brand_id": BRAND, "updates": updates},
        },
    }
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "rh",
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": str(receives),
                    "SentTimestamp": "1",
                    "SenderId": "x",
                    "ApproximateFirstReceiveTimestamp": "1",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cdp-tag-update",
                "awsRegion": "us-east-1",
            }
        ]
    }


def update(aws: dict[str, Any], person_id: str, event_type: str, **kwargs: Any) -> None:
    result = aws["tag_update"].lambda_handler(
        sqs_event(person_id, event_type, **kwargs), LocalLambdaContext(topology.TAG_UPDATE)
    )
    assert result == {"batchItemFailures": []}


def run_sweep(aws: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = aws["tag_sweep"].lambda_handler(request, LocalLambdaContext(topology.TAG_SWEEP))
    return result


def published(aws: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    while True:
        messages = aws["sqs"].receive_message(QueueUrl=aws["capture"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for m in messages:
            out.append(json.loads(m["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["capture"], ReceiptHandle=m["ReceiptHandle"])


def profile(aws: dict[str, Any], person_id: str) -> Profile:
    p = aws["store"].get(person_id)
    assert p is not None
    return p


def history_items(aws: dict[str, Any], person_id: str) -> list[dict[str, Any]]:
    response = aws["ddb"].query(
        TableName=topology.PROFILES_TABLE.local_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": {"S": keys.person_pk(person_id)}, ":h": {"S": keys.TAG_HISTORY_PREFIX}},
    )
    return list(response["Items"])


def api_get(aws: dict[str, Any], path: str, query: dict[str, str], key: str = ADMIN_API_KEY) -> tuple[int, Any]:
    raw_query = urlencode(query)
    matched = apigw.match_route("GET", path)
    assert matched is not None, path
    route, params = matched
    event = apigw.build_event(route, params, "GET", path, raw_query, b"", {"x-api-key": key})
    result = aws["profile_api"].lambda_handler(event, LocalLambdaContext(topology.PROFILE_API))
    return result["statusCode"], json.loads(result["body"])


RECENT_BUYERS = AudienceDefinition.model_validate(
    {
        "id": "recent_buyers",
        "name": "Bought in the last 7 days",
        "kind": "dynamic",
        "include": {"tag": "purchased_last_7d", "eq": True},
    }
)


# ---- tag_update ---------------------------------------------------------------------------------------------------


def test_tag_update_writes_tags_history_and_announces_changes(aws: dict[str, Any]) -> None:
    # Given a person with an order 2 days ago, and a dynamic audience of recent buyers stored in S3
    AudienceStore(S3ObjectStore(topology.DATA_BUCKET_LOCAL_NAME, aws["s3"])).put(RECENT_BUYERS, utc_now())
    placed = utc_now().replace(microsecond=0) - timedelta(days=2)
    person_id = resolve(aws, order("13900000001", placed))
    # When tag_update handles the profile.updated of the order
    update(aws, person_id, "order_placed", bus_id="bus-1")
    # Then the tags are on the profile, the flag lapsing 7 days after the order, and the next refresh is then
    p = profile(aws, person_id)
    assert p.tags["purchased_last_7d"].value is True and p.tags["purchased_last_7d"].expires_at == placed + timedelta(7)
    assert p.tags["lifecycle"].value == "growth" and p.tags["audience:recent_buyers"].value is True
    assert p.next_tag_expiry == placed + timedelta(days=7)
    # And every new tag has its history entry, caused by the bus event: carried by the tags item (one write, no
    # transaction) until the next write files it as a history item, and read the same either way
    store: DynamoTagStore = aws["store"]
    history = store.tag_history(person_id)
    assert {e.tag for e in history} == set(p.tags) and {e.cause for e in history} == {"bus-1"}
    assert history_items(aws, person_id) == [] and len(p.tags_pending) == len(history)
    # And tags.changed, lifecycle.changed and audience.entered reached the bus
    names = sorted(e["detail-type"] for e in published(aws))
    assert names == [topology.AUDIENCE_ENTERED, topology.LIFECYCLE_CHANGED, topology.TAGS_CHANGED]
    # When the next change is written, the history reads the same, whether the item still carries the first
    # changes or filed them
    resolve(aws, order("13900000001", placed + timedelta(hours=1)))
    update(aws, person_id, "order_placed", bus_id="bus-2")
    again = store.tag_history(person_id)
    assert [e for e in again if e.cause == "bus-1"] == history and any(e.cause == "bus-2" for e in again)


def test_a_tags_item_carries_changes_until_they_outgrow_it_then_files_them_as_one_chunk(aws: dict[str, Any]) -> None:
    # Given a person's tags written 30 times, each write changing 6 tags
    store: DynamoTagStore = aws["store"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    written: list[TagHistoryEntry] = []
    for n in range(30):
        read = _tags_item(aws, "p-carry")
        at = t0 + timedelta(hours=n)
        changes = [TagHistoryEntry(f"tag_{i}", n - 1 if n else None, n, at, f"bus-{n}") for i in range(6)]
        pending = carried_entries(read) if read else []
        tags = {f"tag_{i}": TagValue(value=n, since=at) for i in range(6)}
        store.write_tags("p-carry", read["version"] if read else 0, tags, None, changes, pending=pending)
        written += changes
    # Then every change is stored exactly once: in a history chunk or carried by the tags item, which stays small
    chunks = [e for item in history_items(aws, "p-carry") for e in history_entries(from_item(item))]
    carried = carried_entries(_tags_item(aws, "p-carry"))
    assert sorted(chunks + carried, key=lambda e: (e.at, e.tag)) == written
    assert chunks and carried and len(history_items(aws, "p-carry")) < 30
    assert item_size(_raw_tags_item(aws, "p-carry")) < 1024
    # And the history and as-of reads see all of them
    assert store.tag_history("p-carry") == written
    assert store.tags_as_of("p-carry", t0 + timedelta(hours=10, minutes=30), ["tag_3"])["tag_3"].value == 10


def test_history_and_tags_items_of_the_earlier_layout_read_as_before(aws: dict[str, Any]) -> None:
    # Given a tags item with every field in the clear and one history item per change (the earlier layout)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    table, db = topology.PROFILES_TABLE.local_name, aws["ddb"]
    old_value = {"tag": "lifecycle", "new": "growth", "at": "2026-01-01T00:00:00.000Z", "cause": "bus-0"}
    db.put_item(
        TableName=table, Item=to_item({"pk": "P#p-old", "sk": "H#lifecycle#2026-01-01T00:00:00.000Z", **old_value})
    )
    carried = {"tag": "lifecycle", "old": "growth", "new": "mature", "at": "2026-02-01T00:00:00.000Z", "cause": "bus-1"}
    tags = {"lifecycle": {"value": "mature", "since": "2026-02-01T00:00:00.000Z"}}
    db.put_item(
        TableName=table,
        Item=to_item(
            {"pk": "P#p-old", "sk": "TAGS", "person_id": "p-old", "version": 3, "tags": tags, "pending": [carried]}
        ),
    )
    store: DynamoTagStore = aws["store"]
    # Then both changes read, and a write in the new layout keeps them
    assert [e.new for e in store.tag_history("p-old")] == ["growth", "mature"]
    assert store.tags_as_of("p-old", at + timedelta(days=3))["lifecycle"].value == "growth"
    later = TagHistoryEntry("lifecycle", "mature", "loyal", at + timedelta(days=60), "bus-2")
    pending = [TagHistoryEntry.from_fields(carried)]
    store.write_tags("p-old", 3, {"lifecycle": TagValue(value="loyal", since=later.at)}, None, [later], pending=pending)
    assert [e.new for e in store.tag_history("p-old")] == ["growth", "mature", "loyal"]


def _raw_tags_item(aws: dict[str, Any], person_id: str) -> dict[str, Any]:
    key = {"pk": {"S": keys.person_pk(person_id)}, "sk": {"S": keys.TAGS_SK}}
    return dict(aws["ddb"].get_item(TableName=topology.PROFILES_TABLE.local_name, Key=key).get("Item") or {})


def _tags_item(aws: dict[str, Any], person_id: str) -> dict[str, Any] | None:
    raw = _raw_tags_item(aws, person_id)
    return from_item(raw) if raw else None


def test_a_packed_entry_refreshes_each_person_once_and_parks_a_bad_change_alone(aws: dict[str, Any]) -> None:
    # Given two persons with orders, the first with three updates in one packed entry, and a change naming nobody
    placed = utc_now().replace(microsecond=0) - timedelta(days=1)
    ann = resolve(aws, order("13900000011", placed))
    bob = resolve(aws, order("13900000012", placed))
    updates = [
        {"person_id": ann, "event_id": "e1", "event_type": "order_placed", "version": 1},
        {"person_id": bob, "event_id": "e2", "event_type": "order_placed", "version": 1},
        {"event_id": "e3", "event_type": "order_placed", "version": 1},
        {"person_id": ann, "event_id": "e4", "event_type": "points_changed", "version": 2},
        {"person_id": ann, "event_id": "e5", "event_type": "order_placed", "version": 3},
    ]
    counter = ApiCallCounter()
    counter.install()
    try:
        result = aws["tag_update"].lambda_handler(
            sqs_event("", "", bus_id="bus-9", updates=updates), LocalLambdaContext(topology.TAG_UPDATE)
        )
    finally:
        counter.uninstall()
    # Then the message succeeded, each person's timeline was read once and their tags written once
    assert result == {"batchItemFailures": []}
    assert counter.calls["dynamodb.Query"] == 2 and counter.calls["dynamodb.PutItem"] == 2
    # And their changes carry the cause of their first update in the entry (found again on a redelivery)
    store: DynamoTagStore = aws["store"]
    assert {e.cause for e in store.tag_history(ann)} == {"bus-9/0"}
    assert {e.cause for e in store.tag_history(bob)} == {"bus-9/1"}
    # And the change naming nobody was parked alone, with its reason
    (parked,) = aws["sqs"].receive_message(QueueUrl=aws["dlq"], MessageAttributeNames=["All"])["Messages"]
    assert json.loads(parked["Body"])["detail"]["data"]["updates"] == [updates[2]]
    assert "names no person" in parked["MessageAttributes"][ATTR_ERROR]["StringValue"]


def test_an_event_type_nothing_reads_costs_no_aws_call(aws: dict[str, Any]) -> None:
    # Given a tagged person, the AWS calls of the handler's clients counted from their creation on
    counter = ApiCallCounter()
    counter.install()
    try:
        person_id = resolve(aws, order("13900000002", utc_now() - timedelta(days=1)))
        update(aws, person_id, "order_placed")
        assert counter.calls["dynamodb.BatchGetItem"] >= 1 and counter.calls["events.PutEvents"] == 1  # counted
        version = profile(aws, person_id).version
        published(aws)
        counter.reset()
        # When a review_posted profile update arrives
        update(aws, person_id, "review_posted")
        # Then tag_update made no AWS call at all, and nothing changed or was published
        assert dict(counter.calls) == {}
    finally:
        counter.uninstall()
    assert profile(aws, person_id).version == version and published(aws) == []


def test_a_redelivered_update_announces_its_changes_again(aws: dict[str, Any]) -> None:
    # Given an order whose tags were written by the first delivery
    person_id = resolve(aws, order("13900000003", utc_now() - timedelta(hours=3)))
    update(aws, person_id, "order_placed", bus_id="bus-9")
    first = sorted(e["detail-type"] for e in published(aws))
    # When SQS delivers the same message again (the first publish may have failed after the write)
    update(aws, person_id, "order_placed", bus_id="bus-9", receives=2)
    # Then the same announcements are published again from the recorded history
    again = published(aws)
    assert sorted(e["detail-type"] for e in again) == first
    changed = next(e for e in again if e["detail-type"] == topology.TAGS_CHANGED)["detail"]["data"]["changes"]
    assert {c["tag"] for c in changed} >= {"purchased_last_7d", "lifecycle"}


# ---- tag_sweep ----------------------------------------------------------------------------------------------------


def test_the_sweep_expires_windows_at_their_edge_and_the_full_refresh_adds_batch_tags(aws: dict[str, Any]) -> None:
    # Given a person tagged after an order 2 days ago, in the recent-buyers audience
    AudienceStore(S3ObjectStore(topology.DATA_BUCKET_LOCAL_NAME, aws["s3"])).put(RECENT_BUYERS, utc_now())
    placed = utc_now().replace(microsecond=0) - timedelta(days=2)
    person_id = resolve(aws, order("13900000004", placed))
    update(aws, person_id, "order_placed")
    published(aws)
    edge = placed + timedelta(days=7)
    # When the hourly sweep runs before the edge: nobody is due
    assert run_sweep(aws, {"as_of": iso(edge - timedelta(minutes=1))})["refreshed"] == 0
    # When it runs 8 days after the order
    result = run_sweep(aws, {"as_of": iso(placed + timedelta(days=8))})
    # Then the person was refreshed: the flag and the membership left at the edge itself
    assert (result["refreshed"], result["changed"], result["failed"]) == (1, 1, 0)
    p = profile(aws, person_id)
    assert "purchased_last_7d" not in p.tags and "audience:recent_buyers" not in p.tags
    exits = [e for e in published(aws) if e["detail-type"] == topology.AUDIENCE_EXITED]
    assert [e["detail"]["data"]["at"] for e in exits] == [edge.isoformat().replace("+00:00", "Z")]
    # When the nightly full refresh runs: every person, batch-freshness tags included
    full = run_sweep(aws, {"full": True, "as_of": iso(placed + timedelta(days=8, hours=1))})
    assert full["full"] is True and full["refreshed"] == 1 and full["failed"] == 0
    # And a bad request names its field
    with pytest.raises(ValueError, match="total_shards"):
        run_sweep(aws, {"shard": 2, "total_shards": 2})


# ---- profile API: tags as of a past time ----------------------------------------------------------------------


def test_the_profile_api_reads_tags_as_of_a_past_time(aws: dict[str, Any]) -> None:
    # Given a person whose 7-day flag was set by an order 10 days ago and removed by the sweep at the edge
    placed = utc_now().replace(microsecond=0) - timedelta(days=10)
    person_id = resolve(aws, order("13900000005", placed))
    aws["store"].get(person_id)
    # (tag_update ran when the order arrived: evaluate at the order's time through the sweep's as_of backfill)
    run_sweep(aws, {"full": True, "as_of": iso(placed)})
    run_sweep(aws, {"as_of": iso(placed + timedelta(days=9))})
    path = f"/v1/profiles/{quote(person_id)}/tags"
    # When read as of a time inside the window: the flag is there, since the order
    status, body = api_get(aws, path, {"as_of": iso(placed + timedelta(days=3))})
    assert status == 200, body
    assert body["tags"]["purchased_last_7d"]["value"] is True
    assert body["tags"]["lifecycle"]["value"] == "growth" and body["person_id"] == person_id
    # When read as of a time after the window: it is not
    status, body = api_get(aws, path, {"as_of": iso(placed + timedelta(days=8))})
    assert status == 200 and "purchased_last_7d" not in body["tags"] and "lifecycle" in body["tags"]
    # When filtered to one tag
    status, body = api_get(aws, path, {"as_of": iso(placed + timedelta(days=3)), "tag": "purchased_last_7d"})
    assert status == 200 and list(body["tags"]) == ["purchased_last_7d"]
    # Then bad input names the field, an unknown person is a 404, and a store key outside the person's store sees none
    status, body = api_get(aws, path, {"as_of": "last tuesday"})
    assert (status, body["field"]) == (400, "as_of")
    status, body = api_get(aws, path, {"as_of": iso(placed), "tag": "Bad Name"})
    assert (status, body["field"]) == (400, "tag")
    status, _ = api_get(aws, path, {})
    assert status == 400
    assert api_get(aws, "/v1/profiles/nobody/tags", {"as_of": iso(placed)})[0] == 404
    assert api_get(aws, path, {"as_of": iso(placed)}, key=STORE_API_KEY)[0] == 200  # the order is in store sh01


def test_a_score_written_with_the_tags_shares_their_version_check(aws: dict[str, Any]) -> None:
    # Given a stored person whose tags item is at version 1 with an older score
    from cdp.errors import ConflictError
    from cdp.profile.dynamodb import profile_item, profile_tags_item
    from cdp.profile.models import ModelScore, TagValue
    from cdp.shared.dynamo import to_item

    at = utc_now().replace(microsecond=0)
    old = ModelScore(score=0.2, model_version="v1", scored_at=at)
    person = Profile(person_id="p-scored", brand_id="b", created_at=at, updated_at=at, version=1, scores={"m": old})
    for item in (profile_item(person), profile_tags_item(person, 1)):
        aws["ddb"].put_item(TableName=topology.PROFILES_TABLE.local_name, Item=to_item(item))
    store: DynamoTagStore = aws["store"]
    new = ModelScore(score=0.9, model_version="v2", scored_at=at)
    tags = {"response_propensity": TagValue(value="high", since=at)}
    # When the new score and the tag reading it are written at the version read
    store.write_tags("p-scored", 1, tags, None, [], scores={"m": new})
    # Then both are stored, the tags item's version went up once and the person item's did not move
    stored = store.get("p-scored")
    assert stored is not None and stored.scores["m"] == new and stored.tags["response_propensity"].value == "high"
    assert (stored.tags_version, stored.version) == (2, 1)
    # And a write planned on the old version changes neither
    with pytest.raises(ConflictError):
        store.write_tags("p-scored", 1, {}, None, [], scores={"m": old})
    after = store.get("p-scored")
    assert after is not None and after.scores["m"] == new and after.tags_version == 2


def test_an_invocation_adds_each_metric_once_however_many_persons_it_refreshes(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 120 persons' review updates in one packed entry (nothing reads reviews: each refresh is skipped)
    added: list[tuple[str, float]] = []
    handler = aws["tag_update"]
    monkeypatch.setattr(handler.metrics, "add_metric", lambda name, unit, value: added.append((name, value)))
    updates = [
        {"person_id": f"p-{i:03d}", "event_id": f"r{i}", "event_type": "review_posted", "version": 1}
        for i in range(120)
    ]
    result = handler.lambda_handler(
        sqs_event("", "", bus_id="bus-m", updates=updates), LocalLambdaContext(topology.TAG_UPDATE)
    )
    # Then one value per metric (powertools flushes a metric of 100 values on its own, metrics disabled or not)
    assert result == {"batchItemFailures": []}
    assert added == [("TagUpdatesSkipped", 120)]
