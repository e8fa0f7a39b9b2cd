"""The campaign catalog on the campaigns table (`cdp.topology.CAMPAIGNS_TABLE`).

    BRAND#{brand}            CAMPAIGN#{id}       the campaign's state (status, versions, next run), `rev` checked
    BRAND#{brand}            SWITCH              the brand's stop switch
    CAMPAIGN#{brand}#{id}    V#{version:06d}     one version of the definition (immutable but for its approval)
    CAMPAIGN#{brand}#{id}    RUN#{run_id}        one run, or an occurrence skipped with its reason
    DUE                      {time}#{brand}#{id} the schedule's next occurrence of each scheduled campaign

Each item holds its model as JSON in `doc`; the attributes that conditions test (`rev`, `approved`) sit beside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.campaigns.catalog import (
    Approval,
    BrandSwitch,
    CampaignCatalog,
    CampaignState,
    DueEntry,
    RunRecord,
    StoredVersion,
)
from cdp.channels.ports import StopSwitch
from cdp.errors import ConflictError, StoreError
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import query_items as shared_query
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.CAMPAIGNS_TABLE.partition_key
SK = topology.CAMPAIGNS_TABLE.sort_key
DUE_PK = "DUE"


def _state_key(brand_id: str, campaign_id: str) -> dict[str, Any]:
    return {PK: {"S": f"BRAND#{brand_id}"}, SK: {"S": f"CAMPAIGN#{campaign_id}"}}


def _campaign_pk(brand_id: str, campaign_id: str) -> str:
    return f"CAMPAIGN#{brand_id}#{campaign_id}"


def _version_key(brand_id: str, campaign_id: str, version: int) -> dict[str, Any]:
    return {PK: {"S": _campaign_pk(brand_id, campaign_id)}, SK: {"S": f"V#{version:06d}"}}


def _due_key(at: datetime, brand_id: str, campaign_id: str) -> dict[str, Any]:
    return {PK: {"S": DUE_PK}, SK: {"S": f"{iso(at)}#{brand_id}#{campaign_id}"}}


def condition_failed(exc: ClientError) -> bool:
    """A conditional write or a transaction refused because an item was not as the writer read it."""
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def query_items(
    db: DynamoDBClient, table: str, condition: str, values: dict[str, Any], limit: int | None = None
) -> list[dict[str, Any]]:
    """A consistent Query's items (every page, or the first `limit`)."""
    return shared_query(db, table, condition, values, limit, (PK, SK))


class DynamoCampaignCatalog(CampaignCatalog):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    # ---- versions and states ------------------------------------------------------------------------------------

    def add_version(
        self, state: CampaignState, version: StoredVersion, expected_rev: int | None, previous_due: datetime | None
    ) -> None:
        writes: list[Any] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**_version_key(state.brand_id, state.campaign_id, version.version), **_doc(version)},
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            },
            self._state_put(state, expected_rev),
        ]
        writes.extend(self._due_moves(state, previous_due))
        self._transact(writes, f"campaign {state.campaign_id} version {version.version}")

    def put_state(self, state: CampaignState, expected_rev: int, previous_due: datetime | None) -> None:
        self._transact([self._state_put(state, expected_rev), *self._due_moves(state, previous_due)], state.campaign_id)

    def state(self, brand_id: str, campaign_id: str) -> CampaignState | None:
        item = self._get(_state_key(brand_id, campaign_id))
        return CampaignState.model_validate_json(item["doc"]["S"]) if item else None

    def states(self, brand_id: str) -> list[CampaignState]:
        items = self._query(f"BRAND#{brand_id}", "CAMPAIGN#")
        return [CampaignState.model_validate_json(i["doc"]["S"]) for i in items]

    def version(self, brand_id: str, campaign_id: str, version: int) -> StoredVersion | None:
        item = self._get(_version_key(brand_id, campaign_id, version))
        if item is None:
            return None
        stored = StoredVersion.model_validate_json(item["doc"]["S"])
        if "approved" in item:
            stored = stored.model_copy(update={"approval": Approval.model_validate_json(item["approved"]["S"])})
        return stored

    def approve(self, brand_id: str, campaign_id: str, version: int, approval: Approval) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_version_key(brand_id, campaign_id, version),
                UpdateExpression="SET approved = :a",
                ConditionExpression="attribute_exists(#pk) AND attribute_not_exists(approved)",
                ExpressionAttributeNames={"#pk": PK},
                ExpressionAttributeValues={":a": {"S": approval.model_dump_json()}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise ConflictError(f"campaign {campaign_id} version {version} is approved already") from exc
            raise StoreError(f"approving campaign {campaign_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"approving campaign {campaign_id} failed: {exc}") from exc

    def due(self, until: datetime, limit: int, after: datetime | None = None) -> list[DueEntry]:
        values = {":pk": {"S": DUE_PK}, ":until": {"S": f"{iso(until)}#~"}}
        window = "#sk <= :until"
        if after is not None:
            values[":after"] = {"S": f"{iso(after)}#~"}  # strictly after: `after` itself sorts below its entries' keys
            window = "#sk BETWEEN :after AND :until"
        try:
            response = self._db.query(
                TableName=self._table,
                KeyConditionExpression=f"#pk = :pk AND {window}",
                ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                ExpressionAttributeValues=values,
                Limit=limit,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading due campaigns failed: {exc}") from exc
        return [DueEntry.model_validate_json(item["doc"]["S"]) for item in response.get("Items", [])]

    # ---- runs ---------------------------------------------------------------------------------------------------

    def add_run(self, run: RunRecord) -> bool:
        item = {PK: {"S": _campaign_pk(run.brand_id, run.campaign_id)}, SK: {"S": f"RUN#{run.run_id}"}, **_doc(run)}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreError(f"recording run {run.run_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"recording run {run.run_id} failed: {exc}") from exc
        return True

    def runs(self, brand_id: str, campaign_id: str, limit: int) -> list[RunRecord]:
        runs = [
            RunRecord.model_validate_json(i["doc"]["S"])
            for i in self._query(_campaign_pk(brand_id, campaign_id), "RUN#")
        ]
        return sorted(runs, key=lambda r: (r.at, r.run_id), reverse=True)[:limit]

    def run(self, brand_id: str, campaign_id: str, run_id: str) -> RunRecord | None:
        item = self._get({PK: {"S": _campaign_pk(brand_id, campaign_id)}, SK: {"S": f"RUN#{run_id}"}})
        return RunRecord.model_validate_json(item["doc"]["S"]) if item else None

    # ---- the brand's switch -------------------------------------------------------------------------------------

    def switch(self, brand_id: str) -> BrandSwitch:
        item = self._get({PK: {"S": f"BRAND#{brand_id}"}, SK: {"S": "SWITCH"}})
        return BrandSwitch.model_validate_json(item["doc"]["S"]) if item else BrandSwitch(brand_id=brand_id)

    def put_switch(self, switch: BrandSwitch) -> None:
        item = {PK: {"S": f"BRAND#{switch.brand_id}"}, SK: {"S": "SWITCH"}, **_doc(switch)}
        try:
            self._db.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"writing the stop switch of {switch.brand_id} failed: {exc}") from exc

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _state_put(self, state: CampaignState, expected_rev: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {**_state_key(state.brand_id, state.campaign_id), **_doc(state), "rev": {"N": str(state.rev)}},
            "ExpressionAttributeNames": {"#pk": PK},
        }
        if expected_rev is None:
            put["ConditionExpression"] = "attribute_not_exists(#pk)"
        else:
            put["ConditionExpression"] = "attribute_exists(#pk) AND rev = :rev"
            put["ExpressionAttributeValues"] = {":rev": {"N": str(expected_rev)}}
        return {"Put": put}

    def _due_moves(self, state: CampaignState, previous: datetime | None) -> list[dict[str, Any]]:
        if previous == state.next_run_at:
            return []
        out: list[dict[str, Any]] = []
        if previous is not None:
            out.append({"Delete": {"TableName": self._table, "Key": _due_key(previous, *_ids(state))}})
        if state.next_run_at is not None:
            out.append({"Put": {"TableName": self._table, "Item": self._due_item(state)}})
        return out

    def _due_item(self, state: CampaignState) -> dict[str, Any]:
        assert state.next_run_at is not None
        entry = DueEntry(brand_id=state.brand_id, campaign_id=state.campaign_id, at=state.next_run_at)
        return {**_due_key(state.next_run_at, *_ids(state)), **_doc(entry)}

    def _transact(self, writes: list[Any], what: str) -> None:
        try:
            self._db.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if condition_failed(exc):
                raise ConflictError(f"{what} changed meanwhile: read it again and retry") from exc
            raise StoreError(f"writing {what} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"writing {what} failed: {exc}") from exc

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading the campaigns table failed: {exc}") from exc
        return dict(item) if item else None

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        values = {":pk": {"S": pk}, ":prefix": {"S": prefix}}
        return query_items(self._db, self._table, "#pk = :pk AND begins_with(#sk, :prefix)", values)


def _doc(model: Any) -> dict[str, Any]:
    return {"doc": {"S": model.model_dump_json()}}


def _ids(state: CampaignState) -> tuple[str, str]:
    return state.brand_id, state.campaign_id


class DynamoStopSwitch(StopSwitch):
    """The send step's view of the brand's stop switch (one consistent read per batch)."""

    def __init__(self, catalog: DynamoCampaignCatalog) -> None:
        self._catalog = catalog

    def stopped(self, brand_id: str) -> str | None:
        switch = self._catalog.switch(brand_id)
        return f"by {switch.by}: {switch.reason or 'no reason given'}" if switch.stopped else None
