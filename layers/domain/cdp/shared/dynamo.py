"""DynamoDB (de)serialization helpers shared by the adapters: pydantic JSON <-> attribute values, no floats."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_SIZE = 25
BATCH_WRITE_ATTEMPTS = 8

_SER = TypeSerializer()
_DES = TypeDeserializer()


def to_attr(value: Any) -> dict[str, Any]:
    """A JSON-ready Python value (or bytes) -> a DynamoDB attribute value (floats become Decimal)."""
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, str):  # the common scalars directly (most attributes), without the JSON round trip
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    clean = json.loads(json.dumps(value), parse_float=Decimal)
    return cast(dict[str, Any], _SER.serialize(clean))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Binary):
        return value.value  # type: ignore[attr-defined]  # (typeshed lacks it; boto3 sets it)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _value(attr: Any) -> Any:
    """One attribute value -> its plain Python value: what `_plain(TypeDeserializer().deserialize(attr))` gives,
    read directly for the types items are made of (every read goes through here: a scan page is ~10,000 values);
    sets and anything unusual go through boto3's deserializer."""
    if type(attr) is dict and len(attr) == 1:
        kind, inner = next(iter(attr.items()))
        if kind == "S" and type(inner) is str:
            return inner
        if kind == "N" and type(inner) is str:
            number = DYNAMODB_CONTEXT.create_decimal(inner)  # exactly boto3's number, then _plain's int or float
            return int(number) if number == number.to_integral_value() else float(number)
        if kind == "M" and type(inner) is dict:
            return {k: _value(v) for k, v in inner.items()}
        if kind == "L" and type(inner) is list:
            return [_value(v) for v in inner]
        if (kind == "BOOL" and type(inner) is bool) or (kind == "B" and type(inner) is bytes):
            return inner
        if kind == "NULL" and inner is True:
            return None
    return _plain(_DES.deserialize(attr))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item -> plain Python values (Decimal -> int/float)."""
    return {k: _value(v) for k, v in item.items()}


def batch_write(db: DynamoDBClient, table: str, requests: list[dict[str, Any]], what: str) -> None:
    """BatchWriteItem in 25s (PutRequest/DeleteRequest entries); unprocessed items are retried with exponential
    backoff, then StoreError names `what` and how many were left."""
    for start in range(0, len(requests), BATCH_WRITE_SIZE):
        pending: Any = {table: requests[start : start + BATCH_WRITE_SIZE]}
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            try:
                response = db.batch_write_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"{what} failed: {exc}") from exc
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        if pending:
            raise StoreError(f"{what}: {len(pending[table])} items still unprocessed after retries")


BATCH_GET_SIZE = 100


def batch_get(
    db: DynamoDBClient,
    table: str,
    keys: Sequence[dict[str, Any]],
    what: str,
    consistent: bool = True,
    projection: tuple[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """BatchGetItem in 100s (keys as attribute values), unprocessed keys asked again; the raw items found (in no
    particular order). `projection`: the attributes to read and the names its placeholders stand for."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_SIZE):
        ask: dict[str, Any] = {"Keys": list(keys[start : start + BATCH_GET_SIZE]), "ConsistentRead": consistent}
        if projection:
            ask.update(ProjectionExpression=projection[0], ExpressionAttributeNames=projection[1])
        pending: Any = {table: ask}
        while pending:
            try:
                response = db.batch_get_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"{what} failed: {exc}") from exc
            out.extend(response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or None
    return out


def query_items(
    db: DynamoDBClient,
    table: str,
    condition: str,
    values: dict[str, Any],
    limit: int | None = None,
    keys: tuple[str, str] = ("pk", "sk"),
) -> list[dict[str, Any]]:
    """A consistent Query's items (every page, or the first `limit`); `#pk` and `#sk` in `condition` name the
    table's keys."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": {"#pk": keys[0], "#sk": keys[1]} if "#sk" in condition else {"#pk": keys[0]},
        "ExpressionAttributeValues": values,
        "ConsistentRead": True,
    }
    out: list[dict[str, Any]] = []
    while True:
        if limit is not None:
            kwargs["Limit"] = limit - len(out)
        try:
            response = db.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading table {table} failed: {exc}") from exc
        out.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response or (limit is not None and len(out) >= limit):
            return out
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def new_item(table: str, item: dict[str, Any], partition_key: str = "pk") -> dict[str, Any]:
    """A Put of an item that must not exist yet (as a transaction's Put, or put_item's arguments)."""
    return {
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": partition_key},
    }


def put_new(db: DynamoDBClient, table: str, item: dict[str, Any], what: str, partition_key: str = "pk") -> bool:
    """Write an item that must not exist yet; False when it does (StoreError names `what` on any other failure)."""
    try:
        db.put_item(**new_item(table, item, partition_key))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise StoreError(f"{what} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"{what} failed: {exc}") from exc
    return True


def get_item(db: DynamoDBClient, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """A consistent read of one item (None when there is none)."""
    try:
        return db.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"reading table {table} failed: {exc}") from exc
