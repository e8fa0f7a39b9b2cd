"""The in-app inbox channel: a message is written to the person's inbox, which the brand's app pulls
(`GET /v1/inbox`, `cdp.app.inbox_api`) with a per-person token its backend obtains (`cdp.channels.inbox_tokens`).

The inbox lives in the LEDGER table, beside the message log (`cdp.channels.messages`):

    INBOX#{brand}#{person} / MSG#{message_id}    title (the template's subject), body, link, campaign, step,
                                                 sent_at, read_at / dismissed_at once the app said so,
                                                 delivered_reported / opened_reported once those receipts were
                                                 published; TTL `expires_at`
                                                 (30 days after it was sent)

The sort key is the message id, so a read or a dismissal is one keyed write; the list reads the person's whole
partition (a month of one person's messages, bounded by the brand's frequency caps; at most `MAX_LISTED` items are
read) and orders it newest first, which the unread count needs anyway. The send records a message `sent`; the app's
first list that shows it is its `message_delivered` receipt, and its read or dismissal its `message_opened` receipt
(`cdp.app.inbox_api`).

The address of an in-app message is the person id itself (like the webhook's): a person merged into another keeps
their partition, and the survivor's inbox shows both (`InboxChannel` writes under the id the send resolved).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.errors import StoreError
from cdp.observability import logger
from cdp.shared import aws
from cdp.shared.dynamo import query_items
from cdp.shared.time import iso, parse_iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROVIDER = "inapp"
RETENTION = timedelta(days=30)
MAX_LISTED = 1000  # items read per person partition (a month of one person's in-app messages is far fewer)
MESSAGE_PREFIX = "MSG#"
Receipt = Literal["delivered", "opened"]
_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"
# Where a tap may lead: https, or an app's own scheme (myapp://orders/1); never script, data or file URLs.
_LINK = re.compile(r"^(https://|[a-z][a-z0-9+.-]{1,31}://)\S+$", re.IGNORECASE)
_REFUSED_SCHEMES = ("javascript:", "data:", "vbscript:", "file:", "http:")


def inbox_pk(brand_id: str, person_id: str) -> str:
    return f"INBOX#{brand_id}#{person_id}"


def inbox_sk(message_id: str) -> str:
    return f"{MESSAGE_PREFIX}{message_id}"


@dataclass(frozen=True)
class InboxMessage:
    """One message in one person's inbox."""

    message_id: str
    brand_id: str
    person_id: str
    campaign_id: str
    step: str
    body: str
    sent_at: datetime
    expires_at: datetime
    title: str | None = None
    link: str | None = None
    read_at: datetime | None = None
    dismissed_at: datetime | None = None
    opened_reported: bool = False  # its message_opened receipt was published
    delivered_reported: bool = False  # its message_delivered receipt was published (the app listed it)

    @property
    def status(self) -> str:
        """unread, read, or dismissed (read and hidden from the list)."""
        if self.dismissed_at is not None:
            return "dismissed"
        return "unread" if self.read_at is None else "read"

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class Inbox(ABC):
    """The persons' inboxes (`DynamoInbox`)."""

    @abstractmethod
    def put(self, message: InboxMessage) -> bool:
        """Add the message once: True when it was added, False when it is there already (a retried send never
        resets what the app did with it)."""

    @abstractmethod
    def messages(self, brand_id: str, person_ids: Sequence[str]) -> list[InboxMessage]:
        """Every message of these persons' inboxes (expired ones not swept yet included), newest first."""

    @abstractmethod
    def find(self, brand_id: str, person_ids: Sequence[str], message_id: str) -> InboxMessage | None:
        """The message, when it is in the inbox of one of these persons."""

    @abstractmethod
    def mark(self, message: InboxMessage, at: datetime, dismiss: bool = False) -> InboxMessage | None:
        """Read (and with `dismiss`, dismissed) at `at`, unless it was already: the first times are kept. None when
        the message is gone (its expiry swept it since it was found)."""

    @abstractmethod
    def reported(self, message: InboxMessage, receipt: Receipt = "opened") -> None:
        """Its message_opened (or message_delivered) receipt was published."""


class DynamoInbox(Inbox):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or aws.client("dynamodb")

    def put(self, message: InboxMessage) -> bool:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_item(message),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": _PK},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"writing in-app message {message.message_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"writing in-app message {message.message_id} failed: {exc}") from exc
        return True

    def messages(self, brand_id: str, person_ids: Sequence[str]) -> list[InboxMessage]:
        found: list[InboxMessage] = []
        for person_id in dict.fromkeys(person_ids):
            pk = inbox_pk(brand_id, person_id)
            items = query_items(
                self._db,
                self._table,
                "#pk = :pk AND begins_with(#sk, :m)",
                {":pk": {"S": pk}, ":m": {"S": MESSAGE_PREFIX}},
                limit=MAX_LISTED,
                keys=(_PK, _SK),
            )
            if len(items) >= MAX_LISTED:
                logger.warning("an inbox holds more messages than are listed", person_id=person_id, read=len(items))
            found.extend(_message(item) for item in items)
        return sorted(found, key=lambda m: (m.sent_at, m.message_id), reverse=True)

    def find(self, brand_id: str, person_ids: Sequence[str], message_id: str) -> InboxMessage | None:
        for person_id in dict.fromkeys(person_ids):
            key = {_PK: {"S": inbox_pk(brand_id, person_id)}, _SK: {"S": inbox_sk(message_id)}}
            try:
                item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"reading in-app message {message_id} failed: {exc}") from exc
            if item is not None:
                return _message(item)
        return None

    def mark(self, message: InboxMessage, at: datetime, dismiss: bool = False) -> InboxMessage | None:
        update = "SET read_at = if_not_exists(read_at, :t)"
        if dismiss:
            update += ", dismissed_at = if_not_exists(dismissed_at, :t)"
        try:
            new = self._db.update_item(
                TableName=self._table,
                Key=_key(message),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": _PK},
                ExpressionAttributeValues={":t": {"S": iso(at)}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None  # swept by its TTL since it was read
            raise StoreError(f"marking in-app message {message.message_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"marking in-app message {message.message_id} failed: {exc}") from exc
        return _message(new)

    def reported(self, message: InboxMessage, receipt: Receipt = "opened") -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(message),
                UpdateExpression=f"SET {receipt}_reported = :yes",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": _PK},
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # swept meanwhile: nothing is left to mark
            raise StoreError(f"marking in-app message {message.message_id} reported failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"marking in-app message {message.message_id} reported failed: {exc}") from exc


class InboxChannel(Channel):
    """Delivers a message into the person's inbox (`Inbox`): accepted once it is written (`provider` inapp, the
    provider id our message id). A write that failed is a transient refusal (the send retries it: the write is
    idempotent); a link that is neither https nor an app's own scheme is refused for good."""

    name: ChannelName = "inapp"

    def __init__(self, inbox: Inbox, clock: Callable[[], datetime] = utc_now, retention: timedelta = RETENTION) -> None:
        self._inbox = inbox
        self._clock = clock
        self._retention = retention

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if message.link is not None and not safe_link(message.link):
            raise DeliveryRejected(
                f"in-app message {message.message_id}: its link must be https or the app's own scheme",
                code="invalid_link",
                permanent=True,
            )
        if not message.brand_id:
            raise DeliveryRejected(
                f"in-app message {message.message_id} names no brand", code="no_sender", permanent=True
            )
        accepted_at = self._clock()
        sent_at = message.created_at.astimezone(UTC)
        entry = InboxMessage(
            message_id=message.message_id,
            brand_id=message.brand_id,
            person_id=message.person_id,  # an in-app message's address is the person id itself
            campaign_id=message.campaign_id,
            step=message.step,
            title=message.subject,
            body=message.body,
            link=message.link,
            sent_at=sent_at,
            expires_at=sent_at + self._retention,
        )
        try:
            self._inbox.put(entry)
        except StoreError as exc:
            raise DeliveryRejected(
                f"in-app message {message.message_id} not written to the inbox: {exc}", code="store_unavailable"
            ) from None
        return DeliveryReceipt(
            message_id=message.message_id,
            channel=self.name,
            provider=PROVIDER,
            provider_id=message.message_id,
            accepted_at=accepted_at,
        )


def safe_link(link: str) -> bool:
    """https, or an app's own scheme (`myapp://orders/1`); never script, data, file or plain http URLs."""
    lowered = link.strip().lower()
    return bool(_LINK.match(link)) and not lowered.startswith(_REFUSED_SCHEMES) and len(link) <= 1024


def _key(message: InboxMessage) -> dict[str, Any]:
    return {_PK: {"S": inbox_pk(message.brand_id, message.person_id)}, _SK: {"S": inbox_sk(message.message_id)}}


def _item(m: InboxMessage) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(m),
        "message_id": {"S": m.message_id},
        "brand_id": {"S": m.brand_id},
        "person_id": {"S": m.person_id},
        "campaign_id": {"S": m.campaign_id},
        "step": {"S": m.step},
        "body": {"S": m.body},
        "sent_at": {"S": iso(m.sent_at)},
        _TTL: {"N": str(int(m.expires_at.timestamp()))},
    }
    for name, value in (("title", m.title), ("link", m.link)):
        if value:
            item[name] = {"S": value}
    return item


def _message(item: dict[str, Any]) -> InboxMessage:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value and "S" in value else None

    def when(name: str) -> datetime | None:
        value = text(name)
        return parse_iso(value) if value else None

    return InboxMessage(
        message_id=item["message_id"]["S"],
        brand_id=item["brand_id"]["S"],
        person_id=item["person_id"]["S"],
        campaign_id=item["campaign_id"]["S"],
        step=item["step"]["S"],
        body=item["body"]["S"],
        sent_at=parse_iso(item["sent_at"]["S"]),
        expires_at=datetime.fromtimestamp(int(item[_TTL]["N"]), UTC),
        title=text("title"),
        link=text("link"),
        read_at=when("read_at"),
        dismissed_at=when("dismissed_at"),
        opened_reported=bool(item.get("opened_reported", {}).get("BOOL", False)),
        delivered_reported=bool(item.get("delivered_reported", {}).get("BOOL", False)),
    )
