"""AWS adapters of the privacy ports (DynamoDB profiles and ledger tables, the S3 data bucket) and their wiring:
`ports = privacy_ports_from_env()`, then `erase_person(person_id, actor, ports.records, ports.archive, ports.ledger,
ports.publisher)` and `export_person(person_id, ports.records)`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.ledger import SEND_SK, send_pk
from cdp.channels.ports import SendKey
from cdp.errors import ConflictError, StoreError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.resolution import IdentifierRecord, LineageRecord
from cdp.ingest.events import parse_event
from cdp.org import OrgDirectory
from cdp.privacy.models import ErasureReceipt
from cdp.privacy.ports import DataArchive, FiledEvent, ItemKey, LedgerRecords, PersonRecords, StoredItem
from cdp.privacy.scrub import drop_values
from cdp.profile import keys
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord
from cdp.settings import DataBucket, EventBus, LedgerTable, ProfilesTable, get_settings
from cdp.shared.aws import EventBridgePublisher, is_missing_object, read_object
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write, from_item, to_item
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key
LEDGER_PK = topology.LEDGER_TABLE.partition_key
LEDGER_SK = topology.LEDGER_TABLE.sort_key
ERASURE_SK = "RECEIPT"
_BATCH_GET = 100


def erasure_pk(person_id: str) -> str:
    """Where the receipt of an erased person is kept (it holds no personal data)."""
    return f"ERASURE#{person_id}"


def dedupe_record_key(dedupe_key: str) -> dict[str, Any]:
    """The ingest dedupe record of an event (the shape `cdp.ingest.aws.DynamoDedupeLedger` writes)."""
    return {LEDGER_PK: {"S": f"EVT#{dedupe_key}"}, LEDGER_SK: {"S": "EVT"}}


class DynamoPersonRecords(PersonRecords):
    """The profiles table. Reads the profile store already implements go through `DynamoIdentityStore`."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None, org: OrgDirectory | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._store = DynamoIdentityStore(table_name, client=self._db, org=org)

    def _query(self, pk: str, sk_prefix: str | None = None) -> list[dict[str, Any]]:
        condition, values = "#pk = :pk", {":pk": {"S": pk}}
        names = {"#pk": PK}
        if sk_prefix:
            condition += " AND begins_with(#sk, :prefix)"
            values[":prefix"] = {"S": sk_prefix}
            names["#sk"] = SK
        pages = self._db.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        try:
            return [from_item(raw) for page in pages for raw in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"query {pk} failed: {exc}") from exc

    def person(self, person_id: str) -> Profile | None:
        return self._store.load_persons([person_id]).get(person_id)

    def items(self, person_id: str) -> list[StoredItem]:
        return [_stored(item) for item in self._query(keys.person_pk(person_id))]

    def identifier_records(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]:
        wanted = sorted(set(keys_))
        return self._store.lookup_identifiers(namespace, wanted) if wanted else {}

    def filed_events(self, namespace: str, anchors: Iterable[str]) -> list[FiledEvent]:
        out: list[FiledEvent] = []
        for anchor in sorted(set(anchors)):
            for item in self._query(keys.anchor_pk(namespace, anchor), keys.TIMELINE_PREFIX):
                out.append(FiledEvent(ItemKey(item[PK], item[SK]), anchor, parse_event(item["event"])))
        return out

    def messages(self, person_id: str) -> list[MessageRecord]:
        return self._store.messages(person_id)

    def lineage(self, person_id: str) -> list[LineageRecord]:
        return self._store.lineage(person_id)

    def suppress(self, namespace: str, keys_: Iterable[str], at: datetime) -> None:
        puts = [
            {
                "PutRequest": {
                    "Item": to_item({PK: keys.suppressed_pk(namespace, k), SK: keys.SUPPRESSED_SK, "at": iso(at)})
                }
            }
            for k in sorted(set(keys_))
        ]
        batch_write(self._db, self._table, puts, "writing suppressions")

    def delete(self, keys_: Collection[ItemKey]) -> None:
        unique = sorted(set(keys_))
        deletes = [{"DeleteRequest": {"Key": {PK: {"S": k.pk}, SK: {"S": k.sk}}}} for k in unique]
        batch_write(self._db, self._table, deletes, f"deleting {len(unique)} items")

    def redact(self, key: ItemKey, erased: Collection[str], versioned: bool = False) -> bool:
        raw = self._get(key)
        if raw is None:
            return False
        attributes = {k: v for k, v in from_item(raw).items() if k not in (PK, SK)}
        clean, changed = drop_values(attributes, erased)
        if not changed:
            return False
        request: dict[str, Any] = {"TableName": self._table, "Item": to_item({PK: key.pk, SK: key.sk, **clean})}
        if versioned:
            # Identifier records carry the optimistic version resolution checks: bump it, so a concurrent plan
            # that read the old record fails and re-plans.
            old = int(attributes.get("ver", 1))
            request["Item"]["ver"] = {"N": str(old + 1)}
            request["ConditionExpression"] = "ver = :old"
            request["ExpressionAttributeValues"] = {":old": {"N": str(old)}}
        try:
            self._db.put_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"{key.pk} changed during the erasure; retry") from exc
            raise StoreError(f"redacting {key.pk} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"redacting {key.pk} failed: {exc}") from exc
        return True

    def replace_event(self, filed: FiledEvent) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={PK: {"S": filed.key.pk}, SK: {"S": filed.key.sk}},
                UpdateExpression="SET #event = :event",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#event": "event", "#pk": PK},
                ExpressionAttributeValues={":event": {"S": filed.event.model_dump_json()}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return  # deleted meanwhile: nothing left to redact
            raise StoreError(f"rewriting event {filed.event.dedupe_key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"rewriting event {filed.event.dedupe_key} failed: {exc}") from exc

    def receipt(self, person_id: str) -> ErasureReceipt | None:
        raw = self._get(ItemKey(erasure_pk(person_id), ERASURE_SK))
        return ErasureReceipt.model_validate_json(raw["receipt"]["S"]) if raw else None

    def save_receipt(self, receipt: ErasureReceipt, person_ids: Iterable[str]) -> None:
        body = receipt.model_dump_json()
        puts = [
            {
                "PutRequest": {
                    "Item": {
                        PK: {"S": erasure_pk(pid)},
                        SK: {"S": ERASURE_SK},
                        "person_id": {"S": receipt.person_id},
                        "erased_at": {"S": iso(receipt.erased_at)},
                        "receipt": {"S": body},
                    }
                }
            }
            for pid in sorted(set(person_ids))
        ]
        batch_write(self._db, self._table, puts, f"saving the erasure receipt of {receipt.person_id}")

    def _get(self, key: ItemKey) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(
                TableName=self._table, Key={PK: {"S": key.pk}, SK: {"S": key.sk}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"get_item {key.pk} failed: {exc}") from exc
        return response.get("Item")


def _stored(item: dict[str, Any]) -> StoredItem:
    return StoredItem(ItemKey(item[PK], item[SK]), {k: v for k, v in item.items() if k not in (PK, SK)})


class S3DataArchive(DataArchive):
    """The data bucket. It is versioned (see the storage construct), so an erased object's versions go too."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._s3: S3Client = client or default_client("s3")

    def keys(self, prefix: str) -> Iterator[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"listing s3://{self._bucket}/{prefix} failed: {exc}") from exc

    def read(self, key: str) -> bytes | None:
        return read_object(self._s3, self._bucket, key)

    def rewrite(self, key: str, body: bytes) -> None:
        # Keep what the object carries besides its bytes: replay reads received-at, connector, brand-id, ... from
        # the metadata, and the content headers say how to read the body (the scrub keeps its encoding).
        head: dict[str, Any] = {}
        try:
            head = dict(self._s3.head_object(Bucket=self._bucket, Key=key))
        except ClientError as exc:
            if not is_missing_object(exc):
                raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "Metadata": dict(head.get("Metadata") or {}),
            "ContentType": head.get("ContentType") or "application/json",
        }
        for name in ("ContentEncoding", "ContentLanguage", "ContentDisposition", "CacheControl"):
            if head.get(name):
                request[name] = head[name]
        try:
            self._s3.put_object(**request)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"put s3://{self._bucket}/{key} failed: {exc}") from exc
        versions = self._versions(key)
        self._delete_versions(key, [v for v, latest in versions if not latest])

    def delete(self, key: str) -> None:
        versions = [v for v, _ in self._versions(key)]
        if not versions:
            try:
                self._s3.delete_object(Bucket=self._bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"delete s3://{self._bucket}/{key} failed: {exc}") from exc
            return
        self._delete_versions(key, versions)

    def _versions(self, key: str) -> list[tuple[str, bool]]:
        """(version id, is latest) of every version and delete marker of exactly this key."""
        out: list[tuple[str, bool]] = []
        pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self._bucket, Prefix=key)
        try:
            for page in pages:
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if entry.get("Key") == key and entry.get("VersionId"):
                        out.append((entry["VersionId"], bool(entry.get("IsLatest"))))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"listing versions of s3://{self._bucket}/{key} failed: {exc}") from exc
        return out

    def _delete_versions(self, key: str, version_ids: list[str]) -> None:
        for start in range(0, len(version_ids), 1000):
            chunk: list[Any] = [{"Key": key, "VersionId": v} for v in version_ids[start : start + 1000]]
            try:
                response = self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": chunk, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"deleting versions of s3://{self._bucket}/{key} failed: {exc}") from exc
            if response.get("Errors"):
                raise StoreError(f"deleting versions of s3://{self._bucket}/{key} failed: {response['Errors'][:3]}")


class DynamoLedgerRecords(LedgerRecords):
    """The ledger table: ingest dedupe records (read) and send idempotency records (deleted)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")

    def raw_keys(self, dedupe_keys: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(dedupe_keys))
        out: dict[str, str] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            request: Any = {
                self._table: {"Keys": [dedupe_record_key(k) for k in wanted[start : start + _BATCH_GET]]},
            }
            while request:
                try:
                    response = self._db.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"reading dedupe records failed: {exc}") from exc
                for raw in response.get("Responses", {}).get(self._table, []):
                    if "raw_key" in raw:
                        out[raw[LEDGER_PK]["S"].removeprefix("EVT#")] = raw["raw_key"]["S"]
                request = response.get("UnprocessedKeys") or {}
        return out

    def delete_sends(self, keys_: Iterable[SendKey]) -> list[str]:
        deleted: list[str] = []
        for key in keys_:
            pk = send_pk(key)
            try:
                response = self._db.delete_item(
                    TableName=self._table,
                    Key={LEDGER_PK: {"S": pk}, LEDGER_SK: {"S": SEND_SK}},
                    ReturnValues="ALL_OLD",
                )
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"deleting send record {pk} failed: {exc}") from exc
            if response.get("Attributes"):
                deleted.append(pk)
        return deleted


# ---- wiring ---------------------------------------------------------------------------------------------------


class PrivacySettings(ProfilesTable, LedgerTable, DataBucket, EventBus):
    """The environment erasure and export need (any function that has these variables can run them)."""


@dataclass(frozen=True)
class PrivacyPorts:
    records: PersonRecords
    archive: DataArchive
    ledger: LedgerRecords
    publisher: EventPublisher


def privacy_ports(
    profiles_table: str,
    ledger_table: str,
    bucket: str,
    bus_name: str,
    *,
    dynamodb: DynamoDBClient | None = None,
    s3: S3Client | None = None,
    events: Any = None,
    org: OrgDirectory | None = None,
) -> PrivacyPorts:
    db = dynamodb or default_client("dynamodb")
    return PrivacyPorts(
        records=DynamoPersonRecords(profiles_table, client=db, org=org),
        archive=S3DataArchive(bucket, client=s3),
        ledger=DynamoLedgerRecords(ledger_table, client=db),
        publisher=EventBridgePublisher(bus_name, events_client=events),
    )


def privacy_ports_from_env(org: OrgDirectory | None = None) -> PrivacyPorts:
    """The adapters from the function's environment (validated once; a missing variable fails fast)."""
    settings = get_settings(PrivacySettings)
    return privacy_ports(
        settings.profiles_table, settings.ledger_table, settings.data_bucket, settings.event_bus_name, org=org
    )
