"""SQS (fed by the bus rule "profile updated/merged") -> recompute what the event can change of the person's tags."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

from cdp.app.tag_engine import tag_engine
from cdp.observability import logger, metrics, tracer
from cdp.settings import TagUpdateSettings, get_settings
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters
from cdp.shared.envelope import BusEntry
from cdp.shared.time import utc_now
from cdp.tags.catalog import IDENTITY_CHANGED
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
def engine() -> TagEngine:
    return tag_engine(get_settings(TagUpdateSettings))[0]


def record_handler(record: ProfileChangeRecord) -> None:
    entry = record.body
    change = entry.detail.data
    outcome = engine().refresh(
        change.subject,
        change.trigger(entry.detail_type),
        utc_now(),
        cause=entry.id,
        redelivered=int(record.attributes.ApproximateReceiveCount) > 1,
        correlation_id=entry.detail.metadata.correlation_id,
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
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
