"""The offer catalog, code pools and wallets on the offers table (`cdp.topology.OFFERS_TABLE`), beside the budget
ledger whose holds an issue makes in the same transaction.

    OFFER#{brand}                 {offer_id}          the offer: `doc`, `status`, `issued`, `imported` (codes)
    CODES#{brand}#{offer_id}      {n:09d}             the n-th imported code
    LIMIT#{brand}#{person_id}     {offer_id}          how many of the offer the person was issued (`n`)
    WALLET#{brand}#{person_id}    {issue_id}          one issued offer (`doc`, `state`: issued/redeemed/expired/failed)
    CODE#{brand}#{code}           CODE                which wallet entry a code is (redemptions find it)
    EXPIRES#{shard}               {until}#{brand}#{person}#{issue}   the entries still to expire, by time (16 shards)
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.budgets.dynamodb import DynamoBudgetLedger, PoolWatch, reasons, transact
from cdp.budgets.ledger import Hold
from cdp.errors import ConflictError, InvalidInputError, NotFoundError, StoreError
from cdp.loyalty.dynamodb import dynamo_loyalty_service
from cdp.observability import logger
from cdp.offers.catalog import Offer
from cdp.offers.external_coupons import ExternalCouponIssuer, ExternalCouponSystems
from cdp.offers.promotions import Promotion
from cdp.offers.providers import Payout
from cdp.offers.red_packets import RedPacketPayer, RedPacketProviders
from cdp.offers.service import OfferService
from cdp.offers.wallet import OfferStore, OfferUnavailableError, RedemptionError, StoredOffer, WalletEntry
from cdp.org import load_org
from cdp.profile.ports import ProfileReader
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.aws import client as default_client
from cdp.shared.dynamo import batch_write, get_item, new_item, put_new, query_items
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.OFFERS_TABLE.partition_key
SK = topology.OFFERS_TABLE.sort_key
EXPIRES_PK = "EXPIRES"
PENDING_PK = "OFFERPENDING"
EXPIRY_SHARDS = 16  # the timers spread over 16 partition keys: one key takes about 1,000 writes a second
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
CODE_LENGTH = 10  # 32^10 ≈ 10^15 codes: a guess finds one of a million issued codes once in a billion tries
ISSUE_ATTEMPTS = 8
FAILED = "ConditionalCheckFailed"


def _offer_key(brand_id: str, offer_id: str) -> dict[str, Any]:
    return {PK: {"S": f"OFFER#{brand_id}"}, SK: {"S": offer_id}}


def wallet_key(brand_id: str, person_id: str, issue_id: str) -> dict[str, Any]:
    return {PK: {"S": f"WALLET#{brand_id}#{person_id}"}, SK: {"S": issue_id}}


def code_key(brand_id: str, code: str) -> dict[str, Any]:
    return {PK: {"S": f"CODE#{brand_id}#{code}"}, SK: {"S": "CODE"}}


def expiry_key(entry: WalletEntry) -> dict[str, Any]:
    shard = zlib.crc32(entry.issue_id.encode()) % EXPIRY_SHARDS
    return {
        PK: {"S": f"{EXPIRES_PK}#{shard:02d}"},
        SK: {"S": f"{iso(entry.valid_until)}#{entry.brand_id}#{entry.person_id}#{entry.issue_id}"},
    }


def pending_key(entry: WalletEntry) -> dict[str, Any]:
    """The marker of an entry whose provider could not say what it did: the tick asks again (`due_pending`)."""
    shard = zlib.crc32(entry.issue_id.encode()) % EXPIRY_SHARDS
    return {PK: {"S": f"{PENDING_PK}#{shard:02d}"}, SK: {"S": f"{entry.brand_id}#{entry.person_id}#{entry.issue_id}"}}


def _settled(current: WalletEntry, table: str) -> list[dict[str, Any]]:
    """Leaving `pending` (paid, granted, failed, expired): its marker goes in the same transaction."""
    if current.payout is None or current.payout.status != "pending":
        return []
    return [{"Delete": {"TableName": table, "Key": pending_key(current)}}]


def _imported_code_key(brand_id: str, offer_id: str, n: int) -> dict[str, Any]:
    return {PK: {"S": f"CODES#{brand_id}#{offer_id}"}, SK: {"S": f"{n:09d}"}}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def generated_code(prefix: str) -> str:
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class DynamoOfferStore(OfferStore):
    """`watch`: the budget ledger's (`DynamoBudgetLedger`), told of pools an issue leaves running low too."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, watch: PoolWatch | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self.budgets = DynamoBudgetLedger(table, client=self._db, watch=watch)

    # ---- the catalog --------------------------------------------------------------------------------------------

    def define(self, offer: Offer, by: str, now: datetime) -> StoredOffer:
        stored = StoredOffer(offer=offer, status="active", issued=0, created_at=now, created_by=by)
        item = {
            **_offer_key(offer.brand_id, offer.offer_id),
            "doc": {"S": offer.model_dump_json()},
            "created_at": {"S": iso(now)},
            "created_by": {"S": by},
            "status": {"S": "active"},
            "issued": _n(0),
            "imported": _n(0),
        }
        if not put_new(self._db, self._table, item, f"defining offer {offer.offer_id}", PK):
            raise ConflictError(f"offer {offer.offer_id} exists")
        return stored

    def get(self, brand_id: str, offer_id: str) -> StoredOffer | None:
        item = self._get(_offer_key(brand_id, offer_id))
        return _stored(item) if item else None

    def offers(self, brand_id: str) -> list[StoredOffer]:
        return [_stored(i) for i in self._query({":pk": {"S": f"OFFER#{brand_id}"}})]

    def retire(self, brand_id: str, offer_id: str) -> StoredOffer:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_offer_key(brand_id, offer_id),
                UpdateExpression="SET #st = :retired",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#st": "status", "#pk": PK},
                ExpressionAttributeValues={":retired": {"S": "retired"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise NotFoundError(f"no offer {offer_id}") from exc
            raise StoreError(f"retiring offer {offer_id} failed: {exc}") from exc
        found = self.get(brand_id, offer_id)
        assert found is not None
        return found

    def import_codes(self, brand_id: str, offer_id: str, codes: Sequence[str]) -> StoredOffer:
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=_offer_key(brand_id, offer_id),
                UpdateExpression="SET imported = imported + :k",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ExpressionAttributeValues={":k": _n(len(codes))},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise NotFoundError(f"no offer {offer_id}") from exc
            raise StoreError(f"importing codes of {offer_id} failed: {exc}") from exc
        end = int(answer["Attributes"]["imported"]["N"])
        start = end - len(codes)
        # positions are taken before the codes are written: an issue that reaches one not written yet waits for it
        requests = [
            {"PutRequest": {"Item": {**_imported_code_key(brand_id, offer_id, start + i), "code": {"S": code}}}}
            for i, code in enumerate(codes)
        ]
        batch_write(self._db, self._table, requests, f"importing codes of {offer_id}")
        found = self.get(brand_id, offer_id)
        assert found is not None
        return found

    # ---- checkout promotions -------------------------------------------------------------------------------------

    def put_promotion(self, promotion: Promotion) -> bool:
        key = {PK: {"S": f"PROMO#{promotion.brand_id}"}, SK: {"S": promotion.promotion_id}}
        try:
            answer = self._db.put_item(
                TableName=self._table,
                Item={**key, "doc": {"S": promotion.model_dump_json()}},
                ReturnValues="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"storing promotion {promotion.promotion_id} failed: {exc}") from exc
        return "Attributes" not in answer

    def promotions(self, brand_id: str) -> list[Promotion]:
        items = self._query({":pk": {"S": f"PROMO#{brand_id}"}})
        return [Promotion.model_validate_json(i["doc"]["S"]) for i in items]

    # ---- issue --------------------------------------------------------------------------------------------------

    def issue(
        self, stored: StoredOffer, person_id: str, issue_id: str, now: datetime, plan_id: str | None = None
    ) -> tuple[WalletEntry, bool]:
        offer = stored.offer
        start, until = offer.validity.window(now)
        if until <= now:
            raise OfferUnavailableError(f"offer {offer.offer_id} ended {until.isoformat()}", "ended")
        for _ in range(ISSUE_ATTEMPTS):
            earlier = self._entry(offer.brand_id, person_id, issue_id)
            if earlier is not None:  # issued before under this id (checked first: it may hold the last code)
                return earlier, False
            current = self.get(offer.brand_id, offer.offer_id)
            if current is None:
                raise NotFoundError(f"no offer {offer.offer_id}")
            code, position = self._next_code(current)
            entry = WalletEntry(
                brand_id=offer.brand_id,
                person_id=person_id,
                issue_id=issue_id,
                offer_id=offer.offer_id,
                kind=offer.kind,
                name=offer.name,
                code=code,
                state="issued",
                issued_at=now,
                valid_from=start,
                valid_until=until,
                cost_minor=offer.cost_minor,
                currency=offer.currency,
                pools=list(offer.budget_pools),
                campaign_id=offer.campaign_id,
            )
            hold = self._hold(entry, now, plan_id)
            items = self._issue_items(current, entry, position, hold)
            try:
                transact(self._db, items, f"issuing {offer.offer_id} to {person_id}")
            except ClientError as exc:
                found = self._refused(exc, current, entry, position, hold)
                if found is not None:
                    return found, False
                continue
            if hold is not None and hold.plan_id is None:  # drawn from the pools (a carve leaves them as they are)
                self.budgets.watch_pools(offer.brand_id, hold.claims)
            return entry, True
        raise ConflictError(f"issuing {offer.offer_id} to {person_id} kept losing to concurrent issues")

    def _refused(
        self, exc: ClientError, current: StoredOffer, entry: WalletEntry, position: int | None, hold: Hold | None
    ) -> WalletEntry | None:
        """Why an issue's transaction was refused: the entry issued before under its id (returned), a reason to
        try again (None), or an error raised."""
        offer, codes = current.offer, reasons(exc)
        if codes[2] == FAILED:  # issued before under this id: the same issue
            return self._entry(offer.brand_id, entry.person_id, entry.issue_id)
        if codes[0] == FAILED:
            self._unavailable(current, position)
            return None  # an imported code taken by a concurrent issue: take the next
        if codes[1] == FAILED:
            raise OfferUnavailableError(
                f"{entry.person_id} already has {offer.per_person_limit} of offer {offer.offer_id}", "person_limit"
            ) from exc
        if entry.code is not None and codes[3] == FAILED:  # the code index
            if position is not None:  # an imported code the brand already uses: skipped, never issued twice
                self._skip_code(current, position)
            return None  # a generated code met an existing one: draw another
        if hold is not None and hold.plan_id is not None and codes[-1] == FAILED:  # the plan's item comes last
            raise self.budgets.plan_shortfall(hold.plan_id, hold) from exc
        if hold is not None and hold.plan_id is None:
            short = self.budgets.shortfall(hold, codes[-(1 + len(hold.claims)) :])  # the hold's items come last
            if short is not None:
                raise short from exc
        raise StoreError(f"issuing {offer.offer_id} failed: {codes}") from exc

    def _next_code(self, current: StoredOffer) -> tuple[str | None, int | None]:
        coupon = current.offer.coupon
        if coupon is None:
            return None, None
        if coupon.codes == "generated":
            return generated_code(coupon.code_prefix), None
        if coupon.codes == "external":  # its system's coupon id, attached once granted (attach_code)
            return None, None
        position = current.issued
        item = self._get(_imported_code_key(current.offer.brand_id, current.offer.offer_id, position))
        if item is None:
            raise OfferUnavailableError(f"offer {current.offer.offer_id} has no imported code left", "no_codes")
        return item["code"]["S"], position

    def _skip_code(self, current: StoredOffer, position: int) -> None:
        logger.warning(
            "an imported code is in use already: skipped", offer_id=current.offer.offer_id, position=position
        )
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_offer_key(current.offer.brand_id, current.offer.offer_id),
                UpdateExpression="SET issued = issued + :one, skipped = if_not_exists(skipped, :zero) + :one",
                ConditionExpression="issued = :n",
                ExpressionAttributeValues={":one": _n(1), ":zero": _n(0), ":n": _n(position)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StoreError(f"skipping a used code of {current.offer.offer_id} failed: {exc}") from exc

    def _unavailable(self, current: StoredOffer, position: int | None) -> None:
        """Why the offer's count refused the issue (raised), unless it only moved on (an imported code taken)."""
        fresh = self.get(current.offer.brand_id, current.offer.offer_id)
        assert fresh is not None
        if fresh.status != "active":
            raise OfferUnavailableError(f"offer {current.offer.offer_id} is retired", "retired")
        stock = current.offer.stock
        if stock is not None and fresh.issued >= stock:
            raise OfferUnavailableError(
                f"offer {current.offer.offer_id} is out of stock ({stock} issued)", "out_of_stock"
            )
        if position is not None and fresh.issued >= fresh.codes_imported:
            raise OfferUnavailableError(f"offer {current.offer.offer_id} has no imported code left", "no_codes")

    def _hold(self, entry: WalletEntry, now: datetime, plan_id: str | None = None) -> Hold | None:
        if not entry.pools or not entry.cost_minor:
            return None
        claims = dict.fromkeys(entry.pools, entry.cost_minor)
        return Hold(
            brand_id=entry.brand_id,
            hold_id=entry.issue_id,
            claims=claims,
            left=dict(claims),
            spent=dict.fromkeys(claims, 0),
            state="open",
            at=now,
            plan_id=plan_id,
        )

    def _issue_items(
        self, current: StoredOffer, entry: WalletEntry, position: int | None, hold: Hold | None
    ) -> list[dict[str, Any]]:
        offer = current.offer
        condition, values = "#st = :active", {":active": {"S": "active"}, ":one": _n(1)}
        if offer.stock is not None:
            condition += " AND issued < :stock"
            values[":stock"] = _n(offer.stock)
        if position is not None:
            condition += " AND issued = :n AND issued < imported"
            values[":n"] = _n(position)
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _offer_key(offer.brand_id, offer.offer_id),
                    "UpdateExpression": "SET issued = issued + :one",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#st": "status"},
                    "ExpressionAttributeValues": values,
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: {"S": f"LIMIT#{offer.brand_id}#{entry.person_id}"}, SK: {"S": offer.offer_id}},
                    "UpdateExpression": "SET n = if_not_exists(n, :zero) + :one",
                    "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                    "ExpressionAttributeValues": {":zero": _n(0), ":one": _n(1), ":limit": _n(offer.per_person_limit)},
                }
            },
            {"Put": self._new({**wallet_key(offer.brand_id, entry.person_id, entry.issue_id), **_entry_item(entry)})},
        ]
        if entry.code is not None:
            index = {
                **code_key(offer.brand_id, entry.code),
                "person_id": {"S": entry.person_id},
                "issue_id": {"S": entry.issue_id},
            }
            items.append({"Put": self._new(index)})
        items.append({"Put": {"TableName": self._table, "Item": expiry_key(entry)}})
        if hold is not None and hold.plan_id is not None:
            items.extend(self.budgets.carve_items(hold.plan_id, hold))
        elif hold is not None:
            items.extend(self.budgets.draw_items(hold))
        return items

    # ---- the wallet ---------------------------------------------------------------------------------------------

    def wallet(self, brand_id: str, person_id: str) -> list[WalletEntry]:
        items = self._query({":pk": {"S": f"WALLET#{brand_id}#{person_id}"}})
        return sorted((_entry(i) for i in items), key=lambda e: (e.issued_at, e.issue_id), reverse=True)

    def entry(self, brand_id: str, person_id: str, issue_id: str) -> WalletEntry | None:
        return self._entry(brand_id, person_id, issue_id)

    def by_code(self, brand_id: str, code: str) -> WalletEntry | None:
        index = self._get(code_key(brand_id, code))
        if index is None:
            return None
        return self._entry(brand_id, index["person_id"]["S"], index["issue_id"]["S"])

    def redeem(self, entry: WalletEntry, order_id: str, discount_minor: int, now: datetime) -> tuple[WalletEntry, bool]:
        return self._redeem(entry, order_id, discount_minor, now, None)

    def pay_out(self, entry: WalletEntry, payout: Payout, now: datetime) -> WalletEntry:
        paid, _ = self._redeem(entry, f"payout:{payout.bill_no or entry.issue_id}", entry.cost_minor, now, payout)
        return paid

    def _redeem(
        self, entry: WalletEntry, order_id: str, discount_minor: int, now: datetime, payout: Payout | None
    ) -> tuple[WalletEntry, bool]:
        if discount_minor < 0:
            raise InvalidInputError("a discount is not negative", "discount_minor")
        for _ in range(ISSUE_ATTEMPTS):
            current = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
            if current is None:
                raise RedemptionError(f"no issued offer {entry.issue_id}")
            if current.state == "redeemed":
                if current.order_id == order_id:
                    return current, False
                raise RedemptionError(f"code of {entry.issue_id} was redeemed for order {current.order_id}")
            if current.state == "failed":
                raise RedemptionError(f"{entry.issue_id} was never issued: its payout failed")
            update: dict[str, Any] = {
                "state": "redeemed",
                "redeemed_at": now,
                "order_id": order_id,
                "discount_minor": discount_minor,
            }
            redeemed = current.model_copy(update=update | ({"payout": payout} if payout is not None else {}))
            items = [self._move(redeemed, current.state), *_settled(current, self._table)]
            items.append({"Delete": {"TableName": self._table, "Key": expiry_key(current)}})
            items.extend(self._spend(current, discount_minor, order_id, now))
            try:
                transact(self._db, items, f"redeeming {entry.issue_id}")
            except ClientError:
                continue  # expired or redeemed meanwhile: read it again
            return redeemed, True
        raise ConflictError(f"redeeming {entry.issue_id} kept losing to concurrent changes")

    def _spend(self, current: WalletEntry, discount: int, order_id: str, now: datetime) -> list[dict[str, Any]]:
        """What a redemption does to the budget: settle the hold (spend the discount, release the rest), or, when the
        hold is gone (an expired entry), charge the discount to the pools once."""
        if not current.pools or not discount:
            hold = self.budgets.hold(current.brand_id, current.issue_id) if current.pools else None
            return self.budgets.settle_items(hold, {}, now) if hold is not None and hold.state == "open" else []
        hold = self.budgets.hold(current.brand_id, current.issue_id)
        if hold is not None and hold.state == "open":
            spend = {pool: min(discount, hold.left.get(pool, 0)) for pool in hold.claims}
            return self.budgets.settle_items(hold, {p: a for p, a in spend.items() if a}, now)
        late = Hold(
            brand_id=current.brand_id,
            hold_id=f"{current.issue_id}:late:{order_id}",
            claims=dict.fromkeys(current.pools, discount),
            left=dict.fromkeys(current.pools, 0),
            spent=dict.fromkeys(current.pools, discount),
            state="closed",
            at=now,
            closed_at=now,
        )
        items = self.budgets.draw_items(late)
        for item in items[1:]:  # a late redemption is money already spent: charged even past the pool's end
            item["Update"].pop("ConditionExpression", None)
        return items

    def fail(self, entry: WalletEntry, payout: Payout, now: datetime) -> WalletEntry:
        for _ in range(ISSUE_ATTEMPTS):
            current = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
            if current is None:
                raise NotFoundError(f"no issued offer {entry.issue_id}")
            if current.state != "issued":
                return current  # failed before (a retry), or paid or expired meanwhile
            if current.code is not None:  # a code's position in an imported pool cannot be given back
                raise ConflictError(f"{entry.issue_id} has a code: an entry with a code is not failed")
            failed = current.model_copy(update={"state": "failed", "payout": payout})
            one = {":one": _n(1)}
            items = [
                self._move(failed, "issued"),
                *_settled(current, self._table),
                {"Delete": {"TableName": self._table, "Key": expiry_key(current)}},
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _offer_key(current.brand_id, current.offer_id),
                        "UpdateExpression": "SET issued = issued - :one",
                        "ConditionExpression": "issued >= :one",
                        "ExpressionAttributeValues": one,
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {
                            PK: {"S": f"LIMIT#{current.brand_id}#{current.person_id}"},
                            SK: {"S": current.offer_id},
                        },
                        "UpdateExpression": "SET n = n - :one",
                        "ConditionExpression": "n >= :one",
                        "ExpressionAttributeValues": one,
                    }
                },
            ]
            hold = self.budgets.hold(current.brand_id, current.issue_id) if current.pools else None
            if hold is not None and hold.state == "open":
                items.extend(self.budgets.settle_items(hold, {}, now))
            try:
                transact(self._db, items, f"failing {entry.issue_id}")
            except ClientError:
                continue  # paid, expired or failed meanwhile: read it again
            return failed
        raise ConflictError(f"failing {entry.issue_id} kept losing to concurrent changes")

    def attach_code(self, entry: WalletEntry, code: str, payout: Payout) -> WalletEntry:
        for _ in range(ISSUE_ATTEMPTS):
            current = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
            if current is None:
                raise NotFoundError(f"no issued offer {entry.issue_id}")
            if current.code is not None or current.state != "issued":
                return current  # attached before (a retry), or failed or expired meanwhile
            coded = current.model_copy(update={"code": code, "payout": payout})
            index = {**code_key(entry.brand_id, code), "person_id": {"S": entry.person_id}}
            items = [self._move(coded, "issued"), {"Put": self._new({**index, "issue_id": {"S": entry.issue_id}})}]
            items += _settled(current, self._table)
            try:
                transact(self._db, items, f"attaching the code of {entry.issue_id}")
            except ClientError as exc:
                if reasons(exc)[1] == FAILED:
                    owner = self._get(code_key(entry.brand_id, code))
                    if owner is not None and owner["issue_id"]["S"] != entry.issue_id:
                        raise ConflictError(
                            f"{payout.provider} answered coupon {code} for {entry.issue_id}; issue "
                            f"{owner['issue_id']['S']} has it"
                        ) from exc
                continue  # changed meanwhile: read it again
            return coded
        raise ConflictError(f"attaching the code of {entry.issue_id} kept losing to concurrent changes")

    def note_payout(self, entry: WalletEntry, payout: Payout) -> WalletEntry:
        current = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
        if current is None:
            raise NotFoundError(f"no issued offer {entry.issue_id}")
        if current.state != "issued":
            return current
        noted = current.model_copy(update={"payout": payout})
        items = [self._move(noted, "issued")]
        if payout.status == "pending":  # the tick asks the provider again (due_pending)
            items.append({"Put": {"TableName": self._table, "Item": pending_key(noted)}})
        else:
            items += _settled(current, self._table)
        try:
            if len(items) == 1:  # a plain conditional put (a transaction bills twice)
                self._db.put_item(**items[0]["Put"])
            else:
                transact(self._db, items, f"noting the payout of {entry.issue_id}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise StoreError(f"noting the payout of {entry.issue_id} failed: {exc}") from exc
            found = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
            return found or current  # changed meanwhile: as it now is
        except BotoCoreError as exc:
            raise StoreError(f"noting the payout of {entry.issue_id} failed: {exc}") from exc
        return noted

    def due_pending(self, limit: int) -> list[WalletEntry]:
        items: list[dict[str, Any]] = []
        for shard in range(EXPIRY_SHARDS):
            items += self._query({":pk": {"S": f"{PENDING_PK}#{shard:02d}"}}, limit=limit)
        out = []
        for item in sorted(items, key=lambda i: i[SK]["S"])[:limit]:
            brand_id, person_id, issue_id = item[SK]["S"].split("#", 2)
            found = self._entry(brand_id, person_id, issue_id)
            if found is not None and found.state == "issued" and found.payout and found.payout.status == "pending":
                out.append(found)
            else:
                self._forget_expiry(item)  # settled or gone: nothing to ask
        return out

    def due_expiries(self, until: datetime, limit: int) -> list[WalletEntry]:
        items: list[dict[str, Any]] = []
        for shard in range(EXPIRY_SHARDS):
            values = {":pk": {"S": f"{EXPIRES_PK}#{shard:02d}"}, ":until": {"S": iso(until) + "~"}}
            items += self._query(values, "#pk = :pk AND #sk <= :until", limit)
        out = []
        for item in sorted(items, key=lambda i: i[SK]["S"])[:limit]:  # the oldest first, over every shard
            _, brand_id, person_id, issue_id = item[SK]["S"].split("#", 3)
            found = self._entry(brand_id, person_id, issue_id)
            if found is not None and found.state == "issued":
                out.append(found)
            else:
                self._forget_expiry(item)  # redeemed or gone: nothing to expire
        return out

    def expire(self, entry: WalletEntry, now: datetime) -> bool:
        current = self._entry(entry.brand_id, entry.person_id, entry.issue_id)
        if current is None or current.state != "issued":
            return False
        expired = current.model_copy(update={"state": "expired", "expired_at": now})
        items = [self._move(expired, "issued"), {"Delete": {"TableName": self._table, "Key": expiry_key(current)}}]
        items += _settled(current, self._table)
        hold = self.budgets.hold(current.brand_id, current.issue_id) if current.pools else None
        if hold is not None and hold.state == "open":
            items.extend(self.budgets.settle_items(hold, {}, now))
        try:
            transact(self._db, items, f"expiring {entry.issue_id}")
        except ClientError:
            return False  # redeemed meanwhile
        return True

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _move(self, entry: WalletEntry, was: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**wallet_key(entry.brand_id, entry.person_id, entry.issue_id), **_entry_item(entry)},
                "ConditionExpression": "#st = :was",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": {":was": {"S": was}},
            }
        }

    def _entry(self, brand_id: str, person_id: str, issue_id: str) -> WalletEntry | None:
        item = self._get(wallet_key(brand_id, person_id, issue_id))
        return _entry(item) if item else None

    def _forget_expiry(self, item: dict[str, Any]) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key={PK: item[PK], SK: item[SK]})
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"forgetting an expiry failed: {exc}") from exc

    def _new(self, item: dict[str, Any]) -> dict[str, Any]:
        return new_item(self._table, item, PK)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return get_item(self._db, self._table, key)

    def _query(
        self, values: dict[str, Any], condition: str = "#pk = :pk", limit: int | None = None
    ) -> list[dict[str, Any]]:
        return query_items(self._db, self._table, condition, values, limit, (PK, SK))


def _entry_item(entry: WalletEntry) -> dict[str, Any]:
    return {"doc": {"S": entry.model_dump_json()}, "state": {"S": entry.state}}


def _entry(item: dict[str, Any]) -> WalletEntry:
    return WalletEntry.model_validate_json(item["doc"]["S"])


def _stored(item: dict[str, Any]) -> StoredOffer:
    return StoredOffer(
        offer=Offer.model_validate_json(item["doc"]["S"]),
        status=item["status"]["S"],
        issued=int(item["issued"]["N"]),
        codes_imported=int(item["imported"]["N"]),
        created_at=parse_iso(item["created_at"]["S"]),
        created_by=item["created_by"]["S"],
    )


def dynamo_offer_service(
    offers_table: str,
    profiles: ProfileReader,
    event_bus_name: str,
    red_packets: RedPacketProviders | None = None,
    publisher: EventPublisher | None = None,
    coupons: ExternalCouponSystems | None = None,
    watch: PoolWatch | None = None,
) -> OfferService:
    """The offer service on its AWS adapters: the offers table (with the budget ledger), the bus for the wallet's
    events, the packaged org directory; `red_packets`: who pays red packets out (None: they are recorded only);
    `coupons`: who issues external coupons (None: they cannot be issued); `watch`: told of pools running low."""
    store = DynamoOfferStore(offers_table, watch=watch)
    payer = RedPacketPayer(red_packets) if red_packets is not None else None
    issuer = ExternalCouponIssuer(coupons) if coupons is not None else None
    bus = publisher or EventBridgePublisher(event_bus_name)  # a send batch collects its issues' events to pack them
    loyalty = dynamo_loyalty_service(offers_table, profiles, event_bus_name, publisher=bus)  # the programmes it keeps
    return OfferService(store, store.budgets, profiles, bus, load_org(), payer=payer, loyalty=loyalty, coupons=issuer)
