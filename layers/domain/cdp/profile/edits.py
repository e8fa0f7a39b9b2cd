"""The audit trail of manual profile edits: who changed what, when, through which key (filed under the person).

An edit itself travels as canonical events (source `cdp`) resolved like any other event, so it folds into the
profile and shows on the timeline; this record keeps the who and why beside it (sort keys `A#...`, `cdp.profile.keys`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from cdp import topology
from cdp.errors import StoreError
from cdp.profile import keys
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.PROFILES_TABLE.partition_key
SK = topology.PROFILES_TABLE.sort_key


class EditRecord(BaseModel):
    edit_id: str
    person_id: str = Field(description="the person the edit was applied to (at the time of the edit)")
    actor: str = Field(description="the API client that made the edit")
    at: datetime
    reason: str | None = None
    scope: str = Field(description="where in the org hierarchy the edit was made (the key's scope label)")
    traits: dict[str, str] = Field(default_factory=dict, description="trait -> the value set")
    consent: dict[str, bool] = Field(default_factory=dict, description="channel -> marketing consent granted")
    event_ids: list[str] = Field(default_factory=list, description="the canonical events (source cdp) it became")


class EditLog(ABC):
    @abstractmethod
    def record(self, edit: EditRecord) -> None:
        """File the edit under its person."""

    @abstractmethod
    def edits(self, person_ids: Iterable[str]) -> list[EditRecord]:
        """Edits filed under any of the persons (a survivor and the persons merged into it), oldest first."""


class DynamoEditLog(EditLog):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")

    def record(self, edit: EditRecord) -> None:
        item: dict[str, Any] = {
            PK: keys.person_pk(edit.person_id),
            SK: keys.edit_sk(edit.at, edit.edit_id),
            **edit.model_dump(mode="json", exclude_none=True),
        }
        try:
            self._db.put_item(TableName=self._table, Item=to_item(item))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"recording edit {edit.edit_id} of {edit.person_id} failed: {exc}") from exc

    def edits(self, person_ids: Iterable[str]) -> list[EditRecord]:
        out: list[EditRecord] = []
        for person_id in sorted(set(person_ids)):
            out.extend(EditRecord.model_validate(item) for item in self._query(person_id))
        return sorted(out, key=lambda e: (e.at, e.edit_id))

    def _query(self, person_id: str) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues={":pk": {"S": keys.person_pk(person_id)}, ":prefix": {"S": keys.EDIT_PREFIX}},
        )
        try:
            return [
                {k: v for k, v in from_item(raw).items() if k not in (PK, SK)}
                for page in pages
                for raw in page.get("Items", [])
            ]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading edits of {person_id} failed: {exc}") from exc
