"""The send idempotency ledger on the LEDGER table: one record per (campaign, step, person), written before the send.

State machine of a record:  (none) --claim--> pending --mark_sent--> sent
                                            pending --lease expired, claim--> pending (taken over, new attempt id)
                                            pending --release--> pending with an expired lease (retry at once)
                                            pending --mark_failed--> failed (refused for good: never retried;
                                                                      or a journey step kept back by the caps)
A record that is "sent" (or "failed") is never claimed again, so a retried batch never sends twice to the same person.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.contact import ContactLedger, PlannedSend, Refusal, refusal
from cdp.channels.ports import DEFAULT_LEASE, Claim, ClaimOutcome, SendKey, SendLedger
from cdp.errors import StoreError
from cdp.observability import logger
from cdp.org import FrequencyCap
from cdp.shared import aws
from cdp.shared.time import iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SEND_SK = "SEND"
PENDING = "pending"
SENT = "sent"
FAILED = "failed"
RETENTION = timedelta(days=400)  # long enough that no rerun of a campaign outlives its records

_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def send_pk(key: SendKey) -> str:
    return f"SEND#{key.campaign_id}#{key.step}#{key.person_id}"


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoSendLedger(SendLedger):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")

    def _key(self, key: SendKey) -> dict[str, Any]:
        return {_PK: {"S": send_pk(key)}, _SK: {"S": SEND_SK}}

    def claim(
        self, key: SendKey, message_id: str, run_id: str, now: datetime, lease: timedelta = DEFAULT_LEASE
    ) -> Claim:
        attempt_id = uuid.uuid4().hex
        item = {
            **self._key(key),
            "status": {"S": PENDING},
            "attempt_id": {"S": attempt_id},
            "attempts": {"N": "1"},
            "lease_until_ms": {"N": _ms(now + lease)},
            "message_id": {"S": message_id},
            "run_id": {"S": run_id},
            "claimed_at": {"S": iso(now)},
            _TTL: {"N": str(int((now + RETENTION).timestamp()))},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression=f"attribute_not_exists({_PK})")
            return Claim(ClaimOutcome.CLAIMED, attempt_id)
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise StoreError(f"ledger claim failed for {send_pk(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"ledger claim failed for {send_pk(key)}: {exc}") from exc
        return self._claim_existing(key, run_id, now, lease, attempt_id)

    def _claim_existing(self, key: SendKey, run_id: str, now: datetime, lease: timedelta, attempt_id: str) -> Claim:
        current = self._read(key)
        if current is None:  # deleted (TTL) between the two calls: a fresh claim is safe next time
            return Claim(ClaimOutcome.IN_FLIGHT)
        if current["status"]["S"] == SENT:
            return Claim(ClaimOutcome.ALREADY_SENT)
        if current["status"]["S"] == FAILED:
            return Claim(ClaimOutcome.FAILED_FOR_GOOD)
        if int(current["lease_until_ms"]["N"]) > int(_ms(now)):
            return Claim(ClaimOutcome.IN_FLIGHT)
        # The previous attempt crashed (or released): take over, but only if nobody else did since we read.
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="SET attempt_id = :new, lease_until_ms = :lease, run_id = :run, claimed_at = :at "
                "ADD attempts :one",
                ConditionExpression="#status = :pending AND attempt_id = :old",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":new": {"S": attempt_id},
                    ":old": current["attempt_id"],
                    ":lease": {"N": _ms(now + lease)},
                    ":run": {"S": run_id},
                    ":at": {"S": iso(now)},
                    ":one": {"N": "1"},
                    ":pending": {"S": PENDING},
                },
            )
            return Claim(ClaimOutcome.CLAIMED, attempt_id, taken_over=True)
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise StoreError(f"ledger takeover failed for {send_pk(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"ledger takeover failed for {send_pk(key)}: {exc}") from exc
        # Lost the race: another attempt took it over or finished it.
        latest = self._read(key)
        sent = latest is not None and latest["status"]["S"] == SENT
        return Claim(ClaimOutcome.ALREADY_SENT if sent else ClaimOutcome.IN_FLIGHT)

    def mark_sent(self, key: SendKey, attempt_id: str, provider_id: str, now: datetime) -> None:
        # Not conditioned on the attempt id: the provider accepted *this* message, so "sent" is the truth even if a
        # slow attempt lost its lease meanwhile; the condition only keeps the first provider id of a sent record.
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="SET #status = :sent, provider_id = :pid, sent_at = :at, sent_by = :attempt "
                "REMOVE lease_until_ms",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":sent": {"S": SENT},
                    ":pending": {"S": PENDING},
                    ":pid": {"S": provider_id},
                    ":at": {"S": iso(now)},
                    ":attempt": {"S": attempt_id},
                },
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise StoreError(f"ledger mark_sent failed for {send_pk(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"ledger mark_sent failed for {send_pk(key)}: {exc}") from exc

    def release(self, key: SendKey, attempt_id: str, now: datetime) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="SET lease_until_ms = :now",
                ConditionExpression="#status = :pending AND attempt_id = :mine",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": _ms(now)},
                    ":pending": {"S": PENDING},
                    ":mine": {"S": attempt_id},
                },
            )
        except ClientError as exc:
            if not _conditional_failed(exc):  # someone else owns it now: nothing to release
                raise StoreError(f"ledger release failed for {send_pk(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"ledger release failed for {send_pk(key)}: {exc}") from exc

    def mark_failed(self, key: SendKey, attempt_id: str, code: str, now: datetime) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="SET #status = :failed, failure = :code, failed_at = :at REMOVE lease_until_ms",
                ConditionExpression="#status = :pending AND attempt_id = :mine",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": FAILED},
                    ":pending": {"S": PENDING},
                    ":mine": {"S": attempt_id},
                    ":code": {"S": code},
                    ":at": {"S": iso(now)},
                },
            )
        except ClientError as exc:
            if not _conditional_failed(exc):  # taken over meanwhile: the other attempt decides
                raise StoreError(f"ledger mark_failed failed for {send_pk(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"ledger mark_failed failed for {send_pk(key)}: {exc}") from exc

    def _read(self, key: SendKey) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key=self._key(key), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"ledger read failed for {send_pk(key)}: {exc}") from exc
        return response.get("Item")

    def record(self, key: SendKey) -> dict[str, Any] | None:
        """The raw ledger record (for operators and tests)."""
        return self._read(key)


CONTACT_SK = "CONTACT"
CONTACT_ATTEMPTS = 8  # concurrent senders to one person: each retry reads the other's send first


def contact_pk(brand_id: str, person_id: str) -> str:
    return f"CONTACT#{brand_id}#{person_id}"


class DynamoContactLedger(ContactLedger):
    """A person's campaign sends of the last `per_days` of the longest cap, as `channel|time` strings in one item,
    replaced with a version check: two senders that read the same history cannot both add to it."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")

    def reserve(
        self,
        brand_id: str,
        person_id: str,
        channel: str,
        at: datetime,
        caps: Sequence[FrequencyCap],
        ahead: Sequence[PlannedSend] = (),
    ) -> Refusal | None:
        keep = timedelta(days=max(c.per_days for c in caps))
        for _ in range(CONTACT_ATTEMPTS):
            history, version = self._read(brand_id, person_id)
            recent = [(c, when) for c, when in history if when > at - keep]
            refused = refusal(recent, channel, at, caps, ahead)
            if refused is not None:
                return refused
            if self._write(brand_id, person_id, [*recent, (channel, at)], version, at + keep):
                return None
        raise StoreError(f"the contact history of {person_id} kept changing: {CONTACT_ATTEMPTS} attempts")

    def release(self, brand_id: str, person_id: str, channel: str, at: datetime) -> None:
        sent = (channel, parse_iso(iso(at)))  # as stored: to the millisecond
        for _ in range(CONTACT_ATTEMPTS):
            history, version = self._read(brand_id, person_id)
            if sent not in history:
                return
            kept = list(history)
            kept.remove(sent)
            if self._write(brand_id, person_id, kept, version, at):
                return
        logger.warning("a released send stays counted in the contact history", person_id=person_id)

    def history(self, brand_id: str, person_id: str) -> list[tuple[str, datetime]]:
        return self._read(brand_id, person_id)[0]

    def _read(self, brand_id: str, person_id: str) -> tuple[list[tuple[str, datetime]], int]:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={_PK: {"S": contact_pk(brand_id, person_id)}, _SK: {"S": CONTACT_SK}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading the contact history of {person_id} failed: {exc}") from exc
        if not item:
            return [], 0
        sends = []
        for entry in item.get("sends", {}).get("L", []):
            channel, _, when = entry["S"].partition("|")
            sends.append((channel, parse_iso(when)))
        return sends, int(item["ver"]["N"])

    def _write(
        self, brand_id: str, person_id: str, sends: list[tuple[str, datetime]], version: int, expires: datetime
    ) -> bool:
        item = {
            _PK: {"S": contact_pk(brand_id, person_id)},
            _SK: {"S": CONTACT_SK},
            "sends": {"L": [{"S": f"{channel}|{iso(when)}"} for channel, when in sends]},
            "ver": {"N": str(version + 1)},
            _TTL: {"N": str(int(expires.timestamp()) + 86_400)},
        }
        condition = "attribute_not_exists(#pk)" if version == 0 else "ver = :ver"
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if version == 0:
            kwargs["ExpressionAttributeNames"] = {"#pk": _PK}
        else:
            kwargs["ExpressionAttributeValues"] = {":ver": {"N": str(version)}}
        try:
            self._client.put_item(**kwargs)
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise StoreError(f"writing the contact history of {person_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"writing the contact history of {person_id} failed: {exc}") from exc
        return True
