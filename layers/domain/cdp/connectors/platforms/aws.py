"""AWS adapters of a pull run's state: shop cursors and the order -> buyer index in the ledger table, rejects in S3.

Ledger items: CURSOR#{shop} (the end of the last fully published window; only ever moved forward, so two overlapping
runs cannot send it back) and BUYER#{shop}#{order id} (the buyer of an order, kept as long as the dedupe records so
that a late refund or review still finds its buyer).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.connectors.platforms.ports import PullState, RejectsSink
from cdp.errors import StoreError
from cdp.ingest.aws import DEDUPE_RETENTION
from cdp.shared.aws import client as default_client
from cdp.shared.aws import write_object
from cdp.shared.dynamo import batch_write
from cdp.shared.time import iso, parse_iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

PK = topology.LEDGER_TABLE.partition_key
SK = topology.LEDGER_TABLE.sort_key


def cursor_key(shop_id: str) -> dict[str, Any]:
    return {PK: {"S": f"CURSOR#{shop_id}"}, SK: {"S": "CURSOR"}}


def buyer_key(shop_id: str, order_id: str) -> dict[str, Any]:
    return {PK: {"S": f"BUYER#{shop_id}#{order_id}"}, SK: {"S": "BUYER"}}


class DynamoPullState(PullState):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    def cursor(self, shop_id: str) -> datetime | None:
        item = self._get(cursor_key(shop_id), f"reading the cursor of {shop_id}")
        return parse_iso(item["end"]["S"]) if item else None

    def advance(self, shop_id: str, end: datetime) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**cursor_key(shop_id), "end": {"S": iso(end)}},
                # iso() is fixed-width UTC, so string order is time order
                ConditionExpression="attribute_not_exists(#pk) OR #end < :end",
                ExpressionAttributeNames={"#pk": PK, "#end": "end"},
                ExpressionAttributeValues={":end": {"S": iso(end)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":  # a later run got further
                raise StoreError(f"moving the cursor of {shop_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"moving the cursor of {shop_id} failed: {exc}") from exc

    def remember_buyers(self, shop_id: str, buyers: dict[str, str]) -> None:
        expires = str(int((utc_now() + DEDUPE_RETENTION).timestamp()))
        puts = [
            {"PutRequest": {"Item": {**buyer_key(shop_id, o), "buyer": {"S": b}, "expires_at": {"N": expires}}}}
            for o, b in buyers.items()
        ]
        batch_write(self._db, self._table, puts, f"remembering {len(puts)} order buyers of {shop_id}")

    def buyer_of(self, shop_id: str, order_id: str) -> str | None:
        item = self._get(buyer_key(shop_id, order_id), f"reading the buyer of order {order_id}")
        return item["buyer"]["S"] if item else None

    def _get(self, key: dict[str, Any], what: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{what} failed: {exc}") from exc
        return dict(item) if item else None


class S3Rejects(RejectsSink):
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._s3: S3Client = client or default_client("s3")

    def write(self, key: str, body: bytes) -> None:
        write_object(self._s3, self._bucket, key, body, content_type="application/x-ndjson")
