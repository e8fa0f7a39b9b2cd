"""AWS adapters of the ingest ports: S3 raw archive, DynamoDB dedupe ledger, Secrets Manager keyring."""

from __future__ import annotations

import json
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdp import topology
from cdp.errors import StoreError
from cdp.ingest.ports import ApiClient, ApiKeyring, ArchivedRequest, DedupeLedger, DedupeStatus, RawArchive
from cdp.observability import logger
from cdp.org import ScopeRef
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

PK = topology.LEDGER_TABLE.partition_key
SK = topology.LEDGER_TABLE.sort_key
DEDUPE_RETENTION = timedelta(days=topology.RAW_RETENTION_DAYS)  # a dedupe record lives as long as its raw body


class S3RawArchive(RawArchive):
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._s3: S3Client = client or default_client("s3")

    def archive(
        self,
        request_id: str,
        body: bytes,
        received_at: datetime,
        source_hint: str,
        meta: dict[str, str] | None = None,
    ) -> str:
        key = raw_key(source_hint, received_at, request_id)
        metadata = {"received-at": iso(received_at), "source": source_hint, **(meta or {})}
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, Metadata=metadata)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"archiving {key} failed: {exc}") from exc
        return key

    def keys_between(self, source_hint: str, start: datetime, end: datetime) -> list[str]:
        keys: list[str] = []
        hour = start.replace(minute=0, second=0, microsecond=0)
        paginator = self._s3.get_paginator("list_objects_v2")
        while hour < end:
            prefix = f"{topology.RAW_PREFIX}{source_hint}/{hour:%Y/%m/%d/%H}/"
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
            hour += timedelta(hours=1)
        return [k for k in keys if start <= _received_at(k) < end]

    def read(self, key: str) -> ArchivedRequest:
        try:
            obj = self._s3.get_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading {key} failed: {exc}") from exc
        return ArchivedRequest(key=key, body=obj["Body"].read(), meta=dict(obj.get("Metadata") or {}))


def raw_key(source_hint: str, received_at: datetime, request_id: str) -> str:
    """raw/{source}/{yyyy/mm/dd/hh}/{receipt time}-{request id}: hour prefixes for replay ranges, sorted inside."""
    return f"{topology.RAW_PREFIX}{source_hint}/{received_at:%Y/%m/%d/%H}/{received_at:%Y%m%dT%H%M%S%f}-{request_id}"


def _received_at(key: str) -> datetime:
    stamp = key.rsplit("/", 1)[-1].split("-", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:  # an object written before receipt times were in keys: take its hour
        y, m, d, h = key.split("/")[-5:-1]
        return datetime(int(y), int(m), int(d), int(h), tzinfo=UTC)


class DynamoDedupeLedger(DedupeLedger):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    @staticmethod
    def _key(dedupe_key: str) -> dict[str, Any]:
        return {PK: {"S": f"EVT#{dedupe_key}"}, SK: {"S": "EVT"}}

    def claim(self, dedupe_key: str, raw_key: str, received_at: datetime) -> DedupeStatus:
        expires = int((received_at + DEDUPE_RETENTION).timestamp())
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(dedupe_key),
                    "status": {"S": "pending"},
                    "raw_key": {"S": raw_key},
                    "received_at": {"S": iso(received_at)},
                    "expires_at": {"N": str(expires)},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StoreError(f"dedupe claim of {dedupe_key} failed: {exc}") from exc
            old = cast(dict[str, Any], dict(exc.response).get("Item") or {})
            status = old.get("status", {}).get("S")
            if status is None:
                status = self._status(dedupe_key)
            return DedupeStatus.RETRY if status == "pending" else DedupeStatus.DUPLICATE
        except BotoCoreError as exc:
            raise StoreError(f"dedupe claim of {dedupe_key} failed: {exc}") from exc
        return DedupeStatus.NEW

    def claim_many(
        self,
        dedupe_keys: list[str],
        raw_key: str,
        received_at: datetime,
    ) -> dict[str, DedupeStatus]:
        """One BatchGetItem per 100 keys instead of a conditional write per event: an id already confirmed is a
        duplicate, anything else is published (then confirmed). Two first deliveries of the same id racing each
        other may both publish; every consumer applies an event id once, so the profile is unaffected."""
        found: dict[str, str] = {}
        for start in range(0, len(dedupe_keys), 100):
            request = {
                self._table: {
                    "Keys": [self._key(k) for k in dedupe_keys[start : start + 100]],
                    "ProjectionExpression": "#pk, #st",
                    "ExpressionAttributeNames": {"#pk": PK, "#st": "status"},
                }
            }
            for _ in range(8):
                try:
                    response = self._db.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"dedupe lookup of {len(dedupe_keys)} events failed: {exc}") from exc
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item[PK]["S"].removeprefix("EVT#")] = item.get("status", {}).get("S", "")
                request = cast(Any, response.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(0.05)
            else:
                raise StoreError(f"dedupe lookup left keys unprocessed after retries ({len(dedupe_keys)} events)")
        return {k: DedupeStatus.DUPLICATE if found.get(k) == "published" else DedupeStatus.NEW for k in dedupe_keys}

    def _status(self, dedupe_key: str) -> str | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(dedupe_key), ConsistentRead=True).get("Item")
        return item["status"]["S"] if item else None

    def confirm(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> None:
        """Overwrite the claims as published, 25 per BatchWriteItem (unprocessed items are retried)."""
        expires = str(int((received_at + DEDUPE_RETENTION).timestamp()))
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        **self._key(key),
                        "status": {"S": "published"},
                        "raw_key": {"S": raw_key},
                        "received_at": {"S": iso(received_at)},
                        "expires_at": {"N": expires},
                    }
                }
            }
            for key in dedupe_keys
        ]
        batch_write(self._db, self._table, puts, f"confirming {len(puts)} events")


class ApiKeyEntry(BaseModel):
    """One key in the secret. `scope` (optional) limits what the key sees to part of the org hierarchy, e.g.
    {"brand_id": "demo-brand", "store_id": "sh01"}; without it the key sees every brand (the original format)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client: str = Field(default="unknown", min_length=1)
    scopes: frozenset[str] = frozenset()
    scope: ScopeRef = Field(default_factory=ScopeRef)

    def to_client(self) -> ApiClient:
        return ApiClient(self.client, self.scopes, self.scope)


def parse_keys(keys: dict[str, Any]) -> dict[str, ApiClient]:
    """API key -> client. A malformed entry is left out (logged by client name, never by key) so that one bad
    entry cannot lock every other client out."""
    out: dict[str, ApiClient] = {}
    for key, raw in keys.items():
        try:
            out[key] = ApiKeyEntry.model_validate(raw).to_client()
        except ValidationError as exc:
            name = raw.get("client") if isinstance(raw, dict) else None
            logger.error("malformed API key entry ignored", client=name, errors=exc.errors(include_url=False))
    return out


class SecretsManagerKeyring(ApiKeyring):
    """Secret JSON: {"keys": {"<api key>": {"client": "...", "scopes": [...], "scope": {"brand_id": "..."}}},
    "hmac": {"<key id>": "<secret>"}}; `scope` is optional (see `ApiKeyEntry`).

    Read at most every TTL_S seconds: a key added to or removed from the secret is in force within that long.
    `forget(secret_id)` makes every keyring of the process read it again at its next request (the settings API calls
    it after it wrote the secret: on Lambda that is its own function's container; in the local runtime, where every
    function runs in one process, all of them)."""

    TTL_S = 300.0
    _live: ClassVar[weakref.WeakSet[SecretsManagerKeyring]] = weakref.WeakSet()

    def __init__(self, secret_id: str, client: SecretsManagerClient | None = None) -> None:
        self._secret_id = secret_id
        self._sm: SecretsManagerClient = client or default_client("secretsmanager")
        self._cached: tuple[dict[str, Any], dict[str, ApiClient]] | None = None
        self._loaded_at = 0.0
        SecretsManagerKeyring._live.add(self)

    @classmethod
    def forget(cls, secret_id: str) -> None:
        """Every keyring of this process reading `secret_id` reads it again at its next request."""
        for keyring in list(cls._live):
            if keyring._secret_id == secret_id:
                keyring._cached = None

    def _secret(self) -> tuple[dict[str, Any], dict[str, ApiClient]]:
        cached = self._cached  # one read: `forget` may clear it on another thread meanwhile
        if cached is None or time.monotonic() - self._loaded_at > self.TTL_S:
            try:
                raw = self._sm.get_secret_value(SecretId=self._secret_id)["SecretString"]
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"reading secret {self._secret_id} failed: {exc}") from exc
            document = json.loads(raw)
            cached = (document, parse_keys(document.get("keys") or {}))
            self._cached, self._loaded_at = cached, time.monotonic()
        return cached

    def clients(self) -> dict[str, ApiClient]:
        return self._secret()[1]

    def hmac_secrets(self) -> dict[str, str]:
        return dict(self._secret()[0].get("hmac", {}))
