"""SQS (fed by the bus rule "profile updated/merged") -> recompute the person's real-time tags."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

from cdp.observability import logger, metrics, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import TagSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters
from cdp.shared.envelope import BusEntry
from cdp.shared.time import utc_now
from cdp.tags.service import refresh_tags
from cdp.topology import TAG_QUEUE


class ProfileChange(BaseModel):
    person_id: str | None = None  # profile.updated
    survivor_id: str | None = None  # profile.merged

    @property
    def subject(self) -> str:
        subject = self.person_id or self.survivor_id
        if not subject:
            raise ValueError("profile event names no person")
        return subject


class ProfileChangeRecord(SqsRecordModel):
    body: Json[BusEntry[ProfileChange]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(TagSettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=ProfileChangeRecord, dead_letters=_dead_letters, max_receives=TAG_QUEUE.max_receive_count
)


@cache
def _ports() -> tuple[DynamoProfileStore, EventBridgePublisher]:
    settings = get_settings(TagSettings)
    return DynamoProfileStore(settings.profiles_table), EventBridgePublisher(settings.event_bus_name)


def record_handler(record: ProfileChangeRecord) -> None:
    store, publisher = _ports()
    changes = refresh_tags(record.body.detail.data.subject, store, store, publisher, utc_now())
    if changes:
        metrics.add_metric(name="TagChanges", unit="Count", value=len(changes))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
