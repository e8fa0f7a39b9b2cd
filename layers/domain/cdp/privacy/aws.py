"""AWS adapters of the privacy ports (DynamoDB profiles, ledger and offers tables, the S3 data bucket) and their
wiring: `ports = privacy_ports_from_env()`, then `erase_person(person_id, actor, ports.records, ports.archive,
ports.ledger, ports.offers, ports.publisher)` and `export_person(person_id, ports.records)`.

The offers table is read by the key shapes its stores write (`cdp.offers.dynamodb`, `cdp.budgets.dynamodb`,
`cdp.loyalty.dynamodb`). Loyalty operations are keyed by programme and operation id, not by person: they are found
through the table's by-person index (`cdp.topology.OFFERS_BY_PERSON`).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.budgets.dynamodb import hold_key, hold_pk, transact
from cdp.budgets.ledger import Hold
from cdp.channels.inbox import inbox_pk
from cdp.channels.ledger import SEND_SK, send_pk
from cdp.channels.messages import MESSAGE_SK, message_pk, provider_pk
from cdp.channels.models import message_id_for
from cdp.channels.ports import SendKey
from cdp.errors import ConflictError, StoreError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.resolution import IdentifierRecord, LineageRecord
from cdp.ingest.events import parse_event
from cdp.loyalty.accounts import Account
from cdp.loyalty.dynamodb import DynamoAccountStore, person_ref, timer_key
from cdp.loyalty.ports import Operation
from cdp.offers.dynamodb import DynamoOfferStore, code_key, expiry_key, pending_key, wallet_key
from cdp.offers.wallet import WalletEntry
from cdp.org import OrgDirectory
from cdp.privacy.models import ErasureReceipt
from cdp.privacy.ports import (
    DataArchive,
    FiledEvent,
    ItemKey,
    LedgerRecords,
    LoyaltyErasure,
    OfferRecords,
    PersonRecords,
    StoredItem,
    WalletErasure,
)
from cdp.privacy.scrub import drop_values
from cdp.profile import keys
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord
from cdp.settings import DataBucket, EventBus, LedgerTable, OffersTable, ProfilesTable, get_settings
from cdp.shared.aws import EventBridgePublisher, is_missing_object, read_object
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write, from_item, new_item, query_items, to_item
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key
LEDGER_PK = topology.LEDGER_TABLE.partition_key
LEDGER_SK = topology.LEDGER_TABLE.sort_key
OFFERS_PK = topology.OFFERS_TABLE.partition_key
OFFERS_SK = topology.OFFERS_TABLE.sort_key
OFFERS_KEYS = (OFFERS_PK, OFFERS_SK)
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
            message_id = message_id_for(key.campaign_id, key.step, key.person_id)
            deleted += self._delete_logged(message_id)
        return deleted

    def delete_inbox(self, brand_id: str, person_ids: Iterable[str]) -> list[str]:
        keys_: list[dict[str, Any]] = []
        for person_id in sorted(set(person_ids)):
            condition = "#pk = :pk"
            values = {":pk": {"S": inbox_pk(brand_id, person_id)}}
            keys_ += query_items(self._db, self._table, condition, values, keys=(LEDGER_PK, LEDGER_SK))
        found = [{LEDGER_PK: item[LEDGER_PK], LEDGER_SK: item[LEDGER_SK]} for item in keys_]
        batch_write(self._db, self._table, [{"DeleteRequest": {"Key": k}} for k in found], "erasing in-app inboxes")
        return [f"{k[LEDGER_PK]['S']}/{k[LEDGER_SK]['S']}" for k in found]

    def _delete_logged(self, message_id: str) -> list[str]:
        """The message log's item of the message (it names the person), and its provider id's pointer."""
        pk = message_pk(message_id)
        try:
            old = self._db.delete_item(
                TableName=self._table, Key={LEDGER_PK: {"S": pk}, LEDGER_SK: {"S": MESSAGE_SK}}, ReturnValues="ALL_OLD"
            ).get("Attributes")
            if not old:
                return []
            if "provider" in old and "provider_id" in old:
                pointer = provider_pk(old["provider"]["S"], old["provider_id"]["S"])
                self._db.delete_item(
                    TableName=self._table, Key={LEDGER_PK: {"S": pointer}, LEDGER_SK: {"S": MESSAGE_SK}}
                )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"deleting message {pk} failed: {exc}") from exc
        return [pk]


class DynamoOfferRecords(OfferRecords):
    """The offers table: wallets with what indexes them and their budget holds, loyalty accounts with their
    operations and timers. What is used to find the rest (wallet entries, accounts) is deleted last, so a retry after
    a failure finds the rest again."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._wallets = DynamoOfferStore(table_name, client=self._db)  # reads entries and holds as the store wrote them
        self._accounts = DynamoAccountStore(table_name, client=self._db)

    # -- wallets ---------------------------------------------------------------------------------------------------

    def erase_wallets(self, brand_id: str, person_ids: Collection[str], at: datetime) -> WalletErasure:
        out = WalletErasure()
        ids = sorted(set(person_ids))
        entries = [e for pid in ids for e in self._wallets.wallet(brand_id, pid)]
        for entry in entries:
            # the code first: a till can no longer find the entry (and redeem it) while its hold is released
            if entry.code is not None and self._delete(code_key(brand_id, entry.code), issue_id=entry.issue_id):
                out.records.append(f"code:{entry.issue_id}")
            if self._delete(expiry_key(entry)):
                out.records.append(f"expiry:{entry.issue_id}")
            if self._delete(pending_key(entry)):  # a payout its provider left pending: the tick asks no more
                out.records.append(f"pending:{entry.issue_id}")
            for hold_id in _hold_ids(entry):
                self._erase_hold(brand_id, hold_id, entry.offer_id, ids, at, out)
        for pid in ids:
            limits = self._query(f"LIMIT#{brand_id}#{pid}")  # `DynamoOfferStore._issue_items`: one per offer
            self._delete_all(limits, f"deleting the offer limits of {pid}")
            out.records.extend(f"limit:{pid}/{item[OFFERS_SK]['S']}" for item in limits)
        keys_ = [wallet_key(brand_id, e.person_id, e.issue_id) for e in entries]
        self._delete_all(keys_, f"deleting {len(keys_)} wallet entries")
        out.entries.extend(f"{e.person_id}/{e.issue_id}" for e in entries)
        return out

    def _erase_hold(
        self, brand_id: str, hold_id: str, offer_id: str, person_ids: list[str], at: datetime, out: WalletErasure
    ) -> None:
        """Release what the hold still reserves; then delete it when nothing was spent, else re-key it (the pools'
        committed figures are sums of the spent holds: they stay), with its commit markers deleted either way."""
        items = query_items(self._db, self._table, "#pk = :pk", {":pk": hold_pk(brand_id, hold_id)}, keys=OFFERS_KEYS)
        if not items:
            return
        ledger, key = self._wallets.budgets, hold_key(brand_id, hold_id)
        hold = ledger.hold(brand_id, hold_id)
        if hold is not None and hold.state == "open":
            hold = ledger.release(brand_id, hold_id, at)
            out.holds_released.append(hold_id)
        markers = [i for i in items if i[OFFERS_SK] != key[OFFERS_SK]]
        if hold is not None and any(hold.spent.values()):
            self._anonymise(hold, offer_id, person_ids)
            out.holds.append(f"anonymised:{hold_id}")
        elif hold is not None:
            markers.append(key)
            out.holds.append(f"deleted:{hold_id}")
        self._delete_all(markers, f"deleting hold {hold_id}")

    def _anonymise(self, hold: Hold, offer_id: str, person_ids: list[str]) -> None:
        """Move the closed hold to an id that names no one, in one transaction (a retry finds it moved already)."""
        old = hold_key(hold.brand_id, hold.hold_id)
        raw = self._get(old)
        if raw is None:
            return
        new_id = f"{offer_id}:erased:{secrets.token_hex(16)}"  # random: nothing leads from the person to it
        plan = hold.plan_id if hold.plan_id and not any(pid in hold.plan_id for pid in person_ids) else None
        doc = hold.model_copy(update={"hold_id": new_id, "plan_id": plan})
        item = {**raw, **hold_key(hold.brand_id, new_id), "doc": {"S": doc.model_dump_json()}}
        delete = {
            "TableName": self._table,
            "Key": old,
            "ConditionExpression": "#st = :closed",
            "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {":closed": {"S": "closed"}},
        }
        try:
            transact(self._db, [{"Put": new_item(self._table, item, OFFERS_PK)}, {"Delete": delete}], "a hold re-keyed")
        except ClientError as exc:
            raise ConflictError(f"hold {hold.hold_id} changed during the erasure; retry") from exc

    def wallet(self, brand_id: str, person_ids: Collection[str]) -> list[WalletEntry]:
        return [e for pid in sorted(set(person_ids)) for e in self._wallets.wallet(brand_id, pid)]

    def loyalty_accounts(self, brand_id: str, person_ids: Collection[str]) -> list[Account]:
        out = []
        for pid in sorted(set(person_ids)):
            for item in self._query(f"LOYALTY#{brand_id}#{pid}"):  # `cdp.loyalty.dynamodb`: one per programme
                found = self._accounts.get(brand_id, item[OFFERS_SK]["S"].removeprefix("ACCOUNT#"), pid)
                if found is not None:
                    out.append(found)
        return out

    # -- loyalty ---------------------------------------------------------------------------------------------------

    def erase_loyalty(self, brand_id: str, person_ids: Collection[str]) -> LoyaltyErasure:
        out = LoyaltyErasure()
        ids = sorted(set(person_ids))
        accounts = {pid: self._query(f"LOYALTY#{brand_id}#{pid}") for pid in ids}  # `cdp.loyalty.dynamodb`
        programs = sorted({i[OFFERS_SK]["S"].removeprefix("ACCOUNT#") for items in accounts.values() for i in items})
        months = [i[OFFERS_SK]["S"] for i in self._query(f"LOYALTYMONTHS#{brand_id}")]  # the months holding timers
        for month in months:
            for program in programs:
                for pid in ids:
                    if self._delete(timer_key(brand_id, month, program, pid)):
                        out.timers.append(f"{month}/{program}/{pid}")
        operations = self._operations(brand_id, ids)
        self._delete_all([key for key, _ in operations], f"deleting {len(operations)} loyalty operations")
        out.operations.extend(f"{op.program}/{op.op_id}" for _, op in operations)
        for pid, items in accounts.items():
            self._delete_all(items, f"deleting the loyalty accounts of {pid}")
            out.accounts.extend(f"{pid}/{i[OFFERS_SK]['S'].removeprefix('ACCOUNT#')}" for i in items)
        return out

    def _operations(self, brand_id: str, person_ids: list[str]) -> list[tuple[dict[str, Any], Operation]]:
        """The persons' applied operations, through the by-person index (keys only, eventually consistent: the
        erasure's second sweep finds one written as the first ran), each read and checked on its `person_id`."""
        out: list[tuple[dict[str, Any], Operation]] = []
        for pid in person_ids:
            for key in self._by_person(person_ref(brand_id, pid)):
                item = self._get(key)
                if item is None or not item[OFFERS_PK]["S"].startswith("LOYALTYOP#"):
                    continue
                op = Operation.model_validate_json(item["doc"]["S"])
                if op.person_id in person_ids:
                    out.append((key, op))
        return out

    def _by_person(self, ref: str) -> list[dict[str, Any]]:
        index = topology.OFFERS_BY_PERSON
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index.name,
            "KeyConditionExpression": "#ref = :ref",
            "ExpressionAttributeNames": {"#ref": index.partition_key},
            "ExpressionAttributeValues": {":ref": {"S": ref}},
        }
        keys_: list[dict[str, Any]] = []
        try:
            for page in self._db.get_paginator("query").paginate(**kwargs):
                keys_ += [{OFFERS_PK: i[OFFERS_PK], OFFERS_SK: i[OFFERS_SK]} for i in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading the by-person index of {self._table} failed: {exc}") from exc
        return keys_

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _query(self, pk: str) -> list[dict[str, Any]]:
        return query_items(self._db, self._table, "#pk = :pk", {":pk": {"S": pk}}, keys=OFFERS_KEYS)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"get_item {key[OFFERS_PK]['S']} failed: {exc}") from exc

    def _delete(self, key: dict[str, Any], issue_id: str | None = None) -> bool:
        """Delete one item; whether it existed. `issue_id`: only if the item (a code's index) names that issue."""
        request: dict[str, Any] = {"TableName": self._table, "Key": key, "ReturnValues": "ALL_OLD"}
        if issue_id is not None:
            request["ConditionExpression"] = "issue_id = :issue"
            request["ExpressionAttributeValues"] = {":issue": {"S": issue_id}}
        try:
            return bool(self._db.delete_item(**request).get("Attributes"))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # absent, or another issue's
            raise StoreError(f"deleting {key[OFFERS_PK]['S']} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"deleting {key[OFFERS_PK]['S']} failed: {exc}") from exc

    def _delete_all(self, items: list[dict[str, Any]], what: str) -> None:
        keys_ = [{OFFERS_PK: i[OFFERS_PK], OFFERS_SK: i[OFFERS_SK]} for i in items]
        batch_write(self._db, self._table, [{"DeleteRequest": {"Key": k}} for k in keys_], what)


def _hold_ids(entry: WalletEntry) -> list[str]:
    """The budget holds of a wallet entry: its own (its issue id), and the charge of a redemption that came after its
    hold was gone (an expired entry redeemed anyway: `DynamoOfferStore._spend`)."""
    late = [f"{entry.issue_id}:late:{entry.order_id}"] if entry.order_id else []
    return [entry.issue_id, *late]


# ---- wiring ---------------------------------------------------------------------------------------------------


class PrivacySettings(ProfilesTable, LedgerTable, OffersTable, DataBucket, EventBus):
    """The environment erasure and export need (any function that has these variables can run them)."""


@dataclass(frozen=True)
class PrivacyPorts:
    records: PersonRecords
    archive: DataArchive
    ledger: LedgerRecords
    offers: OfferRecords
    publisher: EventPublisher


def privacy_ports(
    profiles_table: str,
    ledger_table: str,
    bucket: str,
    bus_name: str,
    offers_table: str,
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
        offers=DynamoOfferRecords(offers_table, client=db),
        publisher=EventBridgePublisher(bus_name, events_client=events),
    )


def privacy_ports_from_env(org: OrgDirectory | None = None) -> PrivacyPorts:
    """The adapters from the function's environment (validated once; a missing variable fails fast)."""
    settings = get_settings(PrivacySettings)
    return privacy_ports(
        settings.profiles_table,
        settings.ledger_table,
        settings.data_bucket,
        settings.event_bus_name,
        settings.offers_table,
        org=org,
    )
