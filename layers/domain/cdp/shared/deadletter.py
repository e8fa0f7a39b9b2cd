"""Dead letters with their reason, and redrive.

A bus consumer parks a message in its queue's DLQ itself, with the error as message attributes, when the failure is
permanent (the message can never be processed: it does not parse, or it breaks a domain rule) or when the last
allowed receive failed. Anything else is reported as a partial batch failure and retried by SQS. (A consumer that
crashes or times out is moved by SQS's own redrive policy after `max_receive_count`: those arrive without a reason.)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field, ValidationError

from cdp.errors import InvalidInputError, StoreError
from cdp.observability import logger
from cdp.shared.aws import client as default_client
from cdp.shared.safe_json import MAX_JSON_DEPTH
from cdp.shared.safe_json import loads as safe_loads
from cdp.shared.time import iso, utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.base import FailureResponse, SuccessResponse
    from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo
    from mypy_boto3_sqs import SQSClient

ATTR_ERROR_TYPE = "cdp-error-type"
ATTR_ERROR = "cdp-error"
ATTR_PERMANENT = "cdp-permanent"
ATTR_RECEIVES = "cdp-receive-count"
ATTR_FAILED_AT = "cdp-failed-at"
ATTR_SOURCE_QUEUE = "cdp-source-queue"
ATTR_BRAND = "cdp-brand-id"  # the dead letters of every brand share one queue: operators see their brand's only
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    InvalidInputError,
    ValueError,
    TypeError,
    KeyError,
)
MAX_REASON = 1000
MAX_PEEK = 1000


class DeadLetterReason(BaseModel):
    error_type: str
    error: str
    permanent: bool
    receive_count: int
    failed_at: datetime
    source_queue: str
    brand_id: str | None = None

    def attributes(self) -> dict[str, Any]:
        values = {
            ATTR_ERROR_TYPE: self.error_type,
            ATTR_ERROR: self.error[:MAX_REASON] or "(no message)",
            ATTR_PERMANENT: "true" if self.permanent else "false",
            ATTR_RECEIVES: str(self.receive_count),
            ATTR_FAILED_AT: iso(self.failed_at),
            ATTR_SOURCE_QUEUE: self.source_queue,
            **({ATTR_BRAND: self.brand_id} if self.brand_id else {}),
        }
        return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any]) -> DeadLetterReason | None:
        def value(name: str) -> str | None:
            entry = attributes.get(name) or {}
            return entry.get("StringValue") or entry.get("stringValue")

        if value(ATTR_ERROR_TYPE) is None:
            return None
        return cls(
            error_type=value(ATTR_ERROR_TYPE) or "",
            error=value(ATTR_ERROR) or "",
            permanent=value(ATTR_PERMANENT) == "true",
            receive_count=int(value(ATTR_RECEIVES) or 0),
            failed_at=value(ATTR_FAILED_AT) or utc_now(),
            source_queue=value(ATTR_SOURCE_QUEUE) or "",
            brand_id=value(ATTR_BRAND),
        )


def brand_of_message(body: str) -> str | None:
    """The brand a queued bus event belongs to (`detail.data.brand_id`, or its canonical event's), if it says."""
    try:
        message = safe_loads(body, limit=MAX_JSON_DEPTH + 8)  # an accepted event nested 32 deep, in its envelope
    except InvalidInputError:
        return None
    detail = message.get("detail") if isinstance(message, dict) else None
    data = detail.get("data") if isinstance(detail, dict) else None
    if not isinstance(data, dict):
        return None
    event = data.get("event")
    if event is None and isinstance(data.get("events"), list) and data["events"]:
        event = data["events"][0]  # a packed entry: every event of it is of one brand
    brand = data.get("brand_id") or (event.get("brand_id") if isinstance(event, dict) else None)
    return brand if isinstance(brand, str) and 0 < len(brand) <= 128 else None  # a brand id is a Token


def each_part(
    dead_letters: DeadLetters,
    record: SqsRecordModel,
    parts: Sequence[dict[str, Any]],
    field: str,
    process: Callable[[int, dict[str, Any]], None],
) -> None:
    """Process the parts of a packed bus entry (`detail.data.<field>`: a batch's events, or its profile updates) one
    by one (`each_group` with a group per part)."""
    groups = [[index] for index in range(len(parts))]
    each_group(dead_letters, record, parts, groups, field, lambda group: process(group[0], parts[group[0]]))


def each_group(
    dead_letters: DeadLetters,
    record: SqsRecordModel,
    parts: Sequence[dict[str, Any]],
    groups: Sequence[Sequence[int]],
    field: str,
    process: Callable[[Sequence[int]], None],
) -> None:
    """Process the parts of a packed bus entry in groups (indexes into `parts`: e.g. one person's changes, handled
    together). A group failing for good is parked alone, as the entry carrying only its parts, with its reason and
    brand, while the others go on: a bad part never holds back the good ones sent with it. A group of every part
    fails the message whole (the processor parks it as it is); any other failure fails the message, and SQS
    redelivers it."""
    for group in groups:
        try:
            process(group)
        except PERMANENT_ERRORS as exc:
            if len(group) == len(parts):
                raise
            entry = cast(BaseModel, record.body).model_dump(mode="json", by_alias=True)  # the parsed bus entry
            body = entry_with_only(entry, field, [parts[index] for index in group])
            _park_part(dead_letters, record, body, exc)


def entry_with_only(entry: dict[str, Any], field: str, raws: Sequence[dict[str, Any]]) -> str:
    """A bus entry (as delivered, JSON-ready) carrying only the parts `raws` under `field`: what its redrive
    delivers."""
    data = {"brand_id": entry["detail"]["data"].get("brand_id"), field: list(raws)}
    return json.dumps({**entry, "detail": {**entry["detail"], "data": data}}, separators=(",", ":"))


def _park_part(dead_letters: DeadLetters, record: SqsRecordModel, body: str, error: BaseException) -> None:
    reason = DeadLetterReason(
        error_type=type(error).__name__,
        error=str(error),
        permanent=True,
        receive_count=int(record.attributes.ApproximateReceiveCount or "1"),
        failed_at=utc_now(),
        source_queue=str(getattr(record, "eventSourceARN", "") or ""),
        brand_id=brand_of_message(body),
    )
    dead_letters.park(body, reason)
    logger.error(
        "part of a message dead-lettered",
        message_id=record.messageId,
        error_type=reason.error_type,
        error=reason.error[:300],
        permanent=True,
    )


class DeadLetters(ABC):
    @abstractmethod
    def park(self, body: str, reason: DeadLetterReason) -> None:
        """Put a message in the dead-letter queue with its reason."""


class SqsDeadLetters(DeadLetters):
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._url = queue_url
        self._sqs: SQSClient = client or default_client("sqs")

    def park(self, body: str, reason: DeadLetterReason) -> None:
        try:
            self._sqs.send_message(QueueUrl=self._url, MessageBody=body, MessageAttributes=reason.attributes())
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"parking a message in {self._url} failed: {exc}") from exc


RecordT = TypeVar("RecordT", bound=SqsRecordModel)


def parseable(model: type[RecordT], records: Iterable[Any]) -> list[RecordT]:
    """The records of an SQS batch that parse as `model`, for a batch's up-front reads; the others are left to the
    processor, which dead-letters them with their reason."""
    out: list[RecordT] = []
    for raw in records:
        try:
            out.append(model.model_validate(raw))
        except ValidationError:
            continue
    return out


class DeadLetteringProcessor(BatchProcessor):
    """Powertools' SQS batch processor that parks permanent and last-attempt failures with their reason."""

    def __init__(self, model: type[SqsRecordModel], dead_letters: Callable[[], DeadLetters], max_receives: int):
        super().__init__(event_type=EventType.SQS, model=model)
        self._dead_letters = dead_letters
        self._max_receives = max_receives

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse | SuccessResponse:
        error = exception[1]
        raw = self._raw(record)
        receives = int((raw.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        permanent = isinstance(error, PERMANENT_ERRORS)
        if raw and (permanent or receives >= self._max_receives):
            reason = DeadLetterReason(
                error_type=type(error).__name__ if error else "Unknown",
                error=str(error),
                permanent=permanent,
                receive_count=receives,
                failed_at=utc_now(),
                source_queue=str(raw.get("eventSourceARN", "")),
                brand_id=brand_of_message(str(raw.get("body", ""))),
            )
            try:
                self._dead_letters().park(str(raw.get("body", "")), reason)
            except StoreError:
                logger.exception("could not park a failed message; SQS will retry it")
                return super().failure_handler(record, exception)
            logger.error(
                "message dead-lettered",
                message_id=raw.get("messageId"),
                error_type=reason.error_type,
                error=reason.error[:300],
                permanent=permanent,
                receive_count=receives,
            )
            return self.success_handler(record, None)
        return super().failure_handler(record, exception)

    def _raw(self, record: Any) -> dict[str, Any]:
        message_id = getattr(record, "messageId", None) or getattr(record, "message_id", None)
        for raw in self.records:
            if raw.get("messageId") == message_id:
                return dict(raw)
        return {}


# ---- redrive --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receipt_handle: str
    reason: DeadLetterReason | None  # None: moved by SQS's redrive policy (the consumer crashed or timed out)

    @property
    def brand_id(self) -> str | None:
        return (self.reason.brand_id if self.reason else None) or brand_of_message(self.body)


class DeadLetterQueue(ABC):
    @abstractmethod
    def peek(self, limit: int) -> list[DeadLetter]:
        """Up to `limit` messages, hidden for a short while (a redrive deletes them; a listing lets them reappear)."""

    @abstractmethod
    def release(self, letters: list[DeadLetter]) -> None:
        """Make peeked messages visible again (a listing, or a dry run)."""

    @abstractmethod
    def redrive(self, letter: DeadLetter) -> None:
        """Send the body back to the source queue, then delete it from the DLQ."""


class RedriveRequest(BaseModel):
    queue: str = Field(description="identity-merge, tag-update, journey, send, offer-events or loyalty")
    limit: int = Field(default=100, ge=1, le=1000)


class RedriveSummary(BaseModel):
    queue: str
    redriven: int = 0
    listed: list[dict[str, Any]] = []


def redrive_all(
    dlq: DeadLetterQueue,
    queue: str,
    limit: int = 1000,
    dry_run: bool = False,
    visible: Callable[[str | None], bool] | None = None,
) -> RedriveSummary:
    """Re-drive (or, with dry_run, only list) up to `limit` dead letters; consumers apply each event id once, so a
    message that had partly succeeded before failing is safe to process again.

    `visible(brand_id)` says which letters the caller may see (an operator of one brand sees that brand's only);
    the others are put back untouched and not mentioned.
    """
    summary = RedriveSummary(queue=queue)
    letters = dlq.peek(limit if visible is None else MAX_PEEK)  # others' letters do not use up a brand's limit
    shown = [letter for letter in letters if visible is None or visible(letter.brand_id)][:limit]
    chosen = {letter.message_id for letter in shown}
    hidden = [letter for letter in letters if letter.message_id not in chosen]
    for letter in shown:
        summary.listed.append(
            {
                "message_id": letter.message_id,
                "brand_id": letter.brand_id,
                "reason": letter.reason.model_dump(mode="json") if letter.reason else None,
                "body_bytes": len(letter.body),
            }
        )
        if not dry_run:
            dlq.redrive(letter)
            summary.redriven += 1
    dlq.release(hidden + shown if dry_run else hidden)
    return summary


class SqsDeadLetterQueue(DeadLetterQueue):
    def __init__(self, dlq_url: str, source_url: str, client: SQSClient | None = None) -> None:
        self._dlq = dlq_url
        self._source = source_url
        self._sqs: SQSClient = client or default_client("sqs")

    def peek(self, limit: int) -> list[DeadLetter]:
        seen: dict[str, DeadLetter] = {}
        while len(seen) < limit:
            batch = self._sqs.receive_message(
                QueueUrl=self._dlq,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                break
            for m in batch:
                seen.setdefault(
                    m["MessageId"],
                    DeadLetter(
                        message_id=m["MessageId"],
                        body=m["Body"],
                        receipt_handle=m["ReceiptHandle"],
                        reason=DeadLetterReason.from_attributes(dict(m.get("MessageAttributes") or {})),
                    ),
                )
        return list(seen.values())

    def release(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            self._sqs.change_message_visibility(
                QueueUrl=self._dlq, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
            )

    def redrive(self, letter: DeadLetter) -> None:
        self._sqs.send_message(QueueUrl=self._source, MessageBody=letter.body)
        self._sqs.delete_message(QueueUrl=self._dlq, ReceiptHandle=letter.receipt_handle)
