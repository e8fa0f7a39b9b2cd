"""SQS (fed by the rule "delivery events" on the account's default bus: SES and End User Messaging SMS delivery
events) -> archive each event as received, map it to canonical receipts (cdp.connectors.aws_delivery) and ingest them
like any channel's (dedupe, publish); an event that is not ours or cannot be read is parked with its reason."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.connectors.aws_delivery import ingest_delivery_event
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.observability import logger, metrics, tracer
from cdp.settings import DeliveryEventsSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters
from cdp.shared.time import utc_now
from cdp.topology import DELIVERY_EVENTS_QUEUE

_INGESTED: Counter[str] = Counter()  # one metric per invocation (a metric per record would flush mid-batch)


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(DeliveryEventsSettings).dead_letter_queue_url)


@cache
def _ports() -> tuple[S3RawArchive, DynamoDedupeLedger, EventBridgePublisher]:
    s = get_settings(DeliveryEventsSettings)
    return S3RawArchive(s.data_bucket), DynamoDedupeLedger(s.ledger_table), EventBridgePublisher(s.event_bus_name)


class DeliveryEventRecord(SqsRecordModel):
    body: str  # the EventBridge event as the rule's SQS target delivers it (read in record_handler)


processor = DeadLetteringProcessor(
    model=DeliveryEventRecord, dead_letters=_dead_letters, max_receives=DELIVERY_EVENTS_QUEUE.max_receive_count
)


def record_handler(record: DeliveryEventRecord) -> None:
    archive, ledger, publisher = _ports()
    body = record.body.encode()
    _INGESTED["accepted"] += ingest_delivery_event(body, record.messageId, archive, ledger, publisher, utc_now())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _INGESTED.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    metrics.add_metric(name="DeliveryEventsIngested", unit="Count", value=_INGESTED["accepted"])
    return response
