"""POST /v1/events through the real ingest handler on moto: auth, validation errors, dedupe, archive, publish."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.ingest.auth import sign
from cdp.settings import get_settings
from cdp_local.runtime.core import create_table

API_KEY = "test-key-123"
HMAC_SECRET = "whsec-abc"


def order(event_id: str = "o-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": event_id,
        "event_type": "order_placed",
        "source": "pos",
        "brand_id": "brand-1",
        "store_id": "sh-01",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": "13800138000"}],
        "properties": {
            "order_id": "o-1",
            "lines": [{"sku": "cake-1", "category": "cake", "quantity": 1, "unit_price_minor": 19900}],
            "total_minor": 19900,
            "currency": "CNY",
        },
    }
    body.update(overrides)
    return body


def http_event(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /v1/events",
        "rawPath": "/v1/events",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {
            "http": {"method": "POST", "path": "/v1/events", "sourceIp": "127.0.0.1", "protocol": "HTTP/1.1"},
            "requestId": uuid.uuid4().hex,
            "routeKey": "POST /v1/events",
            "stage": "$default",
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "time": "01/Mar/2026:10:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


class FakeContext:
    function_name = "cdp-ingest"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-ingest"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    env = {
        topology.LEDGER_TABLE.env_var: topology.LEDGER_TABLE.local_name,
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.EVENT_BUS_ENV: topology.EVENT_BUS_LOCAL_NAME,
        topology.API_KEYS_SECRET_ENV: topology.API_KEYS_SECRET_LOCAL_NAME,
        topology.SOURCES_SECRET_ENV: topology.SOURCES_SECRET_LOCAL_NAME,  # read only by connector routes
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        get_settings.cache_clear()
        from functions.ingest import handler

        handler.dependencies.cache_clear()
        create_table(boto3.client("dynamodb"), topology.LEDGER_TABLE)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        events = boto3.client("events")
        events.create_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = topology.EVENT_RECEIVED_RULE
        events.put_rule(
            Name=rule.local_name, EventBusName=topology.EVENT_BUS_LOCAL_NAME, EventPattern=json.dumps(rule.pattern)
        )
        events.put_targets(
            Rule=rule.local_name, EventBusName=topology.EVENT_BUS_LOCAL_NAME, Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        boto3.client("secretsmanager").create_secret(
            Name=topology.API_KEYS_SECRET_LOCAL_NAME,
            SecretString=json.dumps(
                {"keys": {API_KEY: {"client": "tests", "scopes": ["events:write"]}}, "hmac": {"pos-1": HMAC_SECRET}}
            ),
        )
        yield {"s3": s3, "sqs": sqs, "queue_url": queue_url, "handler": handler}
        handler.dependencies.cache_clear()
        get_settings.cache_clear()


def post(aws: dict[str, Any], body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = aws["handler"].lambda_handler(
        http_event(raw, headers if headers is not None else {"x-api-key": API_KEY}), FakeContext()
    )
    return response["statusCode"], json.loads(response["body"])


def published(aws: dict[str, Any]) -> list[dict[str, Any]]:
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_valid_event_is_archived_published_and_accepted_once(aws: dict[str, Any]) -> None:
    # Given a valid order event; When it is posted twice
    status, body = post(aws, order())
    again_status, again = post(aws, order())
    # Then the first is accepted, the second is a duplicate, one bus event was published with the normalized phone
    assert (status, body["accepted"], body["duplicates"]) == (202, 1, 0)
    assert (again_status, again["accepted"], again["duplicates"]) == (202, 0, 1)
    bus_events = published(aws)
    assert len(bus_events) == 1
    detail = bus_events[0]["detail"]
    assert detail["data"]["brand_id"] == "brand-1" and len(detail["data"]["events"]) == 1
    assert detail["data"]["events"][0]["identifiers"][0]["value"] == "+8613800138000"
    assert detail["metadata"]["event_name"] == topology.EVENT_RECEIVED
    # And both raw bodies were archived before processing
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME)["Contents"]]
    assert len(keys) == 2 and all(k.startswith(topology.RAW_PREFIX) for k in keys)


def test_invalid_fields_are_named_in_a_400(aws: dict[str, Any]) -> None:
    # Given an order with a bad phone, a zero quantity and no timezone
    bad = order(occurred_at="2026-03-01T10:00:00", identifiers=[{"type": "phone", "value": "12"}])
    bad["properties"]["lines"][0]["quantity"] = 0
    # When it is posted
    status, body = post(aws, bad)
    # Then a 400 names each bad field and nothing was published
    assert status == 400
    fields = {e["field"] for e in body["rejected"][0]["errors"]}
    assert fields == {"occurred_at", "identifiers.0.value", "properties.lines.0.quantity"}
    assert published(aws) == []


def test_batch_with_one_bad_event_accepts_the_rest(aws: dict[str, Any]) -> None:
    # Given a batch of two good events and one without identifiers
    batch = {"batch": [order("a"), order("b"), order("c", identifiers=[])]}
    # When posted; Then 207 with the bad one rejected by index and field
    status, body = post(aws, batch)
    assert status == 207 and body["accepted"] == 2
    assert body["rejected"][0]["index"] == 2 and body["rejected"][0]["errors"][0]["field"] == "batch.2.identifiers"


@pytest.mark.parametrize(
    ("raw", "field"),
    [(b"{not json", "body"), (b"[1,2]", "body"), (json.dumps({"batch": []}).encode(), "batch")],
)
def test_malformed_bodies_get_a_400(aws: dict[str, Any], raw: bytes, field: str) -> None:
    status, body = post(aws, raw)
    assert status == 400 and body["field"] == field


def test_missing_or_wrong_credentials_get_401(aws: dict[str, Any]) -> None:
    assert post(aws, order(), headers={})[0] == 401
    assert post(aws, order(), headers={"x-api-key": "nope"})[0] == 401
    assert published(aws) == []


def test_hmac_signature_with_replay_window(aws: dict[str, Any]) -> None:
    # Given a body signed with the POS webhook secret
    raw = json.dumps(order("signed")).encode()
    now = int(time.time())
    good = {"x-cdp-key-id": "pos-1", "x-cdp-signature": sign(HMAC_SECRET, raw, now)}
    stale = {"x-cdp-key-id": "pos-1", "x-cdp-signature": sign(HMAC_SECRET, raw, now - 3600)}
    tampered = {"x-cdp-key-id": "pos-1", "x-cdp-signature": sign(HMAC_SECRET, raw + b" ", now)}
    # Then a fresh valid signature passes, a stale or tampered one is refused
    assert post(aws, raw, good)[0] == 202
    assert post(aws, raw, stale)[0] == 401
    assert post(aws, raw, tampered)[0] == 401
