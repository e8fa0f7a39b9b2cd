"""DynamoDB adapter of the tag ports: tags, scores and next expiry in the person's tags item, their history in
chunks in the person's partition (see `cdp.tags.history`), and the scan for persons whose tags are due (key
shapes in `cdp.profile.keys`)."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import ConflictError, StoreError
from cdp.profile import keys
from cdp.profile.dynamodb import DATA, PK, SK, DynamoProfileStore, tags_fields, tags_item
from cdp.profile.models import ModelScore, TagValue
from cdp.shared.dynamo import to_attr, to_item
from cdp.shared.time import iso
from cdp.tags.history import as_of
from cdp.tags.ports import TagHistoryEntry, TagHistorySink, TagStore

_CARRY_BYTES = 700  # a tags item carries unfiled changes while its compressed body stays under this (1 KB writes)
_CHUNK = 40  # changes per history item: about 1 KB compressed


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

        History without a transaction: the item carries the changes not filed yet (`pending`, as read, and this
        write's `history`) until carrying them would grow it past `_CARRY_BYTES`; then the ones it carried are
        filed first, as one history chunk, and it carries only this write's. Every change is written by plain
        writes and readable all along (`tag_history` reads what the item carries too). A write that loses the
        version check has filed only changes an earlier write committed (a retry files the same chunk again:
        its key is a function of its content)."""
        carried = [_history_fields(entry) for entry in (*pending, *history)]
        item = tags_item(person_id, expected_version + 1, tags, scores or {}, next_expiry, carried)
        if pending and len(item[DATA]) > _CARRY_BYTES:
            self._batch_put([to_item(i) for i in history_chunk_items(person_id, pending)])
            item = tags_item(person_id, expected_version + 1, tags, scores or {}, next_expiry, carried[len(pending) :])
        write: dict[str, Any] = {"TableName": self._table, "Item": to_item(item)}
        if expected_version:
            write |= {
                "ConditionExpression": "#version = :expected",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":expected": to_attr(expected_version)},
            }
        else:
            write |= {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}
        self._forget([(keys.person_pk(person_id), keys.TAGS_SK)])  # the batch's copy is stale either way
        try:
            self._db.put_item(**write)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"tags of {person_id}: the tags moved past version {expected_version}") from exc
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"tag write of {person_id} failed: {exc}") from exc

    def write_tag_history(self, history: Mapping[str, Sequence[TagHistoryEntry]]) -> int:
        items = [to_item(i) for pid, entries in history.items() for i in history_chunk_items(pid, entries)]
        for start in range(0, len(items), 25):
            self._batch_put(items[start : start + 25])
        return sum(len(entries) for entries in history.values())

    def tag_history(
        self, person_id: str, names: Sequence[str] | None = None, cause: str | None = None
    ) -> list[TagHistoryEntry]:
        """One Query of the person's history items and a read of their tags item (the changes it carries)."""
        filed = [
            e
            for item in self._query_prefix(keys.person_pk(person_id), keys.TAG_HISTORY_PREFIX)
            for e in history_entries(item)
        ]
        tags = self._get_stored(keys.person_pk(person_id), keys.TAGS_SK)
        carried = carried_entries(tags) if tags else []
        wanted = set(names) if names is not None else None
        unique = {
            (e.tag, e.at): e
            for e in (*filed, *carried)
            if (wanted is None or e.tag in wanted) and (cause is None or e.cause == cause)
        }
        return sorted(unique.values(), key=lambda e: (e.at, e.tag))

    def tags_as_of(self, person_id: str, at: datetime, names: Sequence[str] | None = None) -> dict[str, TagValue]:
        return as_of(self.tag_history(person_id, names), at, names)


def history_chunk_items(person_id: str, entries: Sequence[TagHistoryEntry]) -> list[dict[str, Any]]:
    """History items of a person's changes: up to `_CHUNK` changes each, oldest first, compressed; keyed by the
    first change's time and a digest of the content, so writing the same changes again writes the same items."""
    ordered = sorted(entries, key=lambda e: (e.at, e.tag))
    out: list[dict[str, Any]] = []
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        body = json.dumps([_history_fields(e) for e in chunk], separators=(",", ":")).encode()
        digest = hashlib.sha256(body).hexdigest()[:16]
        out.append(
            {
                PK: keys.person_pk(person_id),
                SK: keys.tag_history_chunk_sk(chunk[0].at, digest),
                "changes": zlib.compress(body, 6),
            }
        )
    return out


def carried_entries(tags_item: dict[str, Any]) -> list[TagHistoryEntry]:
    """The changes a tags item carries, not filed as a history chunk yet."""
    return [TagHistoryEntry.from_fields(e) for e in tags_fields(tags_item)["pending"]]


def history_entries(item: Mapping[str, Any]) -> list[TagHistoryEntry]:
    """The changes one history item holds: a chunk, or one change (an item of the earlier layout)."""
    if "changes" in item:
        return [TagHistoryEntry.from_fields(e) for e in json.loads(zlib.decompress(item["changes"]))]
    return [TagHistoryEntry.from_fields(dict(item))]


def _history_fields(entry: TagHistoryEntry) -> dict[str, Any]:
    fields = {"tag": entry.tag, "old": entry.old, "new": entry.new, "at": iso(entry.at), "cause": entry.cause}
    return {k: v for k, v in fields.items() if v is not None}
