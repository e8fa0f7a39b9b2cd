"""The call counter bills what moto really stored and read: item sizes before and after each write, everything a
Query read before its filter and projection, EventBridge and SQS payload chunks, and Lambda's modelled duration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cdp import topology
from cdp_local import cost_model as cm
from cdp_local.aws_costs import ApiCallCounter, cost_usd
from cdp_local.runtime.core import create_table

TABLE = topology.LEDGER_TABLE


@pytest.fixture
def aws() -> Iterator[tuple[Any, ApiCallCounter]]:
    with mock_aws():
        db = boto3.client("dynamodb")
        create_table(db, TABLE)
        counter = ApiCallCounter()
        counter.install()
        try:
            yield boto3.client("dynamodb"), counter
        finally:
            counter.uninstall()


def item(pk: str, sk: str, size: int) -> dict[str, Any]:
    """An item of exactly `size` bytes (names + values)."""
    base = {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": ""}}
    base["v"]["S"] = "x" * (size - cm.item_size(base))
    assert cm.item_size(base) == size
    return base


def key(pk: str, sk: str = "s") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def units_of(counter: ApiCallCounter, op: str) -> dict[str, float]:
    return dict(counter.by_op[op].units)


def test_a_put_bills_its_size_and_an_update_the_larger_item(aws: tuple[Any, ApiCallCounter]) -> None:
    db, counter = aws
    table = TABLE.local_name
    # Given a new 1,500-byte item
    db.put_item(TableName=table, Item=item("p", "s", 1500))
    assert units_of(counter, "dynamodb.PutItem") == {"dynamodb_wru": 2}
    # When an update grows it to 2,600 bytes
    db.update_item(
        TableName=table,
        Key=key("p"),
        UpdateExpression="SET w = :w",
        ExpressionAttributeValues={":w": {"S": "y" * (2600 - 1500 - 1)}},
    )
    # Then the update bills the item after (3 KB started), not the few bytes it sent
    assert units_of(counter, "dynamodb.UpdateItem") == {"dynamodb_wru": 3}
    # When a conditional put that fails meets the 2,600-byte item, and a small put replaces it
    with pytest.raises(ClientError):
        db.put_item(TableName=table, Item=item("p", "s", 100), ConditionExpression="attribute_not_exists(pk)")
    db.put_item(TableName=table, Item=item("p", "s", 100))
    # Then both bill the larger item, the one before (3 WRU each); a delete of the 100-byte item bills 1
    assert units_of(counter, "dynamodb.PutItem") == {"dynamodb_wru": 2 + 3 + 3}
    db.delete_item(TableName=table, Key=key("p"))
    assert units_of(counter, "dynamodb.DeleteItem") == {"dynamodb_wru": 1}
    assert counter.calls["dynamodb.PutItem"] == 3


def test_a_transaction_bills_twice_per_item_and_a_batch_per_item(aws: tuple[Any, ApiCallCounter]) -> None:
    db, counter = aws
    table = TABLE.local_name
    # Given a transaction putting a 1,500-byte item and a 35-byte marker
    db.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": item("a", "PROFILE", 1500)}},
            {"Put": {"TableName": table, "Item": item("m", "T#2026#e1", 35)}},
        ]
    )
    # Then it bills 2 x 2 + 2 x 1 WRU, each to its kind of item (the sort key's prefix)
    assert units_of(counter, "dynamodb.TransactWriteItems") == {"dynamodb_wru": 6}
    assert counter.wru_by_item == {"PROFILE": 4, "T": 2}
    # When a batch writes three items of 1,025, 10 and 10 bytes
    puts = [{"PutRequest": {"Item": item(f"b{i}", "s", size)}} for i, size in enumerate([1025, 10, 10])]
    db.batch_write_item(RequestItems={table: puts})
    # Then each is rounded up on its own: 2 + 1 + 1
    assert units_of(counter, "dynamodb.BatchWriteItem") == {"dynamodb_wru": 4}
    assert counter.wru_by_item["s"] == 4


def test_an_item_entering_a_keys_only_index_bills_one_index_write_once() -> None:
    with mock_aws():
        create_table(boto3.client("dynamodb"), topology.OFFERS_TABLE)
        counter = ApiCallCounter()
        counter.install()
        try:
            db = boto3.client("dynamodb")  # made after install: its calls are counted
            table, ref = topology.OFFERS_TABLE.local_name, topology.OFFERS_BY_PERSON.partition_key
            indexed = {**item("LOYALTYOP#b#club#o1", "OP", 300), ref: {"S": "b#p1"}}
            # Given a new item carrying the index key, in a transaction: 2 for the item, 1 for its index item
            db.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": indexed}}])
            assert units_of(counter, "dynamodb.TransactWriteItems") == {"dynamodb_wru": 3}
            # When it is rewritten with the same index key, and an item without one is put: no index write
            db.put_item(TableName=table, Item=indexed)
            db.put_item(TableName=table, Item=item("WALLET#b#p1", "i1", 300))
            assert units_of(counter, "dynamodb.PutItem") == {"dynamodb_wru": 2}
        finally:
            counter.uninstall()


def test_reads_bill_per_4_kb_halved_when_eventually_consistent(aws: tuple[Any, ApiCallCounter]) -> None:
    db, counter = aws
    table = TABLE.local_name
    # Given ten items of 1.5 KB in one partition and a 5,000-byte item
    for i in range(10):
        db.put_item(TableName=table, Item=item("q", f"s{i:02}", 1536))
    db.put_item(TableName=table, Item=item("big", "s", 5000))
    counter.reset()
    query = {"TableName": table, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}}}
    # When one Query reads them strongly, then eventually consistent
    db.query(**query, ConsistentRead=True)
    assert units_of(counter, "dynamodb.Query") == {"dynamodb_rru": 4}  # 15 KB -> 16 KB
    db.query(**query)
    assert units_of(counter, "dynamodb.Query") == {"dynamodb_rru": 4 + 2}
    # And a Query whose filter keeps nothing and projects one attribute still bills everything it read
    db.query(
        **{**query, "ExpressionAttributeValues": {":p": {"S": "q"}, ":no": {"S": "none"}}},
        FilterExpression="v = :no",
        ProjectionExpression="pk",
        ConsistentRead=True,
    )
    assert units_of(counter, "dynamodb.Query") == {"dynamodb_rru": 4 + 2 + 4}
    # When GetItem reads the 5,000-byte item strongly, eventually, and a key that does not exist
    db.get_item(TableName=table, Key=key("big"), ConsistentRead=True)
    db.get_item(TableName=table, Key=key("big"), ProjectionExpression="pk")
    db.get_item(TableName=table, Key=key("missing"), ConsistentRead=True)
    # Then 2 + 1 + 1 (a projection does not shrink the bill; a miss bills the minimum)
    assert units_of(counter, "dynamodb.GetItem") == {"dynamodb_rru": 4}
    # And BatchGetItem rounds each item: ten 1.5 KB items strongly are 10 RRU
    keys = [key("q", f"s{i:02}") for i in range(10)]
    db.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
    assert units_of(counter, "dynamodb.BatchGetItem") == {"dynamodb_rru": 10}


def test_eventbridge_and_sqs_bill_64_kb_chunks() -> None:
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        counter = ApiCallCounter()
        counter.install()
        try:
            # Given a PutEvents with a 70 KB entry and a small one, and a 100 KB SQS message
            events = boto3.client("events")
            detail = json.dumps({"blob": "a" * (70 * 1024)})
            events.put_events(
                Entries=[
                    {"Source": "s", "DetailType": "d", "Detail": detail},
                    {"Source": "s", "DetailType": "d", "Detail": "{}"},
                ]
            )
            client = boto3.client("sqs")
            client.send_message(QueueUrl=url, MessageBody="a" * (100 * 1024))
            # When it is received and deleted
            received = client.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
            client.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
            client.receive_message(QueueUrl=url)  # empty, outside a handler: the drain loop polling
        finally:
            counter.uninstall()
    # Then the entries bill 2 + 1 events, the send and the receive 2 requests each, the delete 1
    assert units_of(counter, "events.PutEvents") == {"eventbridge_events": 3}
    assert units_of(counter, "sqs.SendMessage") == {"sqs_requests": 2}
    assert units_of(counter, "sqs.ReceiveMessage") == {"sqs_requests": 2}
    assert units_of(counter, "sqs.DeleteMessage") == {"sqs_requests": 1}
    # And the first receipt stands for the delivery EventBridge would have made; the empty poll is not billed
    assert units_of(counter, "sqs.EventBridgeSendMessage") == {"sqs_requests": 2}
    assert counter.unbilled["sqs.ReceiveMessage:empty"] == 1
    assert cost_usd(counter.units)["eventbridge_events"] == pytest.approx(3 * 1.00 / 1_000_000)


def test_a_lambda_invocation_bills_its_own_cpu_and_modelled_latency_not_the_emulation() -> None:
    from cdp_local.runtime.lambdas import HandlerRouter

    spec = topology.INGEST
    clients: dict[str, Any] = {}

    def handler(event: Any, context: Any) -> dict[str, int]:
        if "db" not in clients:  # made on first use, as the product's handlers do: part of the cold start
            clients["db"] = boto3.client("dynamodb")
        for i in range(20):  # 20 emulated calls: tens of ms of moto here, 20 x 5 ms on AWS
            clients["db"].get_item(TableName=TABLE.local_name, Key=key(f"k{i}"))
        return {"ok": 1}

    with mock_aws():
        create_table(boto3.client("dynamodb"), TABLE)
        counter = ApiCallCounter()
        counter.install()
        counter.measure_lambda()
        try:
            router = HandlerRouter({spec.key: handler})
            # When the function runs cold, then twice warm
            results = [router.call(spec, {}) for _ in range(3)]
        finally:
            counter.uninstall()
    assert results == [('{"ok": 1}', False)] * 3
    # Then a warm invocation bills 20 x 5 ms of calls + 1 ms runtime API + a little CPU of its own (stretched
    # 3.45x at 512 MB), rounded up to the ms: far below the emulated calls' time
    warm = counter.lambda_ms[spec.key]
    assert len(warm) == 2 and all(101 <= ms < 101 + 25 for ms in warm), warm
    # And the cold start (client made) is kept apart and billed at the mean warm duration
    assert counter.cold_ms[spec.key] > max(warm)
    usage = counter.settled()["lambda.ingest"]
    assert usage.calls == 3 and usage.units["lambda_requests"] == 3
    assert usage.units["lambda_gb_seconds"] == pytest.approx(3 * (sum(warm) / 2) / 1000 * 512 / 1024)
    # And the platform's START/END/REPORT lines are billed to the function's logs, per invocation
    assert counter.by_op["logs.ingest"].units["cloudwatch_logs_gb"] == pytest.approx(
        3 * cm.log_units_gb(cm.LAMBDA_PLATFORM_LOG_EVENTS, cm.LAMBDA_PLATFORM_LOG_BYTES)
    )
    # And the patch is gone after uninstall
    assert HandlerRouter.call.__qualname__ == "HandlerRouter.call"


def test_what_a_function_logs_is_billed_as_cloudwatch_ingestion_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from cdp.observability import logger, metrics
    from cdp_local.runtime.lambdas import HandlerRouter

    spec = topology.TAG_UPDATE

    def handler(event: Any, context: Any) -> dict[str, int]:
        logger.info("tags recomputed", extra={"person": "p-1"})
        metrics.add_metric(name="TagsChanged", unit="Count", value=2)
        return {"ok": 1}

    level = logger.log_level
    logger.setLevel("INFO")  # the deployed level
    counter = ApiCallCounter()
    counter.measure_lambda()
    counter.measure_logs()
    try:
        # When the function runs once, logging one line and recording one metric
        HandlerRouter({spec.key: handler}).call(spec, {})
    finally:
        counter.uninstall()
        logger.setLevel(level)
    # Then nothing reached stdout, and its logs bill the platform lines + one JSON line + one EMF line (26 B each more)
    assert "tags recomputed" not in capsys.readouterr().out
    billed_bytes = counter.by_op["logs.tag_update"].units["cloudwatch_logs_gb"] * 1024**3
    platform = cm.LAMBDA_PLATFORM_LOG_BYTES + 26 * cm.LAMBDA_PLATFORM_LOG_EVENTS
    own = billed_bytes - platform
    assert 2 * 26 + 150 < own < 2 * 26 + 1500, own  # a Powertools JSON line and an EMF blob, a few hundred bytes
    # And after uninstall the logger prints again and metrics clear as before
    assert "clear_metrics" not in vars(metrics)
    assert logger.registered_handler.stream is not None  # type: ignore[attr-defined]
