"""DynamoDB adapter of the profile ports: the person item, its timeline (events filed under its identifiers),
messages and scores (key shapes in `cdp.profile.keys`). Identity and tags extend it with their own items
(`cdp.identity.dynamodb`, `cdp.tags.dynamodb`); the item helpers below are what they share."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.errors import ConflictError, StoreError
from cdp.ingest.events import parse_event
from cdp.org import OrgDirectory, load_org
from cdp.profile import keys
from cdp.profile.models import ModelScore, Profile, ProfileFacts, TagValue, merge_facts
from cdp.profile.ports import (
    MessageRecord,
    ProfileAnnotator,
    ProfileReader,
    ScanPage,
    TimelineEntry,
    TimelinePage,
)
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_get, batch_write, from_item, to_attr, to_item
from cdp.shared.time import iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key
MAX_TRANSACTION_ITEMS = 100
RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})  # another writer was first


class DynamoProfileStore(ProfileReader, ProfileAnnotator):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        org: OrgDirectory | None = None,
        page_items: int | None = None,
    ) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._org = org or load_org()
        self._page_items = page_items  # items a scan page reads at most (tests force small pages); None: 1 MB pages
        self._local = threading.local()  # the read cache of the batch this thread is processing, if any

    # ---- a batch's reads, once (see `batch_reads`) ----------------------------------------------------------

    @contextmanager
    def batch_reads(self) -> Iterator[None]:
        """While a batch of messages is processed, keyed reads (BatchGetItem) are served from what this thread has
        already read or committed. A stale entry is safe: every write is conditional on the version it read, so it
        fails and the change is re-planned on a fresh read (the entries it touched are dropped first)."""
        self._local.cache = {}
        try:
            yield
        finally:
            self._local.cache = None

    def _cache(self) -> dict[tuple[str, str], dict[str, Any] | None] | None:
        cache: dict[tuple[str, str], dict[str, Any] | None] | None = getattr(self._local, "cache", None)
        return cache

    def _remember(self, items: Iterable[dict[str, Any]]) -> None:
        """Items just written (DynamoDB JSON), as a read would now return them."""
        cache = self._cache()
        if cache is not None:
            for raw in items:
                cache[(raw[PK]["S"], raw[SK]["S"])] = from_item(raw)

    def _forget(self, keys_: Iterable[tuple[str, str]]) -> None:
        cache = self._cache()
        if cache is not None:
            for key in keys_:
                cache.pop(key, None)

    def namespace_of(self, brand_id: str) -> str:
        return self._org.brand(brand_id).namespace

    # ---- reads ----------------------------------------------------------------------------------------------

    def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        cache = self._cache()
        if cache is not None:
            if (pk, sk) not in cache:
                cache[(pk, sk)] = self._get_stored(pk, sk)
            return cache[(pk, sk)]
        return self._get_stored(pk, sk)

    def _get_stored(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(TableName=self._table, Key={PK: {"S": pk}, SK: {"S": sk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"get_item {pk} failed: {exc}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def _load(self, person_id: str) -> Profile | None:
        return self.load_persons([person_id]).get(person_id)

    def get(self, person_id: str) -> Profile | None:
        profile = self._load(person_id)
        hops = 0
        while profile is not None and profile.merged_into and hops < 50:
            profile = self._load(profile.merged_into)
            hops += 1
        return profile

    def scan_shard(self, shard: int, total_shards: int) -> Iterator[Profile]:
        cursor: str | None = None
        while True:
            page = self.scan_page(shard, total_shards, cursor)
            yield from page.profiles
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def scan_page(self, shard: int, total_shards: int, cursor: str | None = None) -> ScanPage:
        """One Scan request of the shard: up to 1 MB of items read (`page_items`: fewer), the cursor its
        LastEvaluatedKey as JSON. A person's tags item follows their person item; when the page stops between the
        two, the tags item is read on its own (one GetItem) and the next page's copy, with no person item before
        it, is skipped by `with_annotations`."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Segment": shard,
            "TotalSegments": total_shards,
            "FilterExpression": f"({_CURRENT_PERSON}) OR #sk = :tags",
            "ExpressionAttributeNames": {"#sk": SK},
            "ExpressionAttributeValues": {":profile": {"S": keys.PROFILE_SK}, ":tags": {"S": keys.TAGS_SK}},
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = json.loads(cursor)
        if self._page_items is not None:
            request["Limit"] = self._page_items
        try:
            response = self._db.scan(**request)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"scan shard {shard}/{total_shards} failed: {exc}") from exc
        items = [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        profiles = list(with_annotations(items))
        if last is not None and items and items[-1][SK] == keys.PROFILE_SK and last[PK].get("S") == items[-1][PK]:
            # the page stopped inside the last person's items: their tags item, if any, is on the next page
            profiles[-1] = to_profile(items[-1], self._get_stored(items[-1][PK], keys.TAGS_SK))
        return ScanPage(profiles, json.dumps(last, sort_keys=True) if last is not None else None)

    def _query_prefix(self, pk: str, prefix: str, consistent: bool = False) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
            ConsistentRead=consistent,
        )
        try:
            return [from_item(item) for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"query {pk} failed: {exc}") from exc

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        """One Query per identifier the person's events are filed under (every identifier when that is not known)."""
        namespace = self.namespace_of(profile.brand_id)
        entries = [
            TimelineEntry(anchor=key, event=parse_event(item["event"]))
            for key in profile.identifiers
            if profile.anchors is None or key in profile.anchors
            for item in self._query_prefix(keys.anchor_pk(namespace, key), keys.TIMELINE_PREFIX)
        ]
        return sorted(entries, key=lambda e: (e.event.occurred_at, e.event.event_id))

    def scan_with_timelines(self, shard: int, total_shards: int) -> Iterator[tuple[Profile, list[TimelineEntry]]]:
        """One shard of several: the shard's profiles, each timeline read with its queries. The whole table
        (`total_shards` 1): one scan returns the profiles and every filed event at once. A scan reads (and bills)
        every item it passes whatever its filter keeps, so the events come at no extra read cost, and the queries
        per identifier are saved; the events are held in memory until the scan ends (a brand's sample; at scale
        batch jobs read an export)."""
        if total_shards > 1:
            yield from super().scan_with_timelines(shard, total_shards)
            return
        profiles: list[Profile] = []
        filed: dict[str, list[dict[str, Any]]] = {}
        paginator = self._db.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression=f"({_CURRENT_PERSON}) OR #sk = :tags OR begins_with(#sk, :timeline)",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={
                ":profile": {"S": keys.PROFILE_SK},
                ":tags": {"S": keys.TAGS_SK},
                ":timeline": {"S": keys.TIMELINE_PREFIX},
            },
        )
        persons: list[dict[str, Any]] = []
        try:
            for page in pages:
                for raw in page.get("Items", []):
                    item = from_item(raw)
                    if item[SK] in (keys.PROFILE_SK, keys.TAGS_SK):
                        persons.append(item)
                    else:
                        filed.setdefault(item[PK], []).append(item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"scan of profiles with timelines failed: {exc}") from exc
        profiles.extend(with_annotations(persons))
        for profile in profiles:
            namespace = self.namespace_of(profile.brand_id)
            entries = [
                TimelineEntry(anchor=key, event=parse_event(item["event"]))
                for key in profile.identifiers
                for item in sorted(filed.get(keys.anchor_pk(namespace, key), []), key=lambda i: str(i[SK]))
            ]
            yield profile, sorted(entries, key=lambda e: (e.event.occurred_at, e.event.event_id))

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
        item = self._get_item(keys.identifier_pk(self.namespace_of(brand_id), identifier_key), keys.IDENTIFIER_SK)
        if item is None or not item.get("person_id"):
            return None
        profile = self.get(item["person_id"])
        return profile.person_id if profile and not profile.dissolved else None

    def _batch_get(self, pks: list[tuple[str, str]]) -> list[dict[str, Any]]:
        cache = self._cache()
        unique = sorted(set(pks))
        if cache is None:
            return self._batch_get_stored(unique)
        wanted = [k for k in unique if k not in cache]
        found = {(item[PK], item[SK]): item for item in self._batch_get_stored(wanted)}
        for key in wanted:
            cache[key] = found.get(key)
        return [item for key in unique if (item := cache[key]) is not None]

    def _batch_get_stored(self, unique: list[tuple[str, str]]) -> list[dict[str, Any]]:
        keys = [{PK: {"S": pk}, SK: {"S": sk}} for pk, sk in unique]
        return [from_item(raw) for raw in batch_get(self._db, self._table, keys, "batch get")]

    def load_persons(self, person_ids: Iterable[str], annotations: bool = True) -> dict[str, Profile]:
        """The persons' items, read in one round: with their tags items (`annotations`), or without (identity
        resolution never reads tags; only a person item of the earlier layout needs its tags item, to move them)."""
        pks = [keys.person_pk(pid) for pid in set(person_ids)]
        wanted = [(pk, keys.PROFILE_SK) for pk in pks] + ([(pk, keys.TAGS_SK) for pk in pks] if annotations else [])
        items = self._batch_get(wanted)
        persons = {item[PK]: item for item in items if item[SK] == keys.PROFILE_SK}
        tags = {item[PK]: item for item in items if item[SK] == keys.TAGS_SK}
        inline = [pk for pk, item in persons.items() if DATA not in item]
        if not annotations and inline:
            tags = {item[PK]: item for item in self._batch_get([(pk, keys.TAGS_SK) for pk in inline])}
        out = (to_profile(item, tags.get(pk)) for pk, item in persons.items())
        return {p.person_id: p for p in out}

    def get_many(self, person_ids: Iterable[str]) -> dict[str, Profile]:
        """`get` of each, in BatchGetItem rounds of 100 (consistent reads), each merge hop one round for all."""
        out: dict[str, Profile] = {}
        following = {person_id: person_id for person_id in person_ids}  # requested -> the id to read next
        for hop in range(51):
            if not following:
                break
            loaded = self.load_persons(set(following.values()))
            pending: dict[str, str] = {}
            for requested, current in following.items():
                profile = loaded.get(current)
                if profile is None:
                    continue
                if profile.merged_into and hop < 50:
                    pending[requested] = profile.merged_into
                else:
                    out[requested] = profile
            following = pending
        return out

    def current_persons(self, person_ids: Iterable[str], annotations: bool = True) -> dict[str, Profile]:
        out: dict[str, Profile] = {}
        pending = set(person_ids)
        for _hop in range(50):
            if not pending:
                break
            loaded = self.load_persons(pending, annotations=annotations)
            pending = set()
            for profile in loaded.values():
                if profile.merged_into:
                    pending.add(profile.merged_into)
                elif not profile.dissolved:
                    out[profile.person_id] = profile
            pending -= set(out)
        return out

    # ---- annotations: the tags item (written by the tag engine and the scorer, never by identity) ------------

    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        self.put_model_scores(person_id, {model_name: score})

    def put_model_scores(self, person_id: str, scores: Mapping[str, ModelScore]) -> None:
        """One update sets every model's score (a nightly run scoring several models writes each person once)."""
        names: dict[str, str] = {"#version": "version"}
        values: dict[str, Any] = {":one": 1}
        sets = []
        for i, (model_name, score) in enumerate(sorted(scores.items())):
            names[f"#m{i}"] = model_name
            values[f":s{i}"] = score.model_dump(mode="json")
            sets.append(f"scores.#m{i} = :s{i}")
        expression = f"SET {', '.join(sets)}, #version = #version + :one"
        try:
            self._update_tags(person_id, expression, names, values, "attribute_exists(scores)")
        except ConflictError:  # no tags item yet (or one written before scores): start its score map
            self._start_scores(person_id, scores)

    def _start_scores(self, person_id: str, new: Mapping[str, ModelScore]) -> None:
        current = self._load(person_id)
        scores = {**(current.scores if current else {}), **new}
        values = {
            ":scores": {k: v.model_dump(mode="json") for k, v in scores.items()},
            ":pid": person_id,
            ":zero": 0,
            ":one": 1,
        }
        self._update_tags(
            person_id,
            "SET scores = :scores, person_id = :pid, #version = if_not_exists(#version, :zero) + :one",
            {"#version": "version"},
            values,
            "attribute_not_exists(scores)",
        )

    def _update_tags(
        self, person_id: str, expression: str, names: dict[str, str], values: dict[str, Any], condition: str | None
    ) -> None:
        self._forget([(keys.person_pk(person_id), keys.TAGS_SK)])
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {PK: {"S": keys.person_pk(person_id)}, SK: {"S": keys.TAGS_SK}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        if condition:
            request["ConditionExpression"] = condition
        try:
            self._db.update_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"tags of {person_id}: {condition} does not hold") from exc
            raise StoreError(f"update of {person_id}'s tags failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"update of {person_id}'s tags failed: {exc}") from exc

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

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        batch_write(self._db, self._table, [{"PutRequest": {"Item": item}} for item in items], "batch put")


def put(table: str, item: dict[str, Any], condition: str | None = None, **expr: Any) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
    if expr.get("names"):
        put["ExpressionAttributeNames"] = expr["names"]
    if expr.get("values"):
        put["ExpressionAttributeValues"] = to_item(expr["values"])
    return {"Put": put}


DATA = "data"  # the person item's compressed body
# In the clear on the person item: its keys' companions and what scans filter or project on; the rest is `data`.
_PLAIN = ("person_id", "brand_id", "version", "identifiers", "over_limit", "merged_into", "dissolved")
ANNOTATIONS = frozenset({"tags", "scores", "next_tag_expiry", "tags_version"})
_CURRENT_PERSON = "#sk = :profile AND attribute_not_exists(merged_into) AND attribute_not_exists(dissolved)"


def profile_item(target: Profile) -> dict[str, Any]:
    """The stored person: what scans filter and project on in the clear, the rest one zlib-compressed JSON body
    (about a third of its size: writes bill per started KB of the item, and identity rewrites it on every event).
    Tags, scores and the next tag expiry are the tags item's (`tags_item`); the all-scopes `facts` roll-up is left
    out (it repeats `scoped_facts`): `to_profile` folds it back with the same commutative merge the views use."""
    body = target.model_dump(mode="json", exclude={"facts", *ANNOTATIONS})
    item: dict[str, Any] = {PK: keys.person_pk(target.person_id), SK: keys.PROFILE_SK}
    for name in _PLAIN:
        value = body.pop(name, None)
        if name == "version" or value not in (None, False, []):
            item[name] = value
    item[DATA] = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)
    return item


def tags_item(
    person_id: str,
    version: int,
    tags: Mapping[str, TagValue],
    scores: Mapping[str, ModelScore],
    next_expiry: datetime | None,
    carried: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The person's tags item at `version`: what the tag engine and the scorer write. Scores (updated in place by
    the scorer) and the next expiry (the sweep's scan filters on it) in the clear; the tag values and the history
    entries it carries (`carried`, see `cdp.tags.dynamodb`) one zlib-compressed JSON body, a quarter of their
    size: the tag engine rewrites the item on every change, and writes bill per started KB."""
    body: dict[str, Any] = {"tags": {k: v.model_dump(mode="json") for k, v in tags.items()}}
    if carried:
        body["pending"] = list(carried)
    item: dict[str, Any] = {
        PK: keys.person_pk(person_id),
        SK: keys.TAGS_SK,
        "person_id": person_id,
        "version": version,
        "scores": {k: v.model_dump(mode="json") for k, v in scores.items()},
        DATA: zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6),
    }
    if next_expiry is not None:
        item["next_tag_expiry"] = iso(next_expiry)
    return item


def profile_tags_item(profile: Profile, version: int) -> dict[str, Any]:
    """A person's tags item with the tags and scores they hold (imports and layout moves: nothing carried)."""
    return tags_item(profile.person_id, version, profile.tags, profile.scores, profile.next_tag_expiry)


def tags_fields(item: dict[str, Any]) -> dict[str, Any]:
    """tags, scores, next_tag_expiry, version and pending (the history entries it carries) of a tags item, of this
    layout or the earlier one (every field in the clear)."""
    fields = {
        "tags": item.get("tags") or {},
        "scores": item.get("scores") or {},
        "next_tag_expiry": item.get("next_tag_expiry"),
        "version": item.get("version", 0),
        "pending": item.get("pending") or [],
    }
    if DATA in item:
        fields.update(json.loads(zlib.decompress(item[DATA])))
    return fields


def profile_write(table: str, target: Profile, expected_version: int | None) -> dict[str, Any]:
    """A whole-item Put guarded by the version: a concurrent identity change makes it fail and the change is
    re-planned on fresh state (nothing is overwritten; tags and scores are in their own item)."""
    item = profile_item(target)
    if expected_version is None:
        return put(table, item, "attribute_not_exists(#pk)", names={"#pk": PK})
    return put(
        table, item, "#version = :expected", names={"#version": "version"}, values={":expected": expected_version}
    )


def annotation_writes(table: str, target: Profile) -> list[dict[str, Any]]:
    """What a person's write also does to their tags item: a person merged away or dissolved loses it (the sweep
    would otherwise find its expiry due forever); a person read from the earlier layout (tags on the person item,
    no tags item yet) gets it, so writing the person in the new layout loses nothing."""
    key = {PK: {"S": keys.person_pk(target.person_id)}, SK: {"S": keys.TAGS_SK}}
    if target.merged_into or target.dissolved:
        return [{"Delete": {"TableName": table, "Key": key}}]
    if target.annotations_inline:
        return [put(table, profile_tags_item(target, 1), "attribute_not_exists(#pk)", names={"#pk": PK})]
    return []


def to_profile(item: dict[str, Any], annotations: dict[str, Any] | None = None) -> Profile:
    """A person from their item and their tags item (`annotations`, None when there is none or it was not read).
    An item of the earlier layout (no `data`: every field in the clear, tags and scores on it) reads as before."""
    data = {k: v for k, v in item.items() if k not in (PK, SK)}
    body = data.pop(DATA, None)
    if body is not None:
        data.update(json.loads(zlib.decompress(body)))
    inline = body is None and any(data.get(name) for name in ("tags", "scores", "next_tag_expiry"))
    if annotations is not None:
        fields = tags_fields(annotations)
        data["tags"], data["scores"] = fields["tags"], fields["scores"]
        data["next_tag_expiry"] = fields["next_tag_expiry"]
        data["tags_version"], data["tags_pending"] = fields["version"], fields["pending"]
    profile = Profile.model_validate(data)
    profile.annotations_inline = inline and annotations is None
    if "facts" not in data:  # items written before the roll-up was left out still carry it
        profile.facts = reduce(merge_facts, profile.scoped_facts.values(), ProfileFacts())
    return profile


def with_annotations(items: Iterable[dict[str, Any]]) -> Iterator[Profile]:
    """Persons from a key-ordered stream of person and tags items (a scan: a partition's items come together,
    sorted by sort key, so a person's tags item follows their person item). A tags item with no person item
    before it (a person merged away, filtered out) is skipped."""
    pending: dict[str, Any] | None = None
    for item in items:
        if item[SK] == keys.PROFILE_SK:
            if pending is not None:
                yield to_profile(pending)
            pending = item
        elif item[SK] == keys.TAGS_SK and pending is not None and pending[PK] == item[PK]:
            yield to_profile(pending, item)
            pending = None
    if pending is not None:
        yield to_profile(pending)


def profile_json(profile: Profile) -> str:
    return json.dumps(profile.model_dump(mode="json"), sort_keys=True)
