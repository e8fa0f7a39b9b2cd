"""Budget pools and holds on the offers table (`cdp.topology.OFFERS_TABLE`).

    BUDGET#{brand}             POOL#{pool_id}   the pool: `available`, `reserved`, `committed` (numbers), `doc`
    HOLD#{brand}#{hold_id}     HOLD             the hold: `state`, `left` and `spent` (maps pool -> number), `doc`
    HOLD#{brand}#{hold_id}     OP#{op_id}       a commit applied (a retried commit finds it and changes nothing)
    BUDGET#{brand}             TOPUP#{pool}#{op} a top-up applied

Every change of money is one transaction over the hold (or marker) and each pool it touches; a reserve's condition
`available >= amount` on each pool is what keeps a pool from being overspent under any number of writers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.budgets.ledger import (
    BudgetExhaustedError,
    BudgetLedger,
    BudgetPool,
    Hold,
    HoldError,
    PlanShortError,
    PoolBalance,
    checked_claims,
    running_low,
)
from cdp.errors import ConflictError, StoreError
from cdp.observability import logger
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import get_item, new_item, put_new, query_items
from cdp.shared.time import iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.OFFERS_TABLE.partition_key
SK = topology.OFFERS_TABLE.sort_key
ATTEMPTS = 12  # transactions that lost to a concurrent one on the same pool are tried again, with jitter


def _pool_key(brand_id: str, pool_id: str) -> dict[str, Any]:
    return {PK: {"S": f"BUDGET#{brand_id}"}, SK: {"S": f"POOL#{pool_id}"}}


def hold_pk(brand_id: str, hold_id: str) -> dict[str, Any]:
    return {"S": f"HOLD#{brand_id}#{hold_id}"}


def hold_key(brand_id: str, hold_id: str) -> dict[str, Any]:
    return {PK: hold_pk(brand_id, hold_id), SK: {"S": "HOLD"}}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _numbers(amounts: Mapping[str, int]) -> dict[str, Any]:
    return {"M": {pool: _n(amount) for pool, amount in amounts.items()}}


def reasons(exc: ClientError) -> list[str]:
    return [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]


def _cancelled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "TransactionCanceledException"


PoolWatch = Callable[[PoolBalance], None]


class DynamoBudgetLedger(BudgetLedger):
    """`watch`: told of each pool a draw leaves (or a refused draw finds) running low (`running_low`). A transaction
    returns no new values, so that costs one read per pool drawn: only the deployed functions pass one."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        watch: PoolWatch | None = None,
    ) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._sleep = sleep
        self._watch = watch

    # ---- pools --------------------------------------------------------------------------------------------------

    def define(self, pool: BudgetPool) -> PoolBalance:
        item = {
            **_pool_key(pool.brand_id, pool.pool_id),
            "doc": {"S": pool.model_dump_json()},
            "available": _n(pool.total_minor),
            "reserved": _n(0),
            "committed": _n(0),
        }
        if not put_new(self._db, self._table, item, f"defining budget pool {pool.pool_id}", PK):
            raise ConflictError(f"budget pool {pool.pool_id} exists")
        return PoolBalance(pool=pool, available_minor=pool.total_minor, reserved_minor=0, committed_minor=0)

    def top_up(self, brand_id: str, pool_id: str, amount_minor: int, op_id: str) -> PoolBalance:
        checked_claims({pool_id: amount_minor})  # the amount and pool id, validated
        marker = {PK: {"S": f"BUDGET#{brand_id}"}, SK: {"S": f"TOPUP#{pool_id}#{op_id}"}}
        items: list[dict[str, Any]] = [
            {"Put": self._new(marker)},
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _pool_key(brand_id, pool_id),
                    "UpdateExpression": "SET available = available + :a",
                    "ConditionExpression": "attribute_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                    "ExpressionAttributeValues": {":a": _n(amount_minor)},
                }
            },
        ]
        try:
            self._transact(items, f"topping up {pool_id}")
        except ClientError as exc:
            if reasons(exc)[1:] == ["ConditionalCheckFailed"]:
                raise HoldError(f"budget pool {pool_id} does not exist") from exc
            # else this top-up was applied before
        found = self.balance(brand_id, pool_id)
        if found is None:
            raise HoldError(f"budget pool {pool_id} does not exist")
        return found

    def balance(self, brand_id: str, pool_id: str) -> PoolBalance | None:
        item = self._get(_pool_key(brand_id, pool_id))
        return _balance(item) if item else None

    def pools(self, brand_id: str) -> list[PoolBalance]:
        values = {":pk": {"S": f"BUDGET#{brand_id}"}, ":pool": {"S": "POOL#"}}
        items = query_items(self._db, self._table, "#pk = :pk AND begins_with(#sk, :pool)", values, keys=(PK, SK))
        return [_balance(item) for item in items]

    # ---- holds --------------------------------------------------------------------------------------------------

    def reserve(self, brand_id: str, hold_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        asked = checked_claims(claims)
        hold = Hold(
            brand_id=brand_id,
            hold_id=hold_id,
            claims=asked,
            left=dict(asked),
            spent=dict.fromkeys(asked, 0),
            state="open",
            at=now,
        )
        return self._draw(hold, f"reserving {hold_id}")

    def charge(self, brand_id: str, op_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        asked = checked_claims(claims)
        hold = Hold(
            brand_id=brand_id,
            hold_id=op_id,
            claims=asked,
            left=dict.fromkeys(asked, 0),
            spent=dict(asked),
            state="closed",
            at=now,
            closed_at=now,
        )
        return self._draw(hold, f"charging {op_id}")

    def draw_items(self, hold: Hold) -> list[dict[str, Any]]:
        """The transaction items that make `hold` (new) and take its claims from their pools: into `reserved` for an
        open hold, into `committed` for a closed one (a charge). Pools in sorted order, after the hold."""
        into = "reserved" if hold.state == "open" else "committed"
        items: list[dict[str, Any]] = [{"Put": self._new(self._hold_item(hold))}]
        for pool in sorted(hold.claims):
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _pool_key(hold.brand_id, pool),
                        "UpdateExpression": f"SET available = available - :a, {into} = {into} + :a",
                        "ConditionExpression": "available >= :a",
                        "ExpressionAttributeValues": {":a": _n(hold.claims[pool])},
                    }
                }
            )
        return items

    def shortfall(self, hold: Hold, codes: list[str]) -> BudgetExhaustedError | None:
        """The pool a refused `draw_items` transaction found short (`codes`: the reasons of the draw's own items)."""
        pools = sorted(hold.claims)
        short = next((p for p, r in zip(pools, codes[1:], strict=False) if r == "ConditionalCheckFailed"), None)
        if short is None:
            return None
        found = self.balance(hold.brand_id, short)
        if found is not None:
            self._report(found)
        return BudgetExhaustedError(short, hold.claims[short], found.available_minor if found else None)

    def watch_pools(self, brand_id: str, pool_ids: Iterable[str]) -> None:
        """After a draw from `pool_ids`: those left running low told to the watch (nothing read without one). A
        failed read is only logged: the draw is done."""
        if self._watch is None:
            return
        for pool_id in sorted(pool_ids):
            try:
                found = self.balance(brand_id, pool_id)
            except StoreError as exc:
                logger.warning("budget pool not checked after a draw", pool_id=pool_id, error=str(exc))
                continue
            if found is not None:
                self._report(found)

    def _report(self, balance: PoolBalance) -> None:
        if self._watch is not None and running_low(balance):
            self._watch(balance)

    def carve(self, brand_id: str, plan_id: str, hold_id: str, claims: Mapping[str, int], now: datetime) -> Hold:
        asked = checked_claims(claims)
        hold = Hold(
            brand_id=brand_id,
            hold_id=hold_id,
            claims=asked,
            left=dict(asked),
            spent=dict.fromkeys(asked, 0),
            state="open",
            at=now,
            plan_id=plan_id,
        )
        made = self.hold(brand_id, hold_id)
        if made is not None:  # carved before (a retry), whatever became of the plan since
            return self._same_carve(made, hold)
        plan = self.hold(brand_id, plan_id)
        if plan is None or plan.state != "open":
            raise HoldError(f"plan {plan_id} is {'closed' if plan else 'unknown'}: nothing can be carved from it")
        try:
            self._transact(self.carve_items(plan_id, hold), f"carving {hold_id} from {plan_id}")
        except ClientError as exc:
            codes = reasons(exc)
            if codes and codes[0] == "ConditionalCheckFailed":
                found = self.hold(brand_id, hold_id)
                if found is not None:
                    return self._same_carve(found, hold)
            raise self.plan_shortfall(plan_id, hold) from exc
        return hold

    def _same_carve(self, found: Hold, hold: Hold) -> Hold:
        if found.claims != hold.claims or found.plan_id != hold.plan_id:
            raise HoldError(f"hold {hold.hold_id} exists with other claims or from another plan")
        return found

    def carve_items(self, plan_id: str, hold: Hold) -> list[dict[str, Any]]:
        """The transaction items that make `hold` (new) out of the open plan's reservation: the hold, then the plan
        with less left (refused when it has not enough, or is closed). The pools do not move."""
        names: dict[str, str] = {"#l": "left", "#c": "carved", "#st": "state"}
        values: dict[str, Any] = {":open": {"S": "open"}}
        sets, conditions = [], ["#st = :open"]
        for i, (pool, amount) in enumerate(sorted(hold.claims.items())):
            names[f"#p{i}"] = pool
            values[f":a{i}"] = _n(amount)
            sets += [f"#l.#p{i} = #l.#p{i} - :a{i}", f"#c.#p{i} = #c.#p{i} + :a{i}"]
            conditions.append(f"#l.#p{i} >= :a{i}")
        plan = {
            "Update": {
                "TableName": self._table,
                "Key": hold_key(hold.brand_id, plan_id),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        return [{"Put": self._new(self._hold_item(hold))}, plan]

    def plan_shortfall(self, plan_id: str, hold: Hold) -> BudgetExhaustedError:
        """Why a carve was refused: the plan's pool with less left than asked (or the plan closed meanwhile)."""
        plan = self.hold(hold.brand_id, plan_id)
        if plan is None or plan.state != "open":
            return PlanShortError(plan_id, next(iter(sorted(hold.claims))), sum(hold.claims.values()), 0)
        pool = next((p for p in sorted(hold.claims) if plan.left.get(p, 0) < hold.claims[p]), next(iter(hold.claims)))
        return PlanShortError(plan_id, pool, hold.claims[pool], plan.left.get(pool, 0))

    def _draw(self, hold: Hold, what: str) -> Hold:
        try:
            self._transact(self.draw_items(hold), what)
        except ClientError as exc:
            codes = reasons(exc)
            if codes and codes[0] == "ConditionalCheckFailed":
                return self._same(hold)  # made before: the same hold, counted once
            short = self.shortfall(hold, codes)
            if short is None:
                raise StoreError(f"{what} failed: {exc}") from exc
            raise short from exc
        self.watch_pools(hold.brand_id, hold.claims)
        return hold

    def _same(self, hold: Hold) -> Hold:
        found = self.hold(hold.brand_id, hold.hold_id)
        if found is None or found.claims != hold.claims:
            raise HoldError(f"hold {hold.hold_id} exists with other claims")
        return found

    def commit(self, brand_id: str, hold_id: str, op_id: str, amounts: Mapping[str, int], now: datetime) -> Hold:
        spend = checked_claims(amounts)
        read = self.hold(brand_id, hold_id)
        if read is None:
            raise HoldError(f"hold {hold_id} does not exist")
        strange = sorted(set(spend) - set(read.claims))
        if strange:
            raise HoldError(f"hold {hold_id} draws nothing from {', '.join(strange)}: it has less left than committed")
        names: dict[str, str] = {"#pk": PK, "#l": "left", "#s": "spent", "#st": "state"}
        values: dict[str, Any] = {":open": {"S": "open"}}
        sets, conditions = [], ["#st = :open"]
        for i, (pool, amount) in enumerate(sorted(spend.items())):
            names[f"#p{i}"] = pool
            values[f":a{i}"] = _n(amount)
            sets += [f"#l.#p{i} = #l.#p{i} - :a{i}", f"#s.#p{i} = #s.#p{i} + :a{i}"]
            conditions.append(f"#l.#p{i} >= :a{i}")
        marker = {PK: hold_pk(brand_id, hold_id), SK: {"S": f"OP#{op_id}"}}
        items: list[dict[str, Any]] = [
            {"Put": self._new({**marker, "at": {"S": iso(now)}})},
            {
                "Update": {
                    "TableName": self._table,
                    "Key": hold_key(brand_id, hold_id),
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "attribute_exists(#pk) AND " + " AND ".join(conditions),
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            *(self._move(brand_id, pool, amount, "reserved", "committed") for pool, amount in sorted(spend.items())),
            *self._roll_up(read, spend),
        ]
        try:
            self._transact(items, f"committing {op_id} of {hold_id}")
        except ClientError as exc:
            codes = reasons(exc)
            current = self.hold(brand_id, hold_id)
            if codes and codes[0] == "ConditionalCheckFailed" and current is not None:
                return current  # applied before
            if current is None:
                raise HoldError(f"hold {hold_id} does not exist") from exc
            if current.state != "open":
                raise HoldError(f"hold {hold_id} is closed") from exc
            over = {p: a for p, a in spend.items() if current.left.get(p, 0) < a or p not in current.claims}
            raise HoldError(f"hold {hold_id} has less left than committed: {over} asked, {current.left} left") from exc
        found = self.hold(brand_id, hold_id)
        assert found is not None
        return found

    def release(self, brand_id: str, hold_id: str, now: datetime) -> Hold:
        return self.settle(brand_id, hold_id, {}, now)

    def settle(self, brand_id: str, hold_id: str, amounts: Mapping[str, int], now: datetime) -> Hold:
        spend = checked_claims(amounts) if amounts else {}
        for _ in range(ATTEMPTS):
            current = self.hold(brand_id, hold_id)
            if current is None:
                raise HoldError(f"hold {hold_id} does not exist")
            if current.state == "closed":
                return current  # settled before (a retry), or released
            self._check_left(current, spend)
            try:
                self._transact(self.settle_items(current, spend, now), f"settling {hold_id}")
            except ClientError:
                continue  # a commit or another settle came first: read the hold again
            found = self.hold(brand_id, hold_id)
            assert found is not None
            return found
        raise ConflictError(f"settling hold {hold_id} kept losing to concurrent commits")

    def settle_items(self, read: Hold, spend: Mapping[str, int], now: datetime) -> list[dict[str, Any]]:
        """The transaction items that close the open hold as `read`: `spend` per pool committed, the rest of what
        it has left released; refused when the hold changed since it was read."""
        names: dict[str, str] = {"#l": "left", "#st": "state"}
        if any(spend.values()):
            names["#s"] = "spent"
        values: dict[str, Any] = {
            ":open": {"S": "open"},
            ":closed": {"S": "closed"},
            ":t": {"S": iso(now)},
            ":zero": _n(0),
        }
        sets, conditions = ["#st = :closed", "closed_at = :t"], ["#st = :open"]
        pools: list[dict[str, Any]] = []
        for i, (pool, left) in enumerate(sorted(read.left.items())):
            used = spend.get(pool, 0)
            names[f"#p{i}"] = pool
            values[f":l{i}"] = _n(left)
            sets.append(f"#l.#p{i} = :zero")
            conditions.append(f"#l.#p{i} = :l{i}")  # nothing committed since it was read
            if used:
                values[f":u{i}"] = _n(used)
                sets.append(f"#s.#p{i} = #s.#p{i} + :u{i}")
            if left:
                pools.append(self._settle_pool(read.brand_id, pool, left, used))
        hold = {
            "Update": {
                "TableName": self._table,
                "Key": hold_key(read.brand_id, read.hold_id),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        return [hold, *pools, *self._roll_up(read, spend)]

    def _roll_up(self, hold: Hold, spend: Mapping[str, int]) -> list[dict[str, Any]]:
        """A carved hold's spend added to its plan, so a campaign run reads what its offers cost from one item per
        offer (`carved_spent_minor`). In the same transaction as the spend: counted once, or not at all."""
        amount = max(spend.values(), default=0)
        if hold.plan_id is None or amount <= 0:
            return []
        return [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": hold_key(hold.brand_id, hold.plan_id),
                    "UpdateExpression": "ADD carved_spent_minor :a",
                    "ExpressionAttributeValues": {":a": _n(amount)},
                }
            }
        ]

    @staticmethod
    def _check_left(read: Hold, spend: Mapping[str, int]) -> None:
        over = {p: a for p, a in spend.items() if read.left.get(p, 0) < a}
        if over:
            raise HoldError(f"hold {read.hold_id} has less left than committed: {over} asked, {read.left} left")

    def _settle_pool(self, brand_id: str, pool: str, left: int, used: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _pool_key(brand_id, pool),
                "UpdateExpression": (
                    "SET reserved = reserved - :l, committed = committed + :u, available = available + :b"
                ),
                "ExpressionAttributeValues": {":l": _n(left), ":u": _n(used), ":b": _n(left - used)},
            }
        }

    def hold(self, brand_id: str, hold_id: str) -> Hold | None:
        item = self._get(hold_key(brand_id, hold_id))
        if item is None:
            return None
        doc = Hold.model_validate_json(item["doc"]["S"])
        closed = item.get("closed_at", {}).get("S")
        return doc.model_copy(
            update={
                "state": item["state"]["S"],
                "left": {p: int(v["N"]) for p, v in item["left"]["M"].items()},
                "spent": {p: int(v["N"]) for p, v in item["spent"]["M"].items()},
                "carved": {p: int(v["N"]) for p, v in item.get("carved", {}).get("M", {}).items() if int(v["N"])},
                "carved_spent_minor": int(item.get("carved_spent_minor", {}).get("N", "0")),
                "closed_at": parse_iso(closed) if closed else doc.closed_at,
            }
        )

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _hold_item(self, hold: Hold) -> dict[str, Any]:
        return {
            **hold_key(hold.brand_id, hold.hold_id),
            "doc": {"S": hold.model_dump_json()},
            "state": {"S": hold.state},
            "left": _numbers(hold.left),
            "spent": _numbers(hold.spent),
            "carved": _numbers({pool: hold.carved.get(pool, 0) for pool in hold.claims}),
        }

    def _new(self, item: dict[str, Any]) -> dict[str, Any]:
        return new_item(self._table, item, PK)

    def _move(self, brand_id: str, pool: str, amount: int, source: str, target: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _pool_key(brand_id, pool),
                "UpdateExpression": f"SET {source} = {source} - :a, {target} = {target} + :a",
                "ExpressionAttributeValues": {":a": _n(amount)},
            }
        }

    def _transact(self, items: list[dict[str, Any]], what: str) -> None:
        transact(self._db, items, what, self._sleep)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return get_item(self._db, self._table, key)


def _balance(item: dict[str, Any]) -> PoolBalance:
    return PoolBalance(
        pool=BudgetPool.model_validate_json(item["doc"]["S"]),
        available_minor=int(item["available"]["N"]),
        reserved_minor=int(item["reserved"]["N"]),
        committed_minor=int(item["committed"]["N"]),
    )


def transact(
    db: DynamoDBClient, items: list[dict[str, Any]], what: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    """One transaction, tried again while it loses only to concurrent ones (TransactionConflict, throttling); a
    refused condition is raised as the ClientError for the caller to read its `reasons`."""
    for attempt in range(ATTEMPTS):
        try:
            db.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            return
        except ClientError as exc:
            found = reasons(exc)
            if not _cancelled(exc):
                code = exc.response.get("Error", {}).get("Code")
                if code in ("TransactionConflictException", "ThrottlingException"):
                    sleep(random.uniform(0, 0.01 * 2**attempt))
                    continue
                raise StoreError(f"{what} failed: {exc}") from exc
            if "ConditionalCheckFailed" in found:
                raise
            if "TransactionConflict" not in found:
                raise StoreError(f"{what} failed: {exc}") from exc
            sleep(random.uniform(0, 0.01 * 2**attempt))
        except BotoCoreError as exc:
            raise StoreError(f"{what} failed: {exc}") from exc
    raise ConflictError(f"{what} kept losing to concurrent writes ({ATTEMPTS} attempts)")
