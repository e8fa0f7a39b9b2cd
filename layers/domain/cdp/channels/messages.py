"""The message log on the LEDGER table: one item per message, moved by receipts, and per-run status counts.

    MSG#{message_id}            / MESSAGE        the message: brand, person, campaign, run, step, channel, provider
                                                 and its id, `status` with its `rank`, `at_{status}` first times
    PMSG#{provider}#{their id}  / MESSAGE        -> message_id, for providers whose receipts name only their own id
    MSGSTATS#{brand}#{campaign} / {run}#{shard}  `n_{channel}_{status}` counters (ADD); a run's count of a status is
                                                 the sum over its shards, so every writer picks any shard
                                / {run}~{place}~{arm}#{shard}   the same for a journey's messages, per step and arm
                                                 (`~` is in no run id): the run's count sums these too

    ORPHAN#{message id}         / RECEIPTS       receipts that came before their message was recorded (or
    ORPHAN#P#{provider}#{id}                     for a message not ours), kept 2 days

A receipt is one conditional UpdateItem (`rank < :rank AND brand_id = :brand`): a duplicate or an older status fails
the condition and changes nothing but the first time of that status; counts move once per status moved.

A receipt may overtake its message (a batch records its messages once it is done). Such a receipt is kept as an
orphan, then applied again; recording a batch reads its messages' orphans after writing them. Each side writes
before it reads, so whichever comes second sees the other: no receipt is lost and none waits on a retry.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.lifecycle import RANK, STATUSES, Receipt
from cdp.channels.models import journey_place
from cdp.channels.ports import Applied, LoggedMessage, MessageLog, StepOf
from cdp.errors import StoreError
from cdp.shared import aws
from cdp.shared.dynamo import batch_get, batch_write, query_items
from cdp.shared.time import iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

K = TypeVar("K")
MESSAGE_SK = "MESSAGE"
ORPHAN_SK = "RECEIPTS"
ORPHAN_RETENTION = timedelta(days=2)
RETENTION = timedelta(days=400)
STATS_SHARDS = 8
# Providers whose receipts carry only their own message id (a WeChat template job's MsgID).
BY_PROVIDER_ID = frozenset({"wechat"})
_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def message_pk(message_id: str) -> str:
    return f"MSG#{message_id}"


def provider_pk(provider: str, provider_id: str) -> str:
    return f"PMSG#{provider}#{provider_id}"


def orphan_pk(message_id: str, provider: str | None = None) -> str:
    return f"ORPHAN#P#{provider}#{message_id}" if provider else f"ORPHAN#{message_id}"


def stats_pk(brand_id: str, campaign_id: str) -> str:
    return f"MSGSTATS#{brand_id}#{campaign_id}"


def _counter(channel: str, status: str) -> str:
    return f"n_{channel}_{status}"


NO_ARM = "-"  # no variant name starts with it


def _counts_of(m: LoggedMessage) -> tuple[str, str, str, StepOf | None]:
    """Which counters a message moves: its run's, per step and arm for a journey's (the same single write)."""
    place = journey_place(m.step)
    return m.brand_id, m.campaign_id, m.run_id, StepOf(m.run_id, place, m.variant) if place else None


def _stats_sk(run_id: str, step: StepOf | None, shard: int) -> str:
    if step is None:
        return f"{run_id}#{shard}"
    return f"{run_id}~{step.place}~{step.variant or NO_ARM}#{shard}"


def _step_of(sk: str) -> tuple[str, StepOf | None]:
    """A counters item's run, and its journey step when it has one (`_stats_sk`)."""
    head = sk.rpartition("#")[0]
    if "~" not in head:
        return head, None
    run_id, place, arm = head.split("~")
    return run_id, StepOf(run_id, place, None if arm == NO_ARM else arm)


class DynamoMessageLog(MessageLog):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")

    # ---- writes at send time ----------------------------------------------------------------------------------

    def record(self, messages: Sequence[LoggedMessage]) -> None:
        if not messages:
            return
        requests: list[dict[str, Any]] = []
        for m in messages:
            requests.append({"PutRequest": {"Item": _message_item(m)}})
            if m.provider in BY_PROVIDER_ID and m.provider_id:
                pointer = {
                    _PK: {"S": provider_pk(m.provider, m.provider_id)},
                    _SK: {"S": MESSAGE_SK},
                    "message_id": {"S": m.message_id},
                    _TTL: {"N": str(int((m.sent_at + RETENTION).timestamp()))},
                }
                requests.append({"PutRequest": {"Item": pointer}})
        batch_write(self._client, self._table, requests, "recording sent messages")
        by_run: dict[tuple[str, str, str, StepOf | None], Counter[tuple[str, str]]] = {}
        for m in messages:
            by_run.setdefault(_counts_of(m), Counter())[(m.channel, m.status)] += 1
        for (brand_id, campaign_id, run_id, step), counts in by_run.items():
            self._add(brand_id, campaign_id, run_id, counts, step)
        self._adopt_orphans(messages)

    def _adopt_orphans(self, messages: Sequence[LoggedMessage]) -> None:
        """Apply the receipts that came before these messages were recorded."""
        keys = [orphan_pk(m.message_id) for m in messages]
        keys += [
            orphan_pk(m.provider_id, m.provider) for m in messages if m.provider in BY_PROVIDER_ID and m.provider_id
        ]
        found = self._batch_get(keys, ORPHAN_SK)
        if not found:
            return
        applied: list[Applied] = []
        for item in found:
            for raw in item.get("receipts", {}).get("L", []):
                outcome = self.apply(Receipt.model_validate_json(raw["S"]), keep_orphan=False)
                if outcome is not None:
                    applied.append(outcome)
        self.count_moves(applied)
        batch_write(
            self._client,
            self._table,
            [{"DeleteRequest": {"Key": {_PK: item[_PK], _SK: item[_SK]}}} for item in found],
            "removing adopted receipts",
        )

    # ---- receipts ---------------------------------------------------------------------------------------------

    def apply(self, receipt: Receipt, keep_orphan: bool = True) -> Applied | None:
        outcome = self._apply(receipt)
        if outcome is not None or not keep_orphan:
            return outcome
        self._keep_orphan(receipt)
        return self._apply(receipt)  # recorded meanwhile? Its recording may have looked for orphans before ours

    def _keep_orphan(self, receipt: Receipt) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={_PK: {"S": orphan_pk(receipt.message_id, receipt.provider)}, _SK: {"S": ORPHAN_SK}},
                UpdateExpression="SET receipts = list_append(if_not_exists(receipts, :empty), :one), #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": _TTL},
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":one": {"L": [{"S": receipt.model_dump_json()}]},
                    ":ttl": {"N": str(int((receipt.at + ORPHAN_RETENTION).timestamp()))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"keeping a receipt for message {receipt.message_id} failed: {exc}") from exc

    def _apply(self, receipt: Receipt) -> Applied | None:
        message_id = receipt.message_id
        if receipt.provider is not None:
            found = self._get(provider_pk(receipt.provider, receipt.message_id))
            if found is None:
                return None
            message_id = found["message_id"]["S"]
        at = f"at_{receipt.status}"
        values: dict[str, Any] = {
            ":s": {"S": receipt.status},
            ":r": {"N": str(RANK[receipt.status])},
            ":t": {"S": iso(receipt.at)},
            ":brand": {"S": receipt.brand_id},
        }
        update = "SET #status = :s, #rank = :r, #at = if_not_exists(#at, :t)"
        if receipt.code:
            update += ", code = :code"
            values[":code"] = {"S": receipt.code}
        key = {_PK: {"S": message_pk(message_id)}, _SK: {"S": MESSAGE_SK}}
        try:
            old = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk) AND brand_id = :brand AND #rank < :r",
                ExpressionAttributeNames={"#pk": _PK, "#status": "status", "#rank": "rank", "#at": at},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # why not: no message, another brand's, or further
            )["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StoreError(f"applying a receipt to message {message_id} failed: {exc}") from exc
            return self._not_moved(message_id, receipt, exc.response.get("Item"))  # type: ignore[arg-type]
        except BotoCoreError as exc:
            raise StoreError(f"applying a receipt to message {message_id} failed: {exc}") from exc
        message = _logged(old)
        return Applied(message=_with_status(message, receipt), previous=message.status, moved=True)

    def _not_moved(self, message_id: str, receipt: Receipt, item: dict[str, Any] | None) -> Applied | None:
        """A duplicate or an older status (keep its first time), another brand's id or no such message (None)."""
        if item is None or item.get("brand_id", {}).get("S") != receipt.brand_id:
            return None
        at = f"at_{receipt.status}"
        if at not in item:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={_PK: {"S": message_pk(message_id)}, _SK: {"S": MESSAGE_SK}},
                    UpdateExpression="SET #at = if_not_exists(#at, :t)",
                    ConditionExpression="attribute_exists(#pk)",  # never recreate an item erasure removed
                    ExpressionAttributeNames={"#at": at, "#pk": _PK},
                    ExpressionAttributeValues={":t": {"S": iso(receipt.at)}},
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise StoreError(f"recording a receipt's time on message {message_id} failed: {exc}") from exc
                return None
            except BotoCoreError as exc:
                raise StoreError(f"recording a receipt's time on message {message_id} failed: {exc}") from exc
        message = _logged(item)
        return Applied(message=message, previous=message.status, moved=False)

    def count_moves(self, moved: Sequence[Applied]) -> None:
        by_run: dict[tuple[str, str, str, StepOf | None], Counter[tuple[str, str]]] = {}
        for a in moved:
            if not a.moved or a.previous == a.message.status:
                continue
            m = a.message
            counts = by_run.setdefault(_counts_of(m), Counter())
            counts[(m.channel, a.previous)] -= 1
            counts[(m.channel, m.status)] += 1
        for (brand_id, campaign_id, run_id, step), counts in by_run.items():
            self._add(brand_id, campaign_id, run_id, counts, step)

    def _add(
        self,
        brand_id: str,
        campaign_id: str,
        run_id: str,
        counts: Counter[tuple[str, str]],
        step: StepOf | None = None,
    ) -> None:
        changes = {pair: n for pair, n in counts.items() if n}
        if not changes:
            return
        names = {f"#c{i}": _counter(channel, status) for i, (channel, status) in enumerate(changes)}
        values = {f":v{i}": {"N": str(n)} for i, n in enumerate(changes.values())}
        shard = random.randrange(STATS_SHARDS)  # spreads the writes: a run's count is the sum of its shards
        try:
            self._client.update_item(
                TableName=self._table,
                Key={_PK: {"S": stats_pk(brand_id, campaign_id)}, _SK: {"S": _stats_sk(run_id, step, shard)}},
                UpdateExpression="ADD " + ", ".join(f"#c{i} :v{i}" for i in range(len(changes))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"counting the messages of run {run_id} failed: {exc}") from exc

    # ---- reads ------------------------------------------------------------------------------------------------

    def get_many(self, message_ids: Sequence[str]) -> dict[str, LoggedMessage]:
        items = self._batch_get([message_pk(i) for i in message_ids], MESSAGE_SK)
        return {message.message_id: message for message in map(_logged, items)}

    def _batch_get(self, pks: Sequence[str], sk: str) -> list[dict[str, Any]]:
        keys = [{_PK: {"S": pk}, _SK: {"S": sk}} for pk in dict.fromkeys(pks)]
        return batch_get(self._client, self._table, keys, "reading the message log")

    def counts(self, brand_id: str, campaign_id: str) -> dict[str, dict[str, dict[str, int]]]:
        return _summed(self._stats(brand_id, campaign_id), lambda run_id, _: run_id)

    def step_counts(self, brand_id: str, campaign_id: str) -> dict[StepOf, dict[str, dict[str, int]]]:
        return _summed(self._stats(brand_id, campaign_id), lambda _, step: step)

    def _stats(self, brand_id: str, campaign_id: str) -> list[dict[str, Any]]:
        return query_items(
            self._client, self._table, "#pk = :pk", {":pk": {"S": stats_pk(brand_id, campaign_id)}}, keys=(_PK, _SK)
        )

    def _get(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={_PK: {"S": pk}, _SK: {"S": MESSAGE_SK}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading {pk} failed: {exc}") from exc
        return response.get("Item")


def _summed(
    items: list[dict[str, Any]], key: Callable[[str, StepOf | None], K | None]
) -> dict[K, dict[str, dict[str, int]]]:
    """The counters items' `n_{channel}_{status}` summed per `key` (of an item's run and step; None: left out)."""
    out: dict[K, dict[str, dict[str, int]]] = {}
    for item in items:
        at = key(*_step_of(item[_SK]["S"]))
        if at is None:
            continue
        for name, value in item.items():
            if not name.startswith("n_"):
                continue
            channel, _, status = name[2:].rpartition("_")
            if status not in STATUSES:
                continue
            by_status = out.setdefault(at, {}).setdefault(channel, {})
            by_status[status] = by_status.get(status, 0) + int(value["N"])
    return {k: {ch: {s: n for s, n in st.items() if n} for ch, st in chans.items()} for k, chans in out.items()}


def _message_item(m: LoggedMessage) -> dict[str, Any]:
    item: dict[str, Any] = {
        _PK: {"S": message_pk(m.message_id)},
        _SK: {"S": MESSAGE_SK},
        "message_id": {"S": m.message_id},
        "brand_id": {"S": m.brand_id},
        "person_id": {"S": m.person_id},
        "campaign_id": {"S": m.campaign_id},
        "run_id": {"S": m.run_id},
        "step": {"S": m.step},
        "channel": {"S": m.channel},
        "status": {"S": m.status},
        "rank": {"N": str(RANK[m.status])},
        "sent_at": {"S": iso(m.sent_at)},
        f"at_{m.status}": {"S": iso(m.sent_at)},
        _TTL: {"N": str(int((m.sent_at + RETENTION).timestamp()))},
    }
    optional = (("provider", m.provider), ("provider_id", m.provider_id), ("code", m.code), ("variant", m.variant))
    for name, value in optional:
        if value:
            item[name] = {"S": value}
    return item


def _logged(item: dict[str, Any]) -> LoggedMessage:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    times = {s: parse_iso(item[f"at_{s}"]["S"]) for s in STATUSES if f"at_{s}" in item}
    return LoggedMessage(
        message_id=item["message_id"]["S"],
        brand_id=item["brand_id"]["S"],
        person_id=item["person_id"]["S"],
        campaign_id=item["campaign_id"]["S"],
        run_id=item["run_id"]["S"],
        step=item["step"]["S"],
        channel=item["channel"]["S"],
        status=item["status"]["S"],
        sent_at=parse_iso(item["sent_at"]["S"]),
        provider=text("provider"),
        provider_id=text("provider_id"),
        code=text("code"),
        times=times,
        variant=text("variant"),
    )


def _with_status(message: LoggedMessage, receipt: Receipt) -> LoggedMessage:
    times: dict[str, datetime] = dict(message.times or {})
    times.setdefault(receipt.status, receipt.at)
    return LoggedMessage(
        **{**message.__dict__, "status": receipt.status, "code": receipt.code or message.code, "times": times}
    )
