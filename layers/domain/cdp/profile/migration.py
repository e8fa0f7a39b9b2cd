"""Moving person items of the earlier layout (every field in the clear, tags and scores on the person item) to the
current one (a compressed body; tags, scores and next expiry in the person's tags item).

Idempotent and resumable: each call migrates one page of a table scan and stores where it stopped in the table
itself, so a call that times out or fails is simply made again; an item already in the new layout is left alone,
and a run started again from the beginning (`restart`) finds nothing left to move. Safe beside live traffic: every
write is conditional on the item still being the one read (its version, and still in the earlier layout), and a
tags item already written by the tag engine wins over the tags kept on the person item.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from cdp.errors import StoreError
from cdp.profile import keys
from cdp.profile.dynamodb import DATA, PK, SK, profile_item, profile_tags_item, put, to_profile
from cdp.shared.dynamo import from_item, to_item
from cdp.shared.time import iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

NAME = "person-layout-2"
_PROGRESS = {PK: {"S": f"MIGRATION#{NAME}"}, SK: {"S": "PROGRESS"}}
_ATTEMPTS = 3


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=1000, ge=1, le=10_000, description="items the page's scan reads (of every kind)")
    restart: bool = Field(default=False, description="scan again from the start (finds nothing left once done)")


class MigrationPage(BaseModel):
    migration: str = NAME
    scanned: int = Field(description="items this page read")
    migrated: int = Field(description="person items moved to the new layout by this page")
    already: int = Field(default=0, description="found moved by a concurrent writer before this page could")
    total_migrated: int = Field(description="moved since the run started")
    done: bool = Field(description="the scan reached the end of the table")
    started_at: str
    finished_at: str | None = None


class PersonLayoutMigration:
    def __init__(self, db: DynamoDBClient, table: str) -> None:
        self._db = db
        self._table = table

    def run_page(self, request: MigrationRequest) -> MigrationPage:
        progress = {} if request.restart else self._progress()
        if progress.get("finished_at"):
            return MigrationPage(
                scanned=0,
                migrated=0,
                total_migrated=int(progress.get("total_migrated", 0)),
                done=True,
                started_at=progress["started_at"],
                finished_at=progress["finished_at"],
            )
        scan: dict[str, Any] = {
            "TableName": self._table,
            "Limit": request.limit,
            "ConsistentRead": True,
            "FilterExpression": "#sk = :profile AND attribute_not_exists(#data)",
            "ExpressionAttributeNames": {"#sk": SK, "#data": DATA},
            "ExpressionAttributeValues": {":profile": {"S": keys.PROFILE_SK}},
        }
        if progress.get("last_key"):
            scan["ExclusiveStartKey"] = json.loads(progress["last_key"])
        try:
            page = self._db.scan(**scan)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"migration scan of {self._table} failed: {exc}") from exc
        legacy = [from_item(raw) for raw in page.get("Items", [])]
        migrated = already = 0
        for item in legacy:
            if self._migrate(item):
                migrated += 1
            else:
                already += 1
        last = page.get("LastEvaluatedKey")
        started = progress.get("started_at") or iso(utc_now())
        total = int(progress.get("total_migrated", 0)) + migrated
        finished = None if last else iso(utc_now())
        state = {"started_at": started, "total_migrated": total, "last_key": json.dumps(last) if last else None}
        self._save({**state, "finished_at": finished})
        return MigrationPage(
            scanned=int(page.get("ScannedCount", 0)),
            migrated=migrated,
            already=already,
            total_migrated=total,
            done=last is None,
            started_at=started,
            finished_at=finished,
        )

    def _migrate(self, item: dict[str, Any]) -> bool:
        """Move one person item; False when a concurrent writer moved it first."""
        pk = item[PK]
        for _ in range(_ATTEMPTS):
            if DATA in item:
                return False
            tags = self._get(pk, keys.TAGS_SK)
            profile = to_profile(item, tags)
            writes = [
                put(
                    self._table,
                    profile_item(profile),
                    "#version = :version AND attribute_not_exists(#data)",
                    names={"#version": "version", "#data": DATA},
                    values={":version": item.get("version", 0)},
                )
            ]
            if tags is None and profile.annotations_inline:
                writes.append(
                    put(self._table, profile_tags_item(profile, 1), "attribute_not_exists(#pk)", names={"#pk": PK})
                )
            try:
                self._db.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise StoreError(f"migration of {pk} failed: {exc}") from exc
            except BotoCoreError as exc:
                raise StoreError(f"migration of {pk} failed: {exc}") from exc
            item = self._get(pk, keys.PROFILE_SK) or {DATA: b""}  # changed meanwhile: read it again (gone: done)
        raise StoreError(f"migration of {pk}: it kept changing during {_ATTEMPTS} attempts; run again")

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            found = self._db.get_item(TableName=self._table, Key={PK: {"S": pk}, SK: {"S": sk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"migration read of {pk} failed: {exc}") from exc
        return from_item(found["Item"]) if "Item" in found else None

    def _progress(self) -> dict[str, Any]:
        try:
            found = self._db.get_item(TableName=self._table, Key=_PROGRESS, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"migration progress read failed: {exc}") from exc
        return from_item(found["Item"]) if "Item" in found else {}

    def _save(self, state: dict[str, Any]) -> None:
        item = {**_PROGRESS, **to_item({k: v for k, v in state.items() if v is not None})}
        try:
            self._db.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"migration progress write failed: {exc}") from exc
