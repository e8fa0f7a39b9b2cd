"""SQS (fed by the bus rule "profile updated/merged") -> recompute what the event can change of the person's tags."""

from __future__ import annotations

from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

from cdp.app.tag_engine import tag_engine
from cdp.observability import logger, metrics, tracer
from cdp.settings import TagUpdateSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters
from cdp.shared.envelope import BusEntry
from cdp.shared.ports import DeferredPublisher
from cdp.shared.time import utc_now
from cdp.tags.catalog import IDENTITY_CHANGED
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.service import TagEngine
from cdp.topology import PROFILE_MERGED, TAG_QUEUE


class ProfileChange(BaseModel):
    person_id: str | None = None  # profile.updated
    event_type: str | None = None  # profile.updated: the canonical event type, or identity_changed
    survivor_id: str | None = None  # profile.merged

    @property
    def subject(self) -> str:
        subject = self.person_id or self.survivor_id
        if not subject:
            raise ValueError("profile event names no person")
        return subject

    def trigger(self, detail_type: str) -> str:
        if detail_type == PROFILE_MERGED or not self.event_type:
            return IDENTITY_CHANGED
        return self.event_type


class ProfileChangeRecord(SqsRecordModel):
    body: Json[BusEntry[ProfileChange]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(TagUpdateSettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=ProfileChangeRecord, dead_letters=_dead_letters, max_receives=TAG_QUEUE.max_receive_count
)


@cache
def _wired() -> tuple[TagEngine, DynamoTagStore]:
    return tag_engine(get_settings(TagUpdateSettings))


def engine() -> TagEngine:
    return _wired()[0]


def stores() -> DynamoTagStore:
    return _wired()[1]


@cache
def publisher() -> EventBridgePublisher:
    return EventBridgePublisher(get_settings(TagUpdateSettings).event_bus_name)


def record_handler(record: ProfileChangeRecord, publisher: DeferredPublisher) -> None:
    entry = record.body
    change = entry.detail.data
    outcome = engine().refresh(
        change.subject,
        change.trigger(entry.detail_type),
        utc_now(),
        cause=entry.id,
        redelivered=int(record.attributes.ApproximateReceiveCount) > 1,
        correlation_id=entry.detail.metadata.correlation_id,
        publisher=publisher,
    )
    if outcome.skipped:
        metrics.add_metric(name="TagUpdatesSkipped", unit="Count", value=1)
    if outcome.changes:
        metrics.add_metric(name="TagChanges", unit="Count", value=len(outcome.changes))
    if outcome.audience_changes:
        metrics.add_metric(name="AudienceTransitions", unit="Count", value=outcome.audience_changes)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The batch's persons are read in one round up front (and kept until each is written); the tag changes of the
    # whole batch are published together at the end: if that fails the invocation fails, and every record is
    # redelivered and announces what it wrote (refresh looks its changes up by cause on a redelivery).
    deferred = DeferredPublisher()
    store = stores()
    with store.batch_reads():
        store.get_many(subjects(event.get("Records") or []))
        response = process_partial_response(
            event=event,
            record_handler=partial(record_handler, publisher=deferred),
            processor=processor,
            context=context,
        )
    deferred.flush(publisher())
    return response


def subjects(records: list[dict[str, Any]]) -> set[str]:
    """The persons of a batch whose change can move a tag (an event type no rule reads costs no read at all);
    records that do not parse are left to the processor, which dead-letters them."""
    rules = engine().rules()
    out = set()
    for raw in records:
        try:
            entry = ProfileChangeRecord.model_validate(raw).body
            if not rules.select(entry.detail.data.trigger(entry.detail_type)).empty:
                out.add(entry.detail.data.subject)
        except ValueError:  # pydantic's ValidationError, or a change naming no person
            continue
    return out
