"""Loyalty accounts on the offers table (`cdp.topology.OFFERS_TABLE`), written in one transaction per operation:

    LOYALTY#{brand}#{person}              ACCOUNT#{program}   the account (`doc`, `version`)
    LOYALTYOP#{brand}#{program}#{op_id}   OP                  an applied operation (`doc`): it happens once; its
                                                              `person_ref` puts it in the by-person index (erasure)
    LOYALTYDUE#{brand}#{month}#{shard}    {program}#{person}  something in the account ends in that month (8 shards)
    LOYALTYMONTHS#{brand}                 {month}             the months holding timers (`reminded`, `touched`)

An account's partition is its person's, so members never contend with each other; a timer is written only when an
account first holds something ending in a month (about once a month per active member).

The month index goes with a timer only when this store has not written it in the last `INDEX_FRESH` (each write
sets `touched`, the writer's clock), so a process writes it about once per month and `INDEX_FRESH`, not with every
timer. A store's first timer in a month (a cold start) always writes it, and so does its next timer in a month it has
itself marked reminded or removed. The tick leaves a month touched in the last `INDEX_FRESH` + `INDEX_GRACE` as it
is, neither marked reminded nor removed (the next tick looks again): a timer written without the index after the
tick read the month's timers, also in a month that has ended (an order from long ago earns a lot that has expired
already) or whose reminders are going out, finds its month still indexed and not marked reminded. `INDEX_GRACE`
covers the writers' and the tick's clocks disagreeing; a tick dated further ahead of another process's writers (a
local `fire_schedule` at a later time) could mark or remove a month that process still skips.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cdp import topology
from cdp.budgets.dynamodb import reasons, transact
from cdp.errors import ConflictError
from cdp.loyalty.accounts import Account
from cdp.loyalty.ports import AccountStore, Commit, Operation, OperationDoneError, Timer
from cdp.loyalty.service import LoyaltyService
from cdp.org import OrgDirectory, load_org
from cdp.profile.ports import ProfileReader
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write, get_item, query_items
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.OFFERS_TABLE.partition_key
SK = topology.OFFERS_TABLE.sort_key
DUE_SHARDS = 8
FAILED = "ConditionalCheckFailed"
INDEX_FRESH = timedelta(minutes=10)  # a month this store indexed this recently is not written again with a timer
INDEX_GRACE = timedelta(minutes=5)  # the tick leaves a month touched within INDEX_FRESH + this
_INDEXED_MAX = 10_000  # months remembered by a store (forgotten all at once past it: they are written again)


def _account_key(brand_id: str, program: str, person_id: str) -> dict[str, Any]:
    return {PK: {"S": f"LOYALTY#{brand_id}#{person_id}"}, SK: {"S": f"ACCOUNT#{program}"}}


def _person_ref(op: Operation) -> dict[str, Any]:
    return {topology.OFFERS_BY_PERSON.partition_key: {"S": person_ref(op.brand_id, op.person_id)}}


def person_ref(brand_id: str, person_id: str) -> str:
    """An operation's key in the offers table's by-person index."""
    return f"{brand_id}#{person_id}"


def _op_key(brand_id: str, program: str, op_id: str) -> dict[str, Any]:
    return {PK: {"S": f"LOYALTYOP#{brand_id}#{program}#{op_id}"}, SK: {"S": "OP"}}


def timer_key(brand_id: str, month: str, program: str, person_id: str) -> dict[str, Any]:
    shard = zlib.crc32(person_id.encode()) % DUE_SHARDS
    return {PK: {"S": f"LOYALTYDUE#{brand_id}#{month}#{shard}"}, SK: {"S": f"{program}#{person_id}"}}


def _month_key(brand_id: str, month: str) -> dict[str, Any]:
    return {PK: {"S": f"LOYALTYMONTHS#{brand_id}"}, SK: {"S": month}}


class DynamoAccountStore(AccountStore):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._indexed: dict[tuple[str, str], datetime] = {}  # (brand, month) -> when this store wrote its index

    def _fresh(self, brand_id: str, month: str, at: datetime) -> bool:
        written = self._indexed.get((brand_id, month))
        return written is not None and timedelta(0) <= at - written < INDEX_FRESH

    def get(self, brand_id: str, program: str, person_id: str) -> Account | None:
        item = get_item(self._db, self._table, _account_key(brand_id, program, person_id))
        if item is None:
            return None
        return Account.model_validate_json(item["doc"]["S"]).model_copy(update={"version": int(item["version"]["N"])})

    def operation(self, brand_id: str, program: str, op_id: str) -> Operation | None:
        item = get_item(self._db, self._table, _op_key(brand_id, program, op_id))
        return Operation.model_validate_json(item["doc"]["S"]) if item else None

    def commit(self, commit: Commit) -> None:
        items: list[dict[str, Any]] = []
        kinds: list[str] = []
        put: dict[str, Any]
        for account, version in commit.accounts:
            stored = account.model_copy(update={"version": version + 1})
            item = {
                **_account_key(account.brand_id, account.program, account.person_id),
                "doc": {"S": stored.model_dump_json(exclude={"version"})},
                "version": {"N": str(version + 1)},
            }
            put = {"TableName": self._table, "Item": item}
            if version:
                put |= {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": str(version)}}}
            else:
                put |= {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}
            items.append({"Put": put})
            kinds.append("account")
        for op in commit.operations:
            item = {**_op_key(op.brand_id, op.program, op.op_id), "doc": {"S": op.model_dump_json()}, **_person_ref(op)}
            absent = {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}
            items.append({"Put": {"TableName": self._table, "Item": item, **absent}})
            kinds.append("operation")
        for op, given_back in commit.updated:
            item = {
                **_op_key(op.brand_id, op.program, op.op_id),
                "doc": {"S": op.model_dump_json()},
                "given_back": {"N": str(op.given_back)},
                **_person_ref(op),
            }
            # as read: a return that gave back nothing wrote 0, an order no return has touched has no attribute yet
            cond = "attribute_exists(#pk) AND (given_back = :g OR (attribute_not_exists(given_back) AND :g = :zero))"
            put = {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": cond,
                "ExpressionAttributeNames": {"#pk": PK},
                "ExpressionAttributeValues": {":g": {"N": str(given_back)}, ":zero": {"N": "0"}},
            }
            items.append({"Put": put})
            kinds.append("account")  # a concurrent return moved it: read again
        at = commit.at or utc_now()
        months = set()
        for account, month in commit.timers:
            timer = timer_key(account.brand_id, month, account.program, account.person_id)
            items.append({"Put": {"TableName": self._table, "Item": timer}})
            kinds.append("timer")
            if not self._fresh(account.brand_id, month, at):
                months.add((account.brand_id, month))
        for brand_id, month in sorted(months):
            update = {
                "TableName": self._table,
                "Key": _month_key(brand_id, month),
                "UpdateExpression": "SET reminded = :f, #t = :t",
                "ConditionExpression": "attribute_not_exists(#pk) OR reminded = :f",
                "ExpressionAttributeNames": {"#pk": PK, "#t": "touched"},
                "ExpressionAttributeValues": {":f": {"BOOL": False}, ":t": {"N": str(int(at.timestamp()))}},
            }
            items.append({"Update": update})
            kinds.append("month")
        try:
            transact(self._db, items, "a loyalty operation")
        except ClientError as exc:
            failed = {kinds[i] for i, code in enumerate(reasons(exc)) if code == FAILED}
            if "operation" in failed:
                raise OperationDoneError(next(o.op_id for o in commit.operations)) from exc
            if "month" in failed:  # its reminders went out already: a timer added now is reminded on its own
                self._reopen(months)
                raise ConflictError("a month's reminders went out meanwhile; try again") from exc
            raise ConflictError("the loyalty account changed meanwhile") from exc
        if len(self._indexed) + len(months) > _INDEXED_MAX:
            self._indexed.clear()
        self._indexed.update(dict.fromkeys(months, at))

    def _reopen(self, months: set[tuple[str, str]]) -> None:
        for brand_id, month in months:
            self._db.update_item(
                TableName=self._table,
                Key=_month_key(brand_id, month),
                UpdateExpression="SET reminded = :f",
                ExpressionAttributeValues={":f": {"BOOL": False}},
            )

    def months(self, brand_id: str, through: str) -> list[tuple[str, bool]]:
        items = query_items(
            self._db,
            self._table,
            "#pk = :p AND #sk <= :m",
            {":p": {"S": f"LOYALTYMONTHS#{brand_id}"}, ":m": {"S": through}},
            keys=(PK, SK),
        )
        return [(i[SK]["S"], bool(i.get("reminded", {}).get("BOOL"))) for i in items]

    def timers(self, brand_id: str, month: str, limit: int, unreminded: bool = False) -> list[Timer]:
        out: list[Timer] = []
        for shard in range(DUE_SHARDS):
            if len(out) >= limit:
                break
            for item in self._shard(f"LOYALTYDUE#{brand_id}#{month}#{shard}", limit - len(out), unreminded):
                program, _, person_id = item[SK]["S"].rpartition("#")  # person ids hold no '#'; programme names may
                out.append(Timer(brand_id=brand_id, month=month, program=program, person_id=person_id))
        return out

    def _shard(self, key: str, limit: int, unreminded: bool) -> list[dict[str, Any]]:
        if not unreminded:
            return query_items(self._db, self._table, "#pk = :p", {":p": {"S": key}}, limit=limit, keys=(PK, SK))
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :p",
            "FilterExpression": "attribute_not_exists(reminded)",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":p": {"S": key}},
            "ConsistentRead": True,
        }
        while len(out) < limit:
            page = self._db.query(**kwargs)
            out.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out[:limit]

    def reminded(self, timers: Sequence[Timer]) -> None:
        requests = [
            {
                "PutRequest": {
                    "Item": {**timer_key(t.brand_id, t.month, t.program, t.person_id), "reminded": {"BOOL": True}}
                }
            }
            for t in timers
        ]
        if requests:
            batch_write(self._db, self._table, requests, "marking loyalty timers reminded")

    def done(self, timers: Sequence[Timer]) -> None:
        requests = [{"DeleteRequest": {"Key": timer_key(t.brand_id, t.month, t.program, t.person_id)}} for t in timers]
        if requests:
            batch_write(self._db, self._table, requests, "removing handled loyalty timers")

    def month_done(self, brand_id: str, month: str, reminded_only: bool, now: datetime | None = None) -> None:
        self._indexed.pop((brand_id, month), None)  # this store writes the month's index with its next timer
        # not while a writer may have skipped the index for a timer written after this tick read the timers
        cutoff = int(((now or utc_now()) - INDEX_FRESH - INDEX_GRACE).timestamp())
        settled: dict[str, Any] = {
            "ConditionExpression": "attribute_not_exists(#t) OR #t < :c",
            "ExpressionAttributeNames": {"#t": "touched"},
            "ExpressionAttributeValues": {":c": {"N": str(cutoff)}},
        }
        try:
            if reminded_only:
                settled["ExpressionAttributeValues"][":r"] = {"BOOL": True}
                self._db.update_item(
                    TableName=self._table,
                    Key=_month_key(brand_id, month),
                    UpdateExpression="SET reminded = :r",
                    **settled,
                )
            elif not self.timers(brand_id, month, limit=1):
                self._db.delete_item(TableName=self._table, Key=_month_key(brand_id, month), **settled)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def dynamo_loyalty_service(
    offers_table: str,
    profiles: ProfileReader,
    event_bus_name: str,
    org: OrgDirectory | None = None,
    publisher: EventPublisher | None = None,
) -> LoyaltyService:
    """The loyalty engine on its AWS adapters (the loyalty API, the order consumer and the tick build it so)."""
    bus = publisher or EventBridgePublisher(event_bus_name)
    return LoyaltyService(DynamoAccountStore(offers_table), profiles, bus, org or load_org())
