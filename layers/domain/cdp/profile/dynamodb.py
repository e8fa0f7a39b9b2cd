"""DynamoDB adapter of the profile and identity ports (one table; key shapes in `cdp.profile.keys`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.errors import ConflictError, StoreError
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import IdentifierRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.profile import keys
from cdp.profile.models import ModelScore, Profile, TagValue
from cdp.profile.ports import MessageRecord, TimelineEntry
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import from_item, to_attr, to_item
from cdp.shared.time import iso, parse_iso
from cdp.tags.service import TagStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key
_MAX_TRANSACTION_ITEMS = 100


class DynamoProfileStore(TagStore, IdentityStore):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")

    # ---- reads ----------------------------------------------------------------------------------------------

    def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(TableName=self._table, Key={PK: {"S": pk}, SK: {"S": sk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"get_item {pk} failed: {exc}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def _load(self, person_id: str) -> Profile | None:
        item = self._get_item(keys.person_pk(person_id), keys.PROFILE_SK)
        return _to_profile(item) if item else None

    def get(self, person_id: str) -> Profile | None:
        profile = self._load(person_id)
        hops = 0
        while profile is not None and profile.merged_into and hops < 50:
            profile = self._load(profile.merged_into)
            hops += 1
        return profile

    def scan_shard(self, shard: int, total_shards: int) -> Iterator[Profile]:
        paginator = self._db.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table,
            Segment=shard,
            TotalSegments=total_shards,
            FilterExpression="#sk = :profile AND attribute_not_exists(merged_into)",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={":profile": {"S": keys.PROFILE_SK}},
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    yield _to_profile(from_item(item))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"scan shard {shard}/{total_shards} failed: {exc}") from exc

    def _query_prefix(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
        )
        try:
            return [from_item(item) for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"query {pk} failed: {exc}") from exc

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        entries = [
            TimelineEntry(person_id=pid, event=parse_event(item["event"]))
            for pid in (profile.person_id, *profile.merged_from)
            for item in self._query_prefix(keys.person_pk(pid), keys.TIMELINE_PREFIX)
        ]
        return sorted(entries, key=lambda e: (e.event.occurred_at, e.event.event_id))

    def person_for_identifier(self, identifier_key: str) -> str | None:
        record = self.lookup_identifiers([identifier_key]).get(identifier_key)
        if record is None:
            return None
        profile = self.get(record.person_id)
        return profile.person_id if profile else None

    # ---- annotations (each writer owns its attribute) ---------------------------------------------------

    def _update(self, person_id: str, expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={PK: {"S": keys.person_pk(person_id)}, SK: {"S": keys.PROFILE_SK}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, **names},
                ExpressionAttributeValues={k: to_attr(v) for k, v in values.items()},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"person {person_id} does not exist") from exc
            raise StoreError(f"update of {person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"update of {person_id} failed: {exc}") from exc

    def put_tags(self, person_id: str, tags: Mapping[str, TagValue], next_expiry: datetime | None) -> None:
        values: dict[str, Any] = {":tags": {k: v.model_dump(mode="json") for k, v in tags.items()}}
        expression = "SET tags = :tags, #version = #version + :one"
        if next_expiry is not None:
            expression += ", next_tag_expiry = :exp"
            values[":exp"] = iso(next_expiry)
        else:
            expression += " REMOVE next_tag_expiry"
        self._update(person_id, expression, {"#version": "version"}, {**values, ":one": 1})

    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        self._update(
            person_id,
            "SET scores.#model = :score, #version = #version + :one",
            {"#model": model_name, "#version": "version"},
            {":score": score.model_dump(mode="json"), ":one": 1},
        )

    def record_message(self, record: MessageRecord) -> None:
        item = {
            PK: keys.person_pk(record.person_id),
            SK: keys.message_sk(record.sent_at, record.message_id),
            "message_id": record.message_id,
            "campaign_id": record.campaign_id,
            "step": record.step,
            "channel": record.channel,
            "sent_at": iso(record.sent_at),
            "provider_id": record.provider_id,
            "status": record.status,
        }
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"record_message for {record.person_id} failed: {exc}") from exc

    def messages(self, person_id: str) -> list[MessageRecord]:
        return [
            MessageRecord(
                person_id=person_id,
                message_id=item["message_id"],
                campaign_id=item["campaign_id"],
                step=item["step"],
                channel=item["channel"],
                sent_at=parse_iso(item["sent_at"]),
                provider_id=item.get("provider_id"),
                status=item["status"],
            )
            for item in self._query_prefix(keys.person_pk(person_id), keys.MESSAGE_PREFIX)
        ]

    def due_for_tag_refresh(self, now: datetime) -> Iterator[str]:
        """Profiles whose next tag change is due (a filtered parallel-scan segment; see README for the scale path)."""
        paginator = self._db.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression="#sk = :profile AND next_tag_expiry <= :now AND attribute_not_exists(merged_into)",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={":profile": {"S": keys.PROFILE_SK}, ":now": {"S": iso(now)}},
            ProjectionExpression="person_id",
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    yield item["person_id"]["S"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"tag refresh scan failed: {exc}") from exc

    # ---- identity store -----------------------------------------------------------------------------------

    def lookup_identifiers(self, keys_: Iterable[str]) -> dict[str, IdentifierRecord]:
        wanted = sorted(set(keys_))
        out: dict[str, IdentifierRecord] = {}
        for start in range(0, len(wanted), 100):
            request = {
                self._table: {
                    "Keys": [
                        {PK: {"S": keys.identifier_pk(k)}, SK: {"S": keys.IDENTIFIER_SK}}
                        for k in wanted[start : start + 100]
                    ],
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    response = self._db.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"identifier lookup failed: {exc}") from exc
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = from_item(raw)
                    key = item["identifier"]
                    out[key] = IdentifierRecord(key=key, person_id=item["person_id"], shared=bool(item.get("shared")))
                request = response.get("UnprocessedKeys") or {}  # type: ignore[assignment]
        return out

    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        out = {}
        for pid in set(person_ids):
            profile = self._load(pid)
            if profile is not None:
                out[pid] = profile
        return out

    def is_applied(self, dedupe_key: str) -> bool:
        return self._get_item(keys.applied_pk(dedupe_key), keys.APPLIED_SK) is not None

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent) -> bool:
        items = _transaction(self._table, plan, event)
        if len(items) > _MAX_TRANSACTION_ITEMS:
            raise StoreError(f"resolution of {event.event_id} needs {len(items)} writes; the limit is 100")
        try:
            self._db.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise StoreError(f"commit of {event.event_id} failed: {exc}") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # the applied-marker exists: a redelivery
            raise ConflictError(f"concurrent change while applying {event.event_id}: {reasons}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"commit of {event.event_id} failed: {exc}") from exc
        return True


def _transaction(table: str, plan: ResolutionPlan, event: CanonicalEvent) -> list[dict[str, Any]]:
    target = plan.target
    items: list[dict[str, Any]] = [
        # First on purpose: a cancellation reason at index 0 means "already applied".
        {
            "Put": {
                "TableName": table,
                "Item": to_item(
                    {PK: keys.applied_pk(event.dedupe_key), SK: keys.APPLIED_SK, "person_id": target.person_id}
                ),
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PK},
            }
        },
        _profile_write(table, target, plan.target_expected_version),
        {
            "Put": {
                "TableName": table,
                "Item": to_item(
                    {
                        PK: keys.person_pk(target.person_id),
                        SK: keys.timeline_sk(event.occurred_at, event.event_id),
                        "event_type": event.event_type,
                        "occurred_at": iso(event.occurred_at),
                        "event": event.model_dump_json(),
                    }
                ),
            }
        },
    ]
    for loser in plan.merged:
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": to_item({PK: keys.person_pk(loser.person_id), SK: keys.PROFILE_SK}),
                    "UpdateExpression": "SET merged_into = :survivor, version = version + :one",
                    "ConditionExpression": "version = :expected AND attribute_not_exists(merged_into)",
                    "ExpressionAttributeValues": to_item(
                        {":survivor": target.person_id, ":one": 1, ":expected": loser.version}
                    ),
                }
            }
        )
    for key, previous in plan.repointed_from.items():
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": to_item({PK: keys.identifier_pk(key), SK: keys.IDENTIFIER_SK}),
                    "UpdateExpression": "SET person_id = :survivor",
                    "ConditionExpression": "person_id = :previous",
                    "ExpressionAttributeValues": to_item({":survivor": target.person_id, ":previous": previous}),
                }
            }
        )
    for key in plan.new_identifiers:
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": to_item(
                        {
                            PK: keys.identifier_pk(key),
                            SK: keys.IDENTIFIER_SK,
                            "identifier": key,
                            "person_id": target.person_id,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            }
        )
    for q in plan.quarantined:
        if q.key in plan.repointed_from:
            continue  # one write per item in a transaction; it stays linked to the survivor and is marked next time
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": to_item({PK: keys.identifier_pk(q.key), SK: keys.IDENTIFIER_SK}),
                    "UpdateExpression": "SET #shared = :true",
                    "ConditionExpression": "person_id = :owner",
                    "ExpressionAttributeNames": {"#shared": "shared"},
                    "ExpressionAttributeValues": to_item({":true": True, ":owner": q.person_id}),
                }
            }
        )
    return items


def _profile_write(table: str, target: Profile, expected_version: int | None) -> dict[str, Any]:
    """A whole-item Put guarded by the version: tag and score writers bump the version too, so a concurrent
    annotation makes this fail and the resolution is re-planned on fresh state (nothing is overwritten)."""
    item = {PK: keys.person_pk(target.person_id), SK: keys.PROFILE_SK, **target.model_dump(mode="json")}
    item = {k: v for k, v in item.items() if v is not None}
    if expected_version is None:
        condition, names, values = "attribute_not_exists(#pk)", {"#pk": PK}, {}
    else:
        condition = "#version = :expected AND attribute_not_exists(merged_into)"
        names, values = {"#version": "version"}, {":expected": expected_version}
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item), "ConditionExpression": condition}
    put["ExpressionAttributeNames"] = names
    if values:
        put["ExpressionAttributeValues"] = to_item(values)
    return {"Put": put}


def _to_profile(item: dict[str, Any]) -> Profile:
    data = {k: v for k, v in item.items() if k not in (PK, SK)}
    return Profile.model_validate(data)


def profile_json(profile: Profile) -> str:
    return json.dumps(profile.model_dump(mode="json"), sort_keys=True)
