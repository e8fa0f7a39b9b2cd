"""The local runtime's patches of moto: each still fits the installed moto, and each answers what moto answers.

The equivalence tests run the same calls twice on a fresh moto, once with moto's own functions and once patched,
and compare the answers (volatile ids and timestamps masked).
"""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import moto
import pytest
from moto import mock_aws

from cdp_local.runtime.moto_fixes import distributed_map_tolerance
from cdp_local.runtime.moto_guard import MotoShapeChanged, Reliance, check, digest_of, resolve
from cdp_local.runtime.moto_hotspots import (
    BOTOCORE_ATTRIBUTE_VALUES,
    DISPATCH,
    DYNAMODB_ITEM_SIZES,
    DYNAMODB_RESULTS,
    DYNAMODB_SCAN,
    DYNAMODB_SIZES,
    RESPONSE_REQUEST_ID,
    SQS_ATTRIBUTES,
    SQS_CLOCK,
    MotoPatch,
    guarded,
    moto_hotspots,
    unix_time_from_ns,
)
from cdp_local.runtime.moto_speedups import fast_transactions

REGION = "eu-west-1"
VOLATILE = {
    "MessageId",
    "ReceiptHandle",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "RequestId",
    "HTTPHeaders",
    "date",
}


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _twice(scenario: Callable[[], Any], patched: Callable[[], AbstractContextManager[Any]]) -> tuple[Any, Any]:
    """The scenario's answers on moto as it is, then with the patches installed (a fresh moto each time)."""
    answers = []
    for context in (nullcontext, patched):
        with mock_aws(), context():
            answers.append(_masked(scenario()))
    return answers[0], answers[1]


def _error(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return {"error": exc.response["Error"]}
    raise AssertionError("expected the call to fail")


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    yield


# ---- the guard --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("patch", "reliances"), sorted(guarded().items()), ids=sorted(guarded()))
def test_every_local_patch_fits_the_installed_moto(patch: str, reliances: tuple[Reliance, ...]) -> None:
    # Given a patch and the moto functions it replaces or calls, with their digests as the patch was written
    # When they are checked against the moto installed now
    # Then none has changed: after a moto upgrade this fails, naming the patch and the function to re-read
    check(patch, reliances)


def test_a_changed_moto_function_is_refused_naming_moto_and_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's get_queue_attributes changed, as an upgrade could change it
    from moto.sqs.models import SQSBackend

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        return {}

    monkeypatch.setattr(SQSBackend, "get_queue_attributes", get_queue_attributes)
    # When the hotspot patches are installed
    with pytest.raises(MotoShapeChanged) as refused, moto_hotspots():
        pass
    # Then the error names the moto version, the function and the patch; and nothing was patched
    message = str(refused.value)
    assert f"moto {moto.__version__}" in message
    assert "moto.sqs.models:SQSBackend.get_queue_attributes" in message
    assert "'sqs-attributes'" in message
    from moto.dynamodb.models.dynamo_type import DynamoType

    assert SQSBackend.get_queue_attributes is get_queue_attributes
    assert DynamoType.size.__module__ == "moto.dynamodb.models.dynamo_type"  # checked before anything is installed


def test_a_missing_moto_function_is_refused() -> None:
    # Given a patch relying on a function moto no longer has
    patch = MotoPatch("gone", (Reliance("moto.sqs.models:SQSBackend.no_such_function", "0" * 16),), list)
    # When it is installed, Then it is refused with the function's name
    with pytest.raises(MotoShapeChanged, match=r"SQSBackend\.no_such_function"), moto_hotspots([patch]):
        pass


def test_the_digest_ignores_formatting_but_not_behaviour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one function as written, reformatted with a comment, and with another body
    sources = {
        "as_written": "def f(a):\n    return a + 1\n",
        "reformatted": "def f(a):  # why\n    return (\n        a + 1\n    )\n",
        "changed": "def f(a):\n    return a + 2\n",
    }
    for name, source in sources.items():
        (tmp_path / f"guard_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    digests = {name: digest_of(resolve(f"guard_{name}:f")) for name in sources}
    # Then formatting does not count and a changed body does
    assert digests["reformatted"] == digests["as_written"]
    assert digests["changed"] != digests["as_written"]


def test_moto_is_restored_when_the_patches_end() -> None:
    # Given moto's own functions
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.sqs.models import SQSBackend

    before = (SQSBackend.__dict__["get_queue_attributes"], DynamoType.__dict__["size"], Item.__dict__["__init__"])
    # When the patches are installed, then removed
    with moto_hotspots():
        assert SQSBackend.__dict__["get_queue_attributes"] is not before[0]
    # Then moto has its own functions again
    assert (
        SQSBackend.__dict__["get_queue_attributes"],
        DynamoType.__dict__["size"],
        Item.__dict__["__init__"],
    ) == before


# ---- SQS --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ns",
    [0, 1, 999, 1_000, 999_999_999, 1_764_996_000_123_456_789, 1_764_995_999_999_999_999, 4_102_444_800_000_000_500],
)
def test_the_sqs_clock_computes_motos_figure_bit_for_bit(ns: int) -> None:
    # Given a clock reading in nanoseconds, and the datetime moto's utcnow() makes of it (floored to microseconds)
    from moto.core.utils import unix_time

    as_datetime = datetime.datetime(1970, 1, 1) + datetime.timedelta(
        microseconds=ns // 1000
    )  # moto's clock is naive UTC
    # Then the patched clock gives exactly moto's float
    assert unix_time_from_ns(ns) == unix_time(as_datetime)


def test_the_sqs_clock_reads_the_same_clock_as_moto() -> None:
    # Given moto's clock read before and after the patched one
    import moto.sqs.models as sqs_models
    from moto.core.utils import unix_time, unix_time_millis

    with moto_hotspots([SQS_CLOCK]):
        earlier = unix_time()
        patched, patched_ms = sqs_models.unix_time(), sqs_models.unix_time_millis()
        later = unix_time()
        fixed = datetime.datetime(2026, 12, 6, 5, 0, 0, 123456)  # moto's clock is naive UTC
        given = sqs_models.unix_time_millis(fixed)
    # Then the patched reading lies between them (same epoch, same unit), and a given datetime is moto's figure
    assert earlier <= patched <= later
    assert earlier * 1000 <= patched_ms <= later * 1000 + 1
    assert given == unix_time_millis(fixed)


def _sqs_scenario() -> dict[str, Any]:
    sqs = boto3.client("sqs", region_name=REGION)
    out: dict[str, Any] = {}
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30", "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    fifo = sqs.create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true", "KmsMasterKeyId": "alias/k"})[
        "QueueUrl"
    ]
    for i in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", DelaySeconds=60 if i == 5 else 0)
    sqs.send_message(QueueUrl=fifo, MessageBody="f", MessageGroupId="g", MessageDeduplicationId="d")
    names = [
        ["All"],
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
        ["Policy", "RedrivePolicy", "MessageRetentionPeriod", "QueueArn"],
        ["FifoQueue", "KmsMasterKeyId", "VisibilityTimeout"],
    ]
    out["attributes"] = [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=n) for u in (url, fifo) for n in names]
    out["no names"] = sqs.get_queue_attributes(QueueUrl=url)
    out["bad name"] = _error(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nope"]))
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, AttributeNames=["All"])["Messages"]
    out["first"] = first
    out["in flight"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    for message in first:  # back to the queue: the second receive puts them past maxReceiveCount
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    out["second"] = second
    for message in second:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    out["third"] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    out["after"] = [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["All"]) for u in (url, dlq)]
    # a message older than its queue's retention period is not handed out
    old = sqs.create_queue(QueueName="old", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=old, MessageBody="stale")
    sqs.send_message(QueueUrl=old, MessageBody="fresh")
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"][REGION].queues["old"]
    queue._messages[0].sent_timestamp -= 120_000
    out["retention"] = sqs.receive_message(QueueUrl=old, MaxNumberOfMessages=10)
    return out


def test_sqs_answers_what_moto_answers() -> None:
    # Given the same SQS calls (attributes by name and All, receives past maxReceiveCount, retention, FIFO + KMS)
    # When they run on moto as it is and with the SQS patches
    plain, patched = _twice(_sqs_scenario, lambda: moto_hotspots([SQS_CLOCK, SQS_ATTRIBUTES]))
    # Then every answer is the same
    assert patched == plain
    # and the scenario did reach what it is about: the retention check, and the move to the DLQ
    assert "Messages" not in plain["retention"]  # moto stops its receive at the expired message
    assert len(plain["third"]["Messages"]) == 2
    assert plain["after"][1]["Attributes"]["ApproximateNumberOfMessages"] == "3"


# ---- DynamoDB ---------------------------------------------------------------------------------------------------

VALUES: list[dict[str, Any]] = [
    {"S": "plain"},
    {"S": "ünïcødé ✓"},
    {"S": ""},
    {"N": "123.4500"},
    {"N": "-1E+10"},
    {"B": b"\x00\x01binary"},
    {"B": base64.b64encode(b"as text").decode()},
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"SS": ["a", "bé", "c"]},
    {"NS": ["1", "22.5", "-3"]},
    {"BS": [b"x", b"yz"]},
    {"L": []},
    {"M": {}},
    {"L": [{"S": "a"}, {"N": "1"}, {"M": {"k": {"L": [{"BOOL": True}, {"NULL": True}]}}}]},
    {"M": {"tags": {"M": {"vip": {"M": {"v": {"N": "1"}, "at": {"S": "2026-12-06"}}}}}, "ids": {"SS": ["e1", "e2"]}}},
]


@pytest.mark.parametrize("value", VALUES, ids=[next(iter(v)) + str(i) for i, v in enumerate(VALUES)])
def test_item_sizes_are_motos(value: dict[str, Any]) -> None:
    # Given a DynamoDB value, measured by moto's own DynamoType.size (taken before the patch)
    from moto.dynamodb.models.dynamo_type import DynamoType

    motos_size = DynamoType.size
    expected = motos_size(DynamoType(value))
    # When measured with the patch, Then the size is the same
    with moto_hotspots([DYNAMODB_SIZES]):
        assert DynamoType(value).size() == expected
        assert DynamoType({"M": {"x": value}}).size() == motos_size(DynamoType({"M": {"x": value}}))


@pytest.mark.parametrize("spare", [0, 1, -1])
def test_the_item_size_limit_falls_where_motos_does(spare: int) -> None:
    # Given attributes whose total size is 405,000 bytes (+1, -1): moto refuses an item over that
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    attrs = {f"a{i}": {"S": "x" * 99_997} for i in range(4)}  # 4 x (2 + 99,997) = 399,996
    attrs["last"] = {"S": "y" * (405_000 - 399_996 - 4 + spare)}

    def outcome() -> str:
        try:
            return str(Item(DynamoType({"S": "h"}), None, attrs).size())
        except ItemSizeTooLarge:
            return "too large"

    plain = outcome()
    # When built with the patch, Then it is accepted or refused as moto does
    with moto_hotspots([DYNAMODB_SIZES]):
        assert outcome() == plain
    assert plain == ("too large" if spare > 0 else str(405_000 + spare))


def _dynamodb_scenario() -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    out: dict[str, Any] = {}
    for i, value in enumerate(VALUES):
        ddb.put_item(TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": f"{i:02}"}, "v": value, "n": {"N": str(i)}})
    key = {"pk": {"S": "p"}, "sk": {"S": "16"}}
    out["update"] = ddb.update_item(
        TableName="t",
        Key=key,
        UpdateExpression="SET v.tags.vip.v = v.tags.vip.v + :one, extra = :l ADD tagset :s",
        ExpressionAttributeValues={":one": {"N": "1"}, ":l": {"L": [{"S": "q"}]}, ":s": {"SS": ["z"]}},
        ReturnValues="ALL_NEW",
    )
    out["failed condition"] = _error(
        lambda: ddb.put_item(
            TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": "00"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    )
    out["too large"] = _error(
        lambda: ddb.put_item(TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": "big"}, "v": {"S": "x" * 410_000}})
    )
    out["get"] = ddb.get_item(TableName="t", Key=key, ConsistentRead=True)
    out["query"] = ddb.query(
        TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
    )["Items"]
    out["batch"] = ddb.batch_get_item(RequestItems={"t": {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "05"}}]}})
    out["resource"] = (
        boto3.resource("dynamodb", region_name=REGION).Table("t").get_item(Key={"pk": "p", "sk": "11"})["Item"]
    )
    return out


def test_dynamodb_answers_what_moto_answers() -> None:
    # Given the same DynamoDB calls (every value type, nested updates, a failed condition, an item over 400 KB)
    # When they run on moto as it is and with the DynamoDB, dispatch and answer-parsing patches
    plain, patched = _twice(
        _dynamodb_scenario,
        lambda: moto_hotspots([DYNAMODB_SIZES, DISPATCH, DYNAMODB_RESULTS, BOTOCORE_ATTRIBUTE_VALUES]),
    )
    # Then every answer is the same
    assert patched == plain
    assert plain["too large"]["error"]["Code"] == "ValidationException"
    assert plain["update"]["Attributes"]["v"]["M"]["tags"]["M"]["vip"]["M"]["v"] == {"N": "2"}
    assert plain["resource"]["v"] == {Decimal("1"), Decimal("22.5"), Decimal("-3")}


@pytest.mark.parametrize(
    "value",
    [*VALUES, {"S": "a", "N": "1"}, {"NULL": None}, {}, {"X": "unknown"}, {"M": [1]}, {"L": {"a": 1}}],
    ids=lambda v: json.dumps(v, default=str)[:30],
)
def test_request_parsing_is_motos(value: dict[str, Any]) -> None:
    # Given a PutItem request carrying the value (odd ones included: two types, a null, no type, wrong containers)
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb").operation_model("PutItem")
    wire = json.loads(json.dumps({"TableName": "t", "Item": {"v": value, "m": {"M": {"v": value}}}}, default=_b64))
    request = {"method": "POST", "values": {}, "headers": {}, "body": json.dumps(wire).encode(), "url_path": "/"}
    plain = _parsed(model, request)
    # When parsed with the patch, Then the parameters (or moto's error) are the same
    with moto_hotspots([DISPATCH]):
        assert _parsed(model, request) == plain


ODD_VALUES: list[Any] = [{"S": "a", "N": "1"}, {"NULL": None}, {}, {"X": "unknown"}, {"M": [1]}, {"L": {"a": 1}}, None]


@pytest.mark.parametrize("value", [*VALUES, *ODD_VALUES], ids=lambda v: json.dumps(v, default=str)[:30])
def test_answer_parsing_is_botocores(value: Any) -> None:
    # Given a GetItem answer carrying the value (in a map, in a list, odd ones included) as it comes over the wire
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb").operation_model("GetItem")
    item = {"v": value, "m": {"M": {"v": value}}, "l": {"L": [value, None]}, "s": {"S": "x"}}
    body = json.dumps({"Item": item, "ConsumedCapacity": {"TableName": "t"}}, default=_b64).encode()
    plain = _parsed_answer(model, body)
    # When the SDK parses it with the patch, Then the result (or the SDK's error) is the same
    with moto_hotspots([BOTOCORE_ATTRIBUTE_VALUES]):
        assert _parsed_answer(model, body) == plain


def _parsed_answer(model: Any, body: bytes) -> Any:
    from botocore.parsers import create_parser

    response = {"status_code": 200, "headers": {}, "body": body}
    try:
        return create_parser("json").parse(response, model.output_shape)
    except Exception as exc:  # the SDK's own failure on a malformed value is part of what must stay the same
        return type(exc).__name__


@pytest.mark.parametrize("value", [*VALUES, {"B": "bm90IGNhbm9uaWNhbA"}], ids=lambda v: json.dumps(v, default=str)[:30])
def test_answers_are_handed_to_the_serializer_as_moto_hands_them(value: dict[str, Any]) -> None:
    # Given a result as a DynamoDB handler builds it: items' attributes (moto's own dict type), keys, a datetime
    import moto.dynamodb.models.utilities as utilities
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    attrs = {"pk": {"S": "h"}, "v": value, "m": {"M": {"v": value}}}
    item = Item(DynamoType({"S": "h"}), DynamoType({"S": "r"}), attrs)
    result = {
        "Items": [item.attrs],
        "Item": item.attrs,
        "LastEvaluatedKey": {"pk": DynamoType({"S": "h"})},
        "Count": 1,
        "Table": {"CreationDateTime": datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC), "ItemCount": 3},
        "Raw": [{"S": "x"}, None, 1.5, True],
    }
    expected = _converted(utilities, result)
    # When converted with the patch, Then it is the same (or fails as moto does)
    with moto_hotspots([DYNAMODB_RESULTS]):
        assert _converted(utilities, result) == expected


def _converted(utilities: Any, result: dict[str, Any]) -> Any:
    try:
        return utilities.dynamo_to_dict(result)
    except Exception as exc:
        return type(exc).__name__


def _parsed(model: Any, request: dict[str, Any]) -> Any:
    from moto.core.parse import JSONParser

    try:
        return JSONParser(model).parse({**request, "url_params": {}})
    except Exception as exc:  # moto's own failure on a malformed value is part of what must stay the same
        return type(exc).__name__


def _b64(value: Any) -> str:
    return base64.b64encode(value).decode()


def _rollback_scenario() -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("put", "update", "delete"):
        ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "name": {"S": "before"}, "m": {"M": {"k": {"N": "1"}}}})
    # every condition holds, then the last write fails (a number added to a string): all or nothing
    failed = _error(
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "put"}, "name": {"S": "after"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "update"}},
                        "UpdateExpression": "SET m.k = :two, #n = :after",
                        "ExpressionAttributeNames": {"#n": "name"},
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":after": {"S": "after"}},
                    }
                },
                {"Delete": {"TableName": "t", "Key": {"pk": {"S": "delete"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "new"}},
                        "UpdateExpression": "SET #n = :s ADD #n :one",
                        "ExpressionAttributeNames": {"#n": "name"},
                        "ExpressionAttributeValues": {":s": {"S": "x"}, ":one": {"N": "1"}},
                    }
                },
            ]
        )
    )
    items = ddb.scan(TableName="t")["Items"]
    return {"failed": failed, "items": sorted(items, key=lambda item: item["pk"]["S"])}


def test_a_failed_transaction_leaves_every_item_as_moto_does() -> None:
    # Given a transaction whose last write fails after a Put, an Update (in place, nested) and a Delete
    # When it runs on moto's own transactions and on the local fast_transactions (which copies only Updates)
    plain, patched = _twice(_rollback_scenario, fast_transactions)
    # Then the error and the items left are the same: everything as before
    assert patched["items"] == plain["items"]
    assert [item["name"]["S"] for item in plain["items"]] == ["before", "before", "before"]
    assert patched["failed"]["error"]["Code"] == plain["failed"]["error"]["Code"]


def test_dispatch_finds_the_same_methods() -> None:
    # Given moto's list of a response class's methods
    import moto.core.responses as responses
    from moto.core.responses import BaseResponse
    from moto.core.utils import method_names_from_class
    from moto.sqs.responses import SQSResponse

    expected = method_names_from_class(SQSResponse)
    # When read through the patch twice (the second from its cache), Then it is the same list
    with moto_hotspots([DISPATCH]):
        assert responses.method_names_from_class(SQSResponse) == expected
        assert responses.method_names_from_class(SQSResponse) == expected
        assert responses.method_names_from_class(BaseResponse) == method_names_from_class(BaseResponse)


# ---- DynamoDB scans ------------------------------------------------------------------------------------------------


def _pages(ddb: Any, **request: Any) -> list[dict[str, Any]]:
    """Every page of a scan as the client sees it (items, counts, the key each page ends on)."""
    pages = []
    while True:
        page = ddb.scan(**request)
        pages.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page:
            return pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _scan_scenario() -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    # partitions written out of key order, some items big enough that a page ends on the 1 MB limit
    for p in (7, 3, 11, 0, 5, 9, 1, 12, 4, 8, 2, 10, 6):
        for s in range(p % 4 + 1):
            item = {"pk": {"S": f"P#{p:02}"}, "sk": {"S": "PROFILE" if s == 0 else f"T#{s}"}, "n": {"N": str(p)}}
            if s == 1:
                item["body"] = {"M": {"text": {"S": "x" * (200_000 + p)}, "tags": {"L": [{"S": "a"}, {"N": "1"}]}}}
            if p % 3 == 0:
                item["merged_into"] = {"S": "P#00"}
            ddb.put_item(TableName="t", Item=item)
    profiles = {
        "FilterExpression": "sk = :profile AND attribute_not_exists(merged_into)",
        "ExpressionAttributeValues": {":profile": {"S": "PROFILE"}},
    }
    out: dict[str, Any] = {"all": _pages(ddb, TableName="t"), "limited": _pages(ddb, TableName="t", Limit=4)}
    out["filtered"] = _pages(ddb, TableName="t", **profiles)
    for segment in range(3):
        out[f"segment {segment}"] = _pages(ddb, TableName="t", Segment=segment, TotalSegments=3, **profiles)
        out[f"segment {segment} limited"] = _pages(ddb, TableName="t", Segment=segment, TotalSegments=3, Limit=2)
    out["projected"] = _pages(
        ddb, TableName="t", ProjectionExpression="pk, body.tags[1], n", Segment=1, TotalSegments=2
    )
    out["from a key"] = _pages(ddb, TableName="t", ExclusiveStartKey={"pk": {"S": "P#05"}, "sk": {"S": "T#0"}})
    out["legacy filter"] = _pages(
        ddb, TableName="t", ScanFilter={"n": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "6"}]}}
    )
    out["resource"] = boto3.resource("dynamodb", region_name=REGION).Table("t").scan(Limit=3)["Items"]
    return out


def test_dynamodb_scans_answer_what_moto_answers() -> None:
    # Given scans of every shape (whole table, Limit, FilterExpression, parallel segments, projection, a start key,
    # a legacy ScanFilter) over partitions written out of order, with pages that end on the 1 MB limit
    # When they run on moto as it is and with the scan patch
    plain, patched = _twice(_scan_scenario, lambda: moto_hotspots([DYNAMODB_SIZES, DYNAMODB_SCAN]))
    # Then every page is the same: items, counts and the key it ends on
    assert patched == plain
    assert len(plain["all"]) > 1 and len(plain["limited"]) > 3  # the limits really cut pages
    assert sum(page["Count"] for page in plain["filtered"]) == 8
    assert sum(page["Count"] for s in range(3) for page in plain[f"segment {s}"]) == 8


def _growing_items_scenario() -> dict[str, Any]:
    """Pages read, then items changed in place (nested SET, ADD, legacy AttributeUpdates, a half-failed update),
    then the pages read again: a stale size would cut the second pages elsewhere."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    out: dict[str, Any] = {}
    for table in ("t", "plain"):
        for p in range(12):
            item = {"pk": {"S": f"P#{p:02}"}, "sk": {"S": "PROFILE"}, "m": {"M": {"a": {"S": "x"}}}, "n": {"N": "1"}}
            ddb.put_item(TableName=table, Item=item)
        out[f"{table} before"] = _pages(ddb, TableName=table)
        for p in range(0, 12, 2):
            key = {"pk": {"S": f"P#{p:02}"}, "sk": {"S": "PROFILE"}}
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET m.a = :big, m.b = :l ADD n :one",
                ExpressionAttributeValues={":big": {"S": "y" * 150_000}, ":l": {"L": [{"S": "z"}]}, ":one": {"N": "1"}},
            )
        ddb.update_item(  # legacy AttributeUpdates
            TableName=table,
            Key={"pk": {"S": "P#01"}, "sk": {"S": "PROFILE"}},
            AttributeUpdates={"extra": {"Value": {"S": "w" * 120_000}, "Action": "PUT"}},
        )
        out[f"{table} failed"] = _error(  # the condition fails: nothing changes
            lambda table=table: ddb.update_item(
                TableName=table,
                Key={"pk": {"S": "P#03"}, "sk": {"S": "PROFILE"}},
                UpdateExpression="SET m.a = :big",
                ConditionExpression="n = :two",
                ExpressionAttributeValues={":big": {"S": "v" * 150_000}, ":two": {"N": "2"}},
            )
        )
        out[f"{table} too large"] = _error(
            lambda table=table: ddb.update_item(
                TableName=table,
                Key={"pk": {"S": "P#05"}, "sk": {"S": "PROFILE"}},
                UpdateExpression="SET big = :big",
                ExpressionAttributeValues={":big": {"S": "u" * 420_000}},
            )
        )
        out[f"{table} after"] = _pages(ddb, TableName=table)
        out[f"{table} query"] = ddb.query(
            TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "P#00"}}
        )["Items"]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = ddb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    out["stream"] = [(r["eventName"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage")) for r in records]
    return out


def test_sizes_kept_on_items_answer_what_moto_answers() -> None:
    # Given items read page by page, then grown in place by updates (nested, ADD, AttributeUpdates, a failed
    # condition, an update refused as too large), in a table with a stream and in one without
    # When it runs on moto as it is and with the size and scan patches
    plain, patched = _twice(
        _growing_items_scenario, lambda: moto_hotspots([DYNAMODB_SIZES, DYNAMODB_SCAN, DYNAMODB_ITEM_SIZES])
    )
    # Then every page, error and stream record (with the item as it was before each update) is the same
    assert patched == plain
    assert len(plain["t before"]) == 1 and len(plain["t after"]) > 1  # the grown items really cut pages
    assert any(old and new and old != new for _, old, new in plain["stream"])


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, json.dumps({"Items": [{"pk": {"S": "x"}}], "Count": 1})),
        ({"status": 200}, '{"v": {"S": "RequestId"}}'),
        ({}, "<Response><RequestId>old</RequestId><Other/></Response>"),
        ({"status": 400}, "<Error><RequestId></RequestId></Error>"),
        ({}, b"<RequestId>bytes</RequestId>"),
        ({}, ""),
    ],
    ids=["json", "json-word", "xml", "xml-error", "bytes", "empty"],
)
def test_request_ids_go_where_moto_puts_them(headers: dict[str, Any], body: Any) -> None:
    # Given an answer's headers and body, and moto's random numbers from the same seed
    from moto.core.responses import BaseResponse
    from moto.moto_api._internal import mock_random

    mock_random.seed(7)
    expected = BaseResponse._enrich_response(dict(headers), body)
    # When moto adds the request id with the patch / Then the headers and the body are the same
    with moto_hotspots([RESPONSE_REQUEST_ID]):
        mock_random.seed(7)
        assert BaseResponse._enrich_response(dict(headers), body) == expected
    assert expected[0]["x-amzn-requestid"]


# ---- Step Functions: a Distributed Map's tolerated failures --------------------------------------------------------


def _distributed_map(tolerance: dict[str, Any]) -> dict[str, Any]:
    """A Distributed Map over `$.items`: an item with `fail` ends its child execution in a Fail state."""
    child = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Broke"}],
                "Default": "Done",
            },
            "Broke": {"Type": "Fail", "Error": "ItemBroke", "Cause": "a failed item"},
            "Done": {"Type": "Pass", "End": True},
        },
    }
    return {
        "StartAt": "Items",
        "States": {
            "Items": {
                "Type": "Map",
                "ItemsPath": "$.items",
                **tolerance,
                "ItemProcessor": child,
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def _run_distributed_map(tolerance: dict[str, Any], patched: bool) -> dict[str, Any]:
    """The execution's output: one of its three items fails."""
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        distributed_map_tolerance() if patched else nullcontext(),
    ):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="tolerance",
            definition=json.dumps(_distributed_map(tolerance)),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        items = [{"fail": False}, {"fail": True}, {"fail": False}]
        arn = sfn.start_execution(stateMachineArn=machine, name="run", input=json.dumps({"items": items}))[
            "executionArn"
        ]
        deadline = time.monotonic() + 30
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        assert described["status"] == "SUCCEEDED"  # the Catch ends it in a Pass state either way
        output: dict[str, Any] = json.loads(described["output"])
        return output


@pytest.mark.parametrize(
    "tolerance",
    [{}, {"ToleratedFailurePercentage": 0.0}, {"ToleratedFailureCount": 0}, {"ToleratedFailurePercentage": 30.0}],
    ids=["unset", "percentage-0", "count-0", "percentage-30"],
)
def test_a_failed_item_beyond_the_tolerance_fails_the_distributed_map(tolerance: dict[str, Any]) -> None:
    # Given a Distributed Map whose tolerance one failed item of three exceeds
    # When it runs on moto as it is / Then moto lets the Map succeed with a null result (the patch is still needed)
    assert _run_distributed_map(tolerance, patched=False)["results"][1] is None
    # When it runs with the patch / Then the Map Run fails as on AWS, and the Map state's Catch gets the error
    output = _run_distributed_map(tolerance, patched=True)
    assert "results" not in output
    assert output["error"]["Error"] == "States.ExceedToleratedFailureThreshold"


@pytest.mark.parametrize(
    "tolerance",
    [{"ToleratedFailureCount": 1}, {"ToleratedFailurePercentage": 50.0}],
    ids=["count-1", "percentage-50"],
)
def test_failures_within_the_tolerance_leave_the_distributed_map_succeeding(tolerance: dict[str, Any]) -> None:
    # Given a Distributed Map that tolerates one failed item of three (and sets only that threshold: AWS applies no
    # other, although moto fills the unset one with 0) / When it runs with the patch
    output = _run_distributed_map(tolerance, patched=True)
    # Then the Map succeeds with the other items' results
    assert "error" not in output
    assert [output["results"][0], output["results"][2]] == [{"fail": False}, {"fail": False}]
