"""DynamoDB adapter of the profile and identity ports (one table; key shapes in `cdp.profile.keys`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.errors import ConflictError, StoreError
from cdp.identity.history import HistoryLoad, HistorySink
from cdp.identity.ports import IdentityStore
from cdp.identity.resolution import IdentifierRecord, LineageRecord, ResolutionPlan
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import OrgDirectory, load_org
from cdp.profile import keys
from cdp.profile.models import ModelScore, Profile, TagValue
from cdp.profile.ports import MessageRecord, ProfileAnnotator, TimelineEntry, TimelinePage
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write, from_item, to_attr, to_item
from cdp.shared.time import iso, parse_iso
from cdp.tags.history import as_of
from cdp.tags.ports import TagHistoryEntry, TagStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key
_MAX_TRANSACTION_ITEMS = 100
_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})  # another writer was first
_AS_OF_QUERIES = 10  # up to this many named tags: one 1-item query each; more: one query of the whole history


class DynamoProfileStore(TagStore, ProfileAnnotator, IdentityStore, HistorySink):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None, org: OrgDirectory | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._org = org or load_org()

    def namespace_of(self, brand_id: str) -> str:
        return self._org.brand(brand_id).namespace

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
            FilterExpression="#sk = :profile AND attribute_not_exists(merged_into) AND attribute_not_exists(dissolved)",
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
        namespace = self.namespace_of(profile.brand_id)
        entries = [
            TimelineEntry(anchor=key, event=parse_event(item["event"]))
            for key in profile.identifiers
            for item in self._query_prefix(keys.anchor_pk(namespace, key), keys.TIMELINE_PREFIX)
        ]
        return sorted(entries, key=lambda e: (e.event.occurred_at, e.event.event_id))

    def timeline_page(self, profile: Profile, before: str | None, limit: int) -> TimelinePage:
        """Newest first, `limit` events older than the cursor (a timeline sort key) across the person's identifiers."""
        namespace = self.namespace_of(profile.brand_id)
        candidates: list[tuple[str, str, dict[str, Any]]] = []
        for key in profile.identifiers:
            condition = "#pk = :pk AND begins_with(#sk, :prefix)"
            values: dict[str, Any] = {
                ":pk": {"S": keys.anchor_pk(namespace, key)},
                ":prefix": {"S": keys.TIMELINE_PREFIX},
            }
            if before:
                values.pop(":prefix")
                condition = "#pk = :pk AND #sk < :before"  # an event partition holds timeline items only
                values[":before"] = {"S": before}
            try:
                response = self._db.query(
                    TableName=self._table,
                    KeyConditionExpression=condition,
                    ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                    ExpressionAttributeValues=values,
                    ScanIndexForward=False,
                    Limit=limit + 1,
                )
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"timeline query of {profile.person_id} failed: {exc}") from exc
            for raw in response.get("Items", []):
                item = from_item(raw)
                candidates.append((item[SK], key, item))
        candidates.sort(key=lambda c: c[0], reverse=True)
        page = candidates[:limit]
        entries = [TimelineEntry(anchor=key, event=parse_event(item["event"])) for _, key, item in page]
        more = len(candidates) > limit
        return TimelinePage(entries=entries, next_cursor=page[-1][0] if more and page else None)

    def person_for_identifier(self, brand_id: str, identifier_key: str) -> str | None:
        record = self.lookup_identifiers(self.namespace_of(brand_id), [identifier_key]).get(identifier_key)
        if record is None or record.person_id is None:
            return None
        profile = self.get(record.person_id)
        return profile.person_id if profile and not profile.dissolved else None

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

    def due_for_tag_refresh(self, now: datetime, shard: int = 0, total_shards: int = 1) -> Iterator[str]:
        """Profiles whose next tag change is due (a filtered parallel-scan segment; see README for the scale path)."""
        paginator = self._db.get_paginator("scan")
        segment: dict[str, Any] = {"Segment": shard, "TotalSegments": total_shards} if total_shards > 1 else {}
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression="#sk = :profile AND next_tag_expiry <= :now AND attribute_not_exists(merged_into)",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={":profile": {"S": keys.PROFILE_SK}, ":now": {"S": iso(now)}},
            ProjectionExpression="person_id",
            **segment,
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    yield item["person_id"]["S"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"tag refresh scan failed: {exc}") from exc

    # ---- tag engine: tags with their history in one write, as-of reads (cdp.tags.history) ---------------------

    def write_tags(
        self,
        person_id: str,
        expected_version: int,
        tags: Mapping[str, TagValue],
        next_expiry: datetime | None,
        history: Sequence[TagHistoryEntry],
    ) -> None:
        values: dict[str, Any] = {
            ":tags": {k: v.model_dump(mode="json") for k, v in tags.items()},
            ":one": 1,
            ":expected": expected_version,
        }
        expression = "SET tags = :tags, #version = #version + :one"
        if next_expiry is not None:
            expression += ", next_tag_expiry = :exp"
            values[":exp"] = iso(next_expiry)
        else:
            expression += " REMOVE next_tag_expiry"
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {PK: {"S": keys.person_pk(person_id)}, SK: {"S": keys.PROFILE_SK}},
            "UpdateExpression": expression,
            "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        items = [to_item(_tag_history_item(person_id, entry)) for entry in history]
        # The profile update and (up to) 99 history items commit together; a longer history (a first full
        # evaluation with many audiences) appends the rest right after.
        inline, rest = items[: _MAX_TRANSACTION_ITEMS - 1], items[_MAX_TRANSACTION_ITEMS - 1 :]
        try:
            if inline:
                puts = [{"Put": {"TableName": self._table, "Item": item}} for item in inline]
                self._db.transact_write_items(TransactItems=[{"Update": update}, *puts])  # type: ignore[typeddict-item,list-item]
            else:
                self._db.update_item(**update)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            lost = code == "TransactionCanceledException" and bool(_RACE_REASONS & reasons)
            if code == "ConditionalCheckFailedException" or lost:
                raise ConflictError(f"tags of {person_id}: the profile moved past version {expected_version}") from exc
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc
        if rest:
            self._batch_put(rest)

    def tag_history(
        self, person_id: str, names: Sequence[str] | None = None, cause: str | None = None
    ) -> list[TagHistoryEntry]:
        pk = keys.person_pk(person_id)
        if names is None:
            items = self._query_prefix(pk, keys.TAG_HISTORY_PREFIX)
        else:
            items = [item for name in names for item in self._query_prefix(pk, keys.tag_history_prefix(name))]
        entries = [_to_history(item) for item in items]
        if cause is not None:
            entries = [e for e in entries if e.cause == cause]
        return sorted(entries, key=lambda e: (e.at, e.tag))

    def tags_as_of(self, person_id: str, at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
        if names is None or len(names) > _AS_OF_QUERIES:
            return as_of(self.tag_history(person_id), at, names)
        out: dict[str, TagValue] = {}
        for name in names:  # one item per tag: the newest change at or before `at`
            prefix = keys.tag_history_prefix(name)
            try:
                response = self._db.query(
                    TableName=self._table,
                    KeyConditionExpression="#pk = :pk AND #sk BETWEEN :low AND :high",
                    ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                    ExpressionAttributeValues={
                        ":pk": {"S": keys.person_pk(person_id)},
                        ":low": {"S": prefix},
                        ":high": {"S": keys.tag_history_sk(name, at)},
                    },
                    ScanIndexForward=False,
                    Limit=1,
                )
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"tag history of {person_id} failed: {exc}") from exc
            out.update(as_of([_to_history(from_item(i)) for i in response.get("Items", [])], at))
        return dict(sorted(out.items()))

    # ---- identity store -----------------------------------------------------------------------------------

    def _batch_get(self, pks: list[tuple[str, str]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        unique = sorted(set(pks))
        for start in range(0, len(unique), 100):
            request: Any = {
                self._table: {
                    "Keys": [{PK: {"S": pk}, SK: {"S": sk}} for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    response = self._db.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"batch get failed: {exc}") from exc
                out.extend(from_item(raw) for raw in response.get("Responses", {}).get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
        return out

    def lookup_identifiers(self, namespace: str, keys_: Iterable[str]) -> dict[str, IdentifierRecord]:
        items = self._batch_get([(keys.identifier_pk(namespace, k), keys.IDENTIFIER_SK) for k in keys_])
        return {item["identifier"]: _to_record(item) for item in items}

    def suppressed(self, namespace: str, keys_: Iterable[str]) -> set[str]:
        wanted = {keys.suppressed_pk(namespace, k): k for k in keys_}
        items = self._batch_get([(pk, keys.SUPPRESSED_SK) for pk in wanted])
        return {wanted[item[PK]] for item in items}

    def lookup_with_suppression(
        self, namespace: str, keys_: Iterable[str]
    ) -> tuple[dict[str, IdentifierRecord], set[str]]:
        wanted = sorted(set(keys_))
        hashed = {keys.suppressed_pk(namespace, k): k for k in wanted}
        items = self._batch_get(
            [(keys.identifier_pk(namespace, k), keys.IDENTIFIER_SK) for k in wanted]
            + [(pk, keys.SUPPRESSED_SK) for pk in hashed]
        )
        records = {item["identifier"]: _to_record(item) for item in items if item[SK] == keys.IDENTIFIER_SK}
        return records, {hashed[item[PK]] for item in items if item[SK] == keys.SUPPRESSED_SK}

    def load_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        items = self._batch_get([(keys.person_pk(pid), keys.PROFILE_SK) for pid in person_ids])
        return {p.person_id: p for p in map(_to_profile, items)}

    def current_persons(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        out: dict[str, Profile] = {}
        pending = set(person_ids)
        for _hop in range(50):
            if not pending:
                break
            loaded = self.load_persons(pending)
            pending = set()
            for profile in loaded.values():
                if profile.merged_into:
                    pending.add(profile.merged_into)
                elif not profile.dissolved:
                    out[profile.person_id] = profile
            pending -= set(out)
        return out

    def events_anchored(self, namespace: str, keys_: Iterable[str]) -> list[tuple[str, CanonicalEvent]]:
        return [
            (key, parse_event(item["event"]))
            for key in sorted(set(keys_))
            for item in self._query_prefix(keys.anchor_pk(namespace, key), keys.TIMELINE_PREFIX)
        ]

    def is_applied(self, dedupe_key: str) -> bool:
        return self._get_item(keys.applied_pk(dedupe_key), keys.APPLIED_SK) is not None

    def lineage(self, person_id: str) -> list[LineageRecord]:
        return [_to_lineage(item) for item in self._query_prefix(keys.person_pk(person_id), keys.LINEAGE_PREFIX)]

    def review_queue(self, namespace: str) -> list[dict[str, Any]]:
        """Identifiers quarantined in a namespace, for a person to review (oldest first)."""
        items = self._query_prefix(keys.review_pk(namespace), keys.REVIEW_PREFIX)
        return [{k: v for k, v in item.items() if k not in (PK, SK)} for item in items]

    def commit(self, plan: ResolutionPlan, event: CanonicalEvent | None) -> bool:
        core, extra = _transaction(self._table, plan, event)
        if len(core) > _MAX_TRANSACTION_ITEMS:
            raise StoreError(f"an identity change needs {len(core)} writes in one transaction; the limit is 100")
        if len(core) + len(extra) <= _MAX_TRANSACTION_ITEMS:
            core, extra = core + extra, []
        try:
            self._db.transact_write_items(TransactItems=core)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise StoreError(f"identity commit failed: {exc}") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if event is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # the applied-marker exists: a redelivery
            raise ConflictError(f"concurrent identity change: {reasons}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"identity commit failed: {exc}") from exc
        for start in range(0, len(extra), 25):  # lineage and review entries of a very large change
            self._batch_put([e["Put"]["Item"] for e in extra[start : start + 25]])
        return True

    # ---- history import (cdp.identity.history) -----------------------------------------------------------------

    def namespace_is_empty(self, namespace: str, sample_keys: Sequence[str]) -> bool:
        return not self.lookup_identifiers(namespace, sample_keys)

    def load_history(self, load: HistoryLoad) -> dict[str, int]:
        ns = load.namespace
        groups: dict[str, list[dict[str, Any]]] = {
            "identifiers": [_identifier_item(ns, r) for r in load.records],
            "profiles": [_profile_item(p) for p in load.profiles],
            "events": [_filed_item(ns, anchor, e) for anchor, e in load.filed],
            "applied_markers": [{PK: keys.applied_pk(e.dedupe_key), SK: keys.APPLIED_SK} for _, e in load.filed],
            "review_entries": [
                {PK: keys.review_pk(ns), SK: keys.review_sk(k), "identifier": k, "reason": "hub", "source": "import"}
                for k in load.hubs
            ],
        }
        for items in groups.values():
            for start in range(0, len(items), 25):
                self._batch_put([to_item(i) for i in items[start : start + 25]])
        return {name: len(items) for name, items in groups.items()}

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        batch_write(self._db, self._table, [{"PutRequest": {"Item": item}} for item in items], "batch put")


def _put(table: str, item: dict[str, Any], condition: str | None = None, **expr: Any) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
    if expr.get("names"):
        put["ExpressionAttributeNames"] = expr["names"]
    if expr.get("values"):
        put["ExpressionAttributeValues"] = to_item(expr["values"])
    return {"Put": put}


def _transaction(
    table: str, plan: ResolutionPlan, event: CanonicalEvent | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(writes that must be atomic, history entries that may follow when the transaction would be too large)."""
    core: list[dict[str, Any]] = []
    if event is not None:
        # First on purpose: a cancellation reason at index 0 means "already applied".
        marker = {PK: keys.applied_pk(event.dedupe_key), SK: keys.APPLIED_SK}
        core.append(_put(table, marker, "attribute_not_exists(#pk)", names={"#pk": PK}))
        if plan.anchor is not None:
            core.append(_put(table, _filed_item(plan.namespace, plan.anchor, event)))
    for write in plan.profiles:
        core.append(_profile_write(table, write.profile, write.expected_version))
    for record in plan.identifiers:
        core.append(_identifier_write(table, plan.namespace, record))
    extra: list[dict[str, Any]] = []
    for entry in plan.lineage:
        body = _lineage_item(entry)
        for pid in entry.person_ids or (entry.survivor_id,):
            if pid:
                extra.append(_put(table, {PK: keys.person_pk(pid), SK: body["sk"], **body["item"]}))
    for key in plan.newly_shared:
        owner = next((r.person_id for r in plan.identifiers if r.key == key), None)
        review = {
            PK: keys.review_pk(plan.namespace),
            SK: keys.review_sk(key),
            "identifier": key,
            "reason": next((r.shared for r in plan.identifiers if r.key == key), "hub"),
            "quarantined_at": iso(plan.lineage[-1].at) if plan.lineage else None,
            "event_id": event.event_id if event else None,
            "previous_owner": owner,
        }
        extra.append(_put(table, {k: v for k, v in review.items() if v is not None}))
    return core, extra


def _tag_history_item(person_id: str, entry: TagHistoryEntry) -> dict[str, Any]:
    item = {
        PK: keys.person_pk(person_id),
        SK: keys.tag_history_sk(entry.tag, entry.at),
        "tag": entry.tag,
        "old": entry.old,
        "new": entry.new,
        "at": iso(entry.at),
        "cause": entry.cause,
    }
    return {k: v for k, v in item.items() if v is not None}


def _to_history(item: dict[str, Any]) -> TagHistoryEntry:
    return TagHistoryEntry(
        tag=item["tag"], old=item.get("old"), new=item.get("new"), at=parse_iso(item["at"]), cause=item.get("cause", "")
    )


def _identifier_item(namespace: str, record: IdentifierRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        PK: keys.identifier_pk(namespace, record.key),
        SK: keys.IDENTIFIER_SK,
        "identifier": record.key,
        "ver": record.version + 1,
        "up": sorted(record.up),
        "disabled": sorted(record.disabled),
    }
    if record.person_id:
        item["person_id"] = record.person_id
    if record.shared:
        item["shared"] = record.shared
    return item


def _identifier_write(table: str, namespace: str, record: IdentifierRecord) -> dict[str, Any]:
    item = _identifier_item(namespace, record)
    if record.version == 0:
        return _put(table, item, "attribute_not_exists(#pk)", names={"#pk": PK})
    return _put(table, item, "ver = :expected", values={":expected": record.version})


def _filed_item(namespace: str, anchor: str, event: CanonicalEvent) -> dict[str, Any]:
    filed = {
        PK: keys.anchor_pk(namespace, anchor),
        SK: keys.timeline_sk(event.occurred_at, event.event_id),
        "event_type": event.event_type,
        "occurred_at": iso(event.occurred_at),
        "brand_id": event.brand_id,
        "store_id": event.store_id,
        "event": event.model_dump_json(),
    }
    return {k: v for k, v in filed.items() if v is not None}


def _profile_item(target: Profile) -> dict[str, Any]:
    item = {PK: keys.person_pk(target.person_id), SK: keys.PROFILE_SK, **target.model_dump(mode="json")}
    return {k: v for k, v in item.items() if v is not None and not (k == "dissolved" and v is False)}


def _to_record(item: dict[str, Any]) -> IdentifierRecord:
    return IdentifierRecord(
        key=item["identifier"],
        person_id=item.get("person_id"),
        up=frozenset(item.get("up") or ()),
        disabled=frozenset(item.get("disabled") or ()),
        shared=item.get("shared"),
        version=int(item.get("ver", 1)),
    )


def _lineage_item(entry: LineageRecord) -> dict[str, Any]:
    body = {
        "kind": entry.kind,
        "at": iso(entry.at),
        "person_ids": list(entry.person_ids),
        "rule": entry.rule,
        "identifiers": list(entry.identifiers),
        "event_id": entry.event_id,
        "actor": entry.actor,
        "survivor_id": entry.survivor_id,
        "merged_ids": list(entry.merged_ids),
        "parts": {k: list(v) for k, v in entry.parts.items()},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {"sk": keys.lineage_sk(entry.at, digest), "item": {k: v for k, v in body.items() if v is not None}}


def _to_lineage(item: dict[str, Any]) -> LineageRecord:
    return LineageRecord(
        kind=item["kind"],
        at=parse_iso(item["at"]),
        person_ids=tuple(item.get("person_ids") or ()),
        rule=item["rule"],
        identifiers=tuple(item.get("identifiers") or ()),
        event_id=item.get("event_id"),
        actor=item.get("actor"),
        survivor_id=item.get("survivor_id"),
        merged_ids=tuple(item.get("merged_ids") or ()),
        parts={k: tuple(v) for k, v in (item.get("parts") or {}).items()},
    )


def _profile_write(table: str, target: Profile, expected_version: int | None) -> dict[str, Any]:
    """A whole-item Put guarded by the version: tag and score writers bump the version too, so a concurrent
    annotation makes this fail and the change is re-planned on fresh state (nothing is overwritten)."""
    item = _profile_item(target)
    if expected_version is None:
        return _put(table, item, "attribute_not_exists(#pk)", names={"#pk": PK})
    return _put(
        table, item, "#version = :expected", names={"#version": "version"}, values={":expected": expected_version}
    )


def _to_profile(item: dict[str, Any]) -> Profile:
    data = {k: v for k, v in item.items() if k not in (PK, SK)}
    return Profile.model_validate(data)


def profile_json(profile: Profile) -> str:
    return json.dumps(profile.model_dump(mode="json"), sort_keys=True)
