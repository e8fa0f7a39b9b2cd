"""Journey places, timers, memberships and spend on the campaigns table (`cdp.topology.CAMPAIGNS_TABLE`).

    JOURNEY#{brand}#{campaign}   P#{person}                      a person's place (their latest entry), `rev` checked
    JOURNEY#{brand}#{campaign}   SPEND                           what the journey's sends have cost (`spent`)
    JOURNEY#{brand}#{campaign}   OUTCOMES#v{n}#{place}#{arm}     what became of its messages sent from one step
                                                                 (`tally`: send function); `OUTCOMES`: before steps
    MEMBER#{brand}#{person}      J#{campaign}                    the person is in that journey now
    TIMER#{shard}                {time}#{brand}#{campaign}#{p}   a wait that is up at {time} (shards spread writes)
    SWEEPS, SWEPT#..., WEATHER#...                               sweeps over the profiles (`DynamoSweepStore`)

A move that changes one item is one conditional write; a move that also sets or clears a timer or a membership is a
transaction over those items (billed twice each), so the common step "wait -> next wait" costs a transaction of three.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.budgets.dynamodb import PoolWatch
from cdp.campaigns.dynamodb import DynamoCampaignCatalog, condition_failed, query_items
from cdp.campaigns.journeys import (
    DeferredSend,
    DeferredSends,
    JourneyEngine,
    JourneyState,
    JourneyStore,
    PublishedSendOrders,
    TallyKey,
    TimerRef,
)
from cdp.campaigns.sweeps import Reading, Sweep, SweepStore, WeatherSignal
from cdp.channels.models import SendBatchRequest
from cdp.errors import ConflictError, StoreError
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import RunPlans
from cdp.org import load_org
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.aws import client as default_client
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = topology.CAMPAIGNS_TABLE.partition_key
SK = topology.CAMPAIGNS_TABLE.sort_key
TIMER_SHARDS = 4
CURSOR = "cursor_"  # an open sweep's attribute per shard begun: the cursor of its next page
OUTCOMES_SK = "OUTCOMES"
NO_ARM = "-"  # no variant name starts with it


def _place_key(brand_id: str, campaign_id: str, person_id: str) -> dict[str, Any]:
    return {PK: {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, SK: {"S": f"P#{person_id}"}}


def _member_key(brand_id: str, person_id: str, campaign_id: str) -> dict[str, Any]:
    return {PK: {"S": f"MEMBER#{brand_id}#{person_id}"}, SK: {"S": f"J#{campaign_id}"}}


def _outcomes_sk(step: TallyKey | None) -> str:
    return OUTCOMES_SK if step is None else f"{OUTCOMES_SK}#v{step.version}#{step.place}#{step.variant or NO_ARM}"


def _tally_key(sk: str) -> TallyKey | None:
    if sk == OUTCOMES_SK:
        return None
    _, version, place, arm = sk.split("#")
    return TallyKey(int(version.removeprefix("v")), place, None if arm == NO_ARM else arm)


def _shard(person_id: str) -> int:
    return hashlib.sha256(person_id.encode()).digest()[0] % TIMER_SHARDS


def _timer_key(state: JourneyState, at: datetime) -> dict[str, Any]:
    sk = f"{iso(at)}#{state.brand_id}#{state.campaign_id}#{state.person_id}"
    return {PK: {"S": f"TIMER#{_shard(state.person_id)}"}, SK: {"S": sk}}


def _due(db: DynamoDBClient, table: str, kind: str, until: datetime, limit: int) -> list[dict[str, Any]]:
    """Items keyed `{time}#...` under `{kind}#{shard}` whose time is up by `until` (up to `limit` per shard)."""
    out: list[dict[str, Any]] = []
    for shard in range(TIMER_SHARDS):
        values = {":pk": {"S": f"{kind}#{shard}"}, ":until": {"S": f"{iso(until)}#~"}}
        out.extend(query_items(db, table, "#pk = :pk AND #sk <= :until", values, limit))
    return out


class DynamoJourneyStore(JourneyStore):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    def get(self, brand_id: str, campaign_id: str, person_id: str) -> JourneyState | None:
        try:
            item = self._db.get_item(
                TableName=self._table, Key=_place_key(brand_id, campaign_id, person_id), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading a journey place failed: {exc}") from exc
        return JourneyState.model_validate_json(item["doc"]["S"]) if item else None

    def save(self, state: JourneyState, previous: JourneyState | None) -> None:
        place: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                **_place_key(state.brand_id, state.campaign_id, state.person_id),
                "doc": {"S": state.model_dump_json()},
                "rev": {"N": str(state.rev)},
            },
        }
        if previous is None:
            place["ConditionExpression"] = "attribute_not_exists(#pk)"
            place["ExpressionAttributeNames"] = {"#pk": PK}
        else:
            place["ConditionExpression"] = "rev = :rev"
            place["ExpressionAttributeValues"] = {":rev": {"N": str(previous.rev)}}
        others = self._moves(state, previous)
        try:
            if others:
                writes: list[Any] = [{"Put": place}, *others]
                self._db.transact_write_items(TransactItems=writes)
            else:
                self._db.put_item(**place)
        except ClientError as exc:
            if condition_failed(exc):
                raise ConflictError(f"{state.person_id}'s place in {state.campaign_id} moved meanwhile") from exc
            raise StoreError(f"writing a journey place failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"writing a journey place failed: {exc}") from exc

    def _moves(self, state: JourneyState, previous: JourneyState | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        before = previous.next_at if previous and previous.active else None
        after = state.next_at if state.active else None
        if before is not None and before != after and previous is not None:
            out.append({"Delete": {"TableName": self._table, "Key": _timer_key(previous, before)}})
        if after is not None and after != before:
            timer = TimerRef(
                brand_id=state.brand_id, campaign_id=state.campaign_id, person_id=state.person_id, at=after
            )
            item = {**_timer_key(state, after), "doc": {"S": timer.model_dump_json()}}
            out.append({"Put": {"TableName": self._table, "Item": item}})
        was_in, is_in = bool(previous and previous.active), state.active
        member = _member_key(state.brand_id, state.person_id, state.campaign_id)
        if is_in and not was_in:
            out.append({"Put": {"TableName": self._table, "Item": member}})
        elif was_in and not is_in:
            out.append({"Delete": {"TableName": self._table, "Key": member}})
        return out

    def due(self, until: datetime, limit: int) -> list[TimerRef]:
        found = [
            TimerRef.model_validate_json(i["doc"]["S"]) for i in _due(self._db, self._table, "TIMER", until, limit)
        ]
        return sorted(found, key=lambda t: (t.at, t.person_id))[:limit]

    def memberships(self, brand_id: str, person_id: str) -> list[str]:
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :j)", {":pk": {"S": f"MEMBER#{brand_id}#{person_id}"}, ":j": {"S": "J#"}}
        )
        return [i[SK]["S"].removeprefix("J#") for i in items]

    def spend(self, brand_id: str, campaign_id: str, cost_minor: int, cap_minor: int) -> bool:
        if cost_minor > cap_minor:
            return False
        try:
            self._db.update_item(
                TableName=self._table,
                Key={PK: {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, SK: {"S": "SPEND"}},
                UpdateExpression="ADD spent :cost",
                ConditionExpression="attribute_not_exists(spent) OR spent <= :room",
                ExpressionAttributeValues={
                    ":cost": {"N": str(cost_minor)},
                    ":room": {"N": str(cap_minor - cost_minor)},
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreError(f"recording the spend of {campaign_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"recording the spend of {campaign_id} failed: {exc}") from exc
        return True

    def spent(self, brand_id: str, campaign_id: str) -> int:
        try:
            item = self._db.get_item(
                TableName=self._table,
                Key={PK: {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, SK: {"S": "SPEND"}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading the spend of {campaign_id} failed: {exc}") from exc
        return int(item["spent"]["N"]) if item else 0

    def tally(self, brand_id: str, campaign_id: str, outcomes: Mapping[str, int], step: TallyKey | None = None) -> None:
        if not outcomes:
            return
        names = {f"#o{i}": name for i, name in enumerate(outcomes)}
        values = {f":o{i}": {"N": str(n)} for i, n in enumerate(outcomes.values())}
        try:  # one item per step: each write stays one small item, as the journey-wide item was
            self._db.update_item(
                TableName=self._table,
                Key={PK: {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, SK: {"S": _outcomes_sk(step)}},
                UpdateExpression="ADD " + ", ".join(f"{n} {v}" for n, v in zip(names, values, strict=True)),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"tallying the messages of {campaign_id} failed: {exc}") from exc

    def step_outcomes(self, brand_id: str, campaign_id: str) -> dict[TallyKey | None, dict[str, int]]:
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :o)",
            {":pk": {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, ":o": {"S": OUTCOMES_SK}},
        )
        return {_tally_key(i[SK]["S"]): {k: int(v["N"]) for k, v in i.items() if "N" in v} for i in items}

    def places(self, brand_id: str, campaign_id: str) -> list[JourneyState]:
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :p)", {":pk": {"S": f"JOURNEY#{brand_id}#{campaign_id}"}, ":p": {"S": "P#"}}
        )
        return [JourneyState.model_validate_json(i["doc"]["S"]) for i in items]

    def _query(self, condition: str, values: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
        return query_items(self._db, self._table, condition, values, limit)


class DynamoDeferredSends(DeferredSends):
    """DEFERRED#{shard} / {time}#{campaign}#{step}#{person}: a send held back by quiet hours until {time}."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    @staticmethod
    def _key(held: DeferredSend) -> dict[str, Any]:
        request = held.request
        person = (request.person_ids or [""])[0]
        sk = f"{iso(held.until)}#{request.campaign_id}#{request.step}#{person}"
        return {PK: {"S": f"DEFERRED#{_shard(person)}"}, SK: {"S": sk}}

    def defer(self, request: SendBatchRequest, until: datetime) -> bool:
        held = DeferredSend(until=until, request=request)
        try:  # conditional, still one write: a redelivered order finds its hold and is not counted twice
            self._db.put_item(
                TableName=self._table,
                Item={**self._key(held), "doc": {"S": held.model_dump_json()}},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreError(f"holding a send until {iso(until)} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"holding a send until {iso(until)} failed: {exc}") from exc
        return True

    def due(self, until: datetime, limit: int) -> list[DeferredSend]:
        items = _due(self._db, self._table, "DEFERRED", until, limit)
        return sorted((DeferredSend.model_validate_json(i["doc"]["S"]) for i in items), key=lambda d: d.until)[:limit]

    def done(self, deferred: DeferredSend) -> bool:
        try:
            gone = self._db.delete_item(TableName=self._table, Key=self._key(deferred), ReturnValues="ALL_OLD")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"forgetting a held send failed: {exc}") from exc
        return "Attributes" in gone


class DynamoSweepStore(SweepStore):
    """SWEEPS / {brand}#{campaign}#{label}: an open sweep with its scanned shards (`done`, a number set) and the
    cursor of each shard begun (`cursor_{shard}`: top-level attributes, so an update needs no map made beforehand;
    a shard's is removed when it is done, so the item stays small);
    SWEPT#{brand}#{campaign} / {label}: it was opened (opened once, however often asked);
    WEATHER#{brand} / {city}: the city's latest reading."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._asked: set[str] = set()  # sweeps this container opened or found opened: no write to ask again

    def _open_key(self, sweep: Sweep) -> dict[str, Any]:
        return {PK: {"S": "SWEEPS"}, SK: {"S": f"{sweep.brand_id}#{sweep.campaign_id}#{sweep.label}"}}

    def open(self, sweep: Sweep) -> bool:
        marker = f"{sweep.brand_id}#{sweep.campaign_id}#{sweep.label}"
        if marker in self._asked:
            return False
        item = {**self._open_key(sweep), "doc": {"S": sweep.model_dump_json(exclude={"done", "cursors"})}}
        swept = {PK: {"S": f"SWEPT#{sweep.brand_id}#{sweep.campaign_id}"}, SK: {"S": sweep.label}}
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": swept,
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": PK},
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": item}},
                ]
            )
        except ClientError as exc:
            if condition_failed(exc):
                self._asked.add(marker)
                return False
            raise StoreError(f"opening a sweep of {sweep.campaign_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"opening a sweep of {sweep.campaign_id} failed: {exc}") from exc
        self._asked.add(marker)  # only once it is known to be open: a failed attempt is asked again
        return True

    def opened(self) -> list[Sweep]:
        out = []
        for item in query_items(self._db, self._table, "#pk = :pk", {":pk": {"S": "SWEEPS"}}):
            done = frozenset(int(n) for n in item.get("done", {}).get("NS", []))
            cursors = {
                int(name.removeprefix(CURSOR)): value["S"]
                for name, value in item.items()
                if name.startswith(CURSOR) and int(name.removeprefix(CURSOR)) not in done
            }
            sweep = Sweep.model_validate_json(item["doc"]["S"])
            out.append(sweep.model_copy(update={"done": done, "cursors": cursors}))
        return out

    def mark(self, sweep: Sweep, shard: int, cursor: str | None = None) -> None:
        values: dict[str, Any]
        if cursor is None:
            update, values = "ADD done :shard REMOVE #cursor", {":shard": {"NS": [str(shard)]}}
        else:
            update, values = "SET #cursor = :cursor", {":cursor": {"S": cursor}}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._open_key(sweep),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK, "#cursor": f"{CURSOR}{shard}"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if condition_failed(exc):
                return  # closed meanwhile
            raise StoreError(f"recording a sweep's page failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"recording a sweep's page failed: {exc}") from exc

    def close(self, sweep: Sweep) -> None:
        try:
            self._db.delete_item(TableName=self._table, Key=self._open_key(sweep))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"closing a sweep failed: {exc}") from exc

    def reading(self, signal: WeatherSignal) -> Reading:
        at = iso(signal.observed_at)
        key = {PK: {"S": f"WEATHER#{signal.brand_id}"}, SK: {"S": signal.city.casefold()}}
        try:
            stored = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if stored is not None and stored["observed_at"]["S"] == at:  # the same reading delivered again
                before = stored.get("previous_c", {}).get("N")
                return Reading(kept=True, previous=float(before) if before is not None else None)
            if stored is not None and stored["observed_at"]["S"] > at:
                return Reading(kept=False)  # a later reading is kept already
            item: dict[str, Any] = {**key, "temperature_c": {"N": repr(signal.temperature_c)}, "observed_at": {"S": at}}
            if stored is not None:
                item["previous_c"] = stored["temperature_c"]
            condition = "observed_at = :seen" if stored is not None else "attribute_not_exists(#pk)"
            values = {":seen": stored["observed_at"]} if stored is not None else None
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {"ExpressionAttributeNames": {"#pk": PK}}),
            )
        except ClientError as exc:
            if condition_failed(exc):  # another reading of the city was kept meanwhile: this one is redelivered
                raise ConflictError(f"a reading of {signal.city} was kept meanwhile") from exc
            raise StoreError(f"keeping a weather reading failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"keeping a weather reading failed: {exc}") from exc
        previous = stored["temperature_c"]["N"] if stored is not None else None
        return Reading(kept=True, previous=float(previous) if previous is not None else None)


def dynamo_journey_engine(
    campaigns_table: str,
    profiles_table: str,
    event_bus_name: str,
    offers_table: str | None = None,
    watch: PoolWatch | None = None,
) -> JourneyEngine:
    """The journey engine on its AWS adapters, as the journey function and the schedule's tick both run it;
    `offers_table`: where a treated entry's catalog offers are reserved from their pools (`watch`: told of pools a
    reservation leaves running low)."""
    offers = DynamoOfferStore(offers_table, watch=watch) if offers_table else None
    return JourneyEngine(
        DynamoCampaignCatalog(campaigns_table),
        DynamoJourneyStore(campaigns_table),
        PublishedSendOrders(EventBridgePublisher(event_bus_name)),
        DynamoProfileStore(profiles_table),
        org=load_org(),
        plans=RunPlans(offers, offers.budgets) if offers else None,
    )
