"""DynamoDB adapter of the tag ports: tags, scores and next expiry in the person's tags item and their history in
the person's partition, written in one transaction (see `cdp.tags.history`), and the scan for persons whose tags
are due (key shapes in `cdp.profile.keys`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import ConflictError, StoreError
from cdp.profile import keys
from cdp.profile.dynamodb import MAX_TRANSACTION_ITEMS, PK, RACE_REASONS, SK, DynamoProfileStore
from cdp.profile.models import ModelScore, TagValue
from cdp.shared.dynamo import from_item, to_attr, to_item
from cdp.shared.time import iso
from cdp.tags.history import as_of
from cdp.tags.ports import TagHistoryEntry, TagHistorySink, TagStore

_AS_OF_QUERIES = 10  # up to this many named tags: one 1-item query each; more: one query of the whole history
_PENDING_MAX = 40  # changes a tags item carries until the next write files them; more go in a transaction


class DynamoTagStore(DynamoProfileStore, TagStore, TagHistorySink):
    """Tags live in the person's tags item (its version guards every write, so no writer overwrites another)."""

    def due_for_tag_refresh(self, now: datetime, shard: int = 0, total_shards: int = 1) -> Iterator[str]:
        """Persons whose next tag change is due, by their tags item (a filtered parallel-scan segment; see README
        for the scale path). A person item of the earlier layout counts once `cdp migrate` has moved its expiry."""
        paginator = self._db.get_paginator("scan")
        segment: dict[str, Any] = {"Segment": shard, "TotalSegments": total_shards} if total_shards > 1 else {}
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression="#sk = :tags AND next_tag_expiry <= :now",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={":tags": {"S": keys.TAGS_SK}, ":now": {"S": iso(now)}},
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
        scores: Mapping[str, ModelScore] | None = None,
        pending: Sequence[TagHistoryEntry] = (),
    ) -> None:
        """The tags item, whole, at `expected_version` + 1 (0: there is none yet); `scores`: the full score map.

        History without a transaction: the item carries this write's changes (`pending`) and the next write files
        them as history items before it replaces them (`pending`: the replaced version's), so every change is
        written once, by one plain write, and is readable all along (`tag_history` reads the item's pending ones
        too). A write that loses the version check has filed only changes an earlier write committed. A very long
        history (a first evaluation with many audiences) goes in a transaction with the item instead."""
        if pending:  # the replaced version's changes become history items before the version is replaced
            self._batch_put([to_item(_tag_history_item(person_id, entry)) for entry in pending])
        inline = len(history) <= _PENDING_MAX
        item: dict[str, Any] = {
            PK: keys.person_pk(person_id),
            SK: keys.TAGS_SK,
            "person_id": person_id,
            "version": expected_version + 1,
            "tags": {k: v.model_dump(mode="json") for k, v in tags.items()},
            "scores": {k: v.model_dump(mode="json") for k, v in (scores or {}).items()},
        }
        if next_expiry is not None:
            item["next_tag_expiry"] = iso(next_expiry)
        if inline and history:
            item["pending"] = [_history_fields(entry) for entry in history]
        write: dict[str, Any] = {"TableName": self._table, "Item": to_item(item)}
        if expected_version:
            write |= {
                "ConditionExpression": "#version = :expected",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":expected": to_attr(expected_version)},
            }
        else:
            write |= {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}
        items = [] if inline else [to_item(_tag_history_item(person_id, entry)) for entry in history]
        together, rest = items[: MAX_TRANSACTION_ITEMS - 1], items[MAX_TRANSACTION_ITEMS - 1 :]
        self._forget([(keys.person_pk(person_id), keys.TAGS_SK)])  # the batch's copy is stale either way
        try:
            if together:
                puts = [{"Put": {"TableName": self._table, "Item": i}} for i in together]
                self._db.transact_write_items(TransactItems=[{"Put": write}, *puts])  # type: ignore[typeddict-item,list-item]
            else:
                self._db.put_item(**write)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            lost = code == "TransactionCanceledException" and bool(RACE_REASONS & reasons)
            if code == "ConditionalCheckFailedException" or lost:
                raise ConflictError(f"tags of {person_id}: the tags moved past version {expected_version}") from exc
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc
        if rest:
            self._batch_put(rest)

    def write_tag_history(self, history: Mapping[str, Sequence[TagHistoryEntry]]) -> int:
        items = [to_item(_tag_history_item(pid, entry)) for pid, entries in history.items() for entry in entries]
        for start in range(0, len(items), 25):
            self._batch_put(items[start : start + 25])
        return len(items)

    def tag_history(
        self, person_id: str, names: Sequence[str] | None = None, cause: str | None = None
    ) -> list[TagHistoryEntry]:
        pk = keys.person_pk(person_id)
        if names is None:
            items = self._query_prefix(pk, keys.TAG_HISTORY_PREFIX)
        else:
            items = [item for name in names for item in self._query_prefix(pk, keys.tag_history_prefix(name))]
        filed = {(e.tag, e.at): e for e in map(TagHistoryEntry.from_fields, items)}
        pending = {(e.tag, e.at): e for e in self._pending(person_id) if names is None or e.tag in names}
        entries = list({**filed, **pending}.values())
        if cause is not None:
            entries = [e for e in entries if e.cause == cause]
        return sorted(entries, key=lambda e: (e.at, e.tag))

    def tags_as_of(self, person_id: str, at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
        if names is None or len(names) > _AS_OF_QUERIES:
            return as_of(self.tag_history(person_id), at, names)
        out: dict[str, TagValue] = {}
        pending = self._pending(person_id)
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
            newest = [TagHistoryEntry.from_fields(from_item(i)) for i in response.get("Items", [])]
            newest += [e for e in pending if e.tag == name and e.at <= at]
            out.update(as_of(sorted(newest, key=lambda e: e.at), at))
        return dict(sorted(out.items()))

    def _pending(self, person_id: str) -> list[TagHistoryEntry]:
        """The changes of the person's current tags version, not filed as history items yet."""
        item = self._get_stored(keys.person_pk(person_id), keys.TAGS_SK)
        return [TagHistoryEntry.from_fields(entry) for entry in (item or {}).get("pending") or []]


def _history_fields(entry: TagHistoryEntry) -> dict[str, Any]:
    fields = {"tag": entry.tag, "old": entry.old, "new": entry.new, "at": iso(entry.at), "cause": entry.cause}
    return {k: v for k, v in fields.items() if v is not None}


def _tag_history_item(person_id: str, entry: TagHistoryEntry) -> dict[str, Any]:
    return {PK: keys.person_pk(person_id), SK: keys.tag_history_sk(entry.tag, entry.at), **_history_fields(entry)}
