"""SQS (fed by the bus rule "message receipts": ingest's entries of the events that report on a message sent) -> move
each message's status in the message log and its run's counts (cdp.channels.receipts); a bad event is parked alone
with its reason, a receipt that overtook its message is kept for it."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from cdp.channels.messages import DynamoMessageLog
from cdp.channels.ports import Applied
from cdp.channels.receipts import apply_receipt
from cdp.identity.received import ReceivedData
from cdp.ingest.events import parse_event
from cdp.observability import logger, metrics, tracer
from cdp.settings import MessageReceiptsSettings, get_settings
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part
from cdp.shared.envelope import BusEntry
from cdp.shared.time import utc_now
from cdp.topology import RECEIPTS_QUEUE


class ReceiptsRecord(SqsRecordModel):
    body: Json[BusEntry[ReceivedData]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(MessageReceiptsSettings).dead_letter_queue_url)


@cache
def _log() -> DynamoMessageLog:
    return DynamoMessageLog(get_settings(MessageReceiptsSettings).ledger_table)


processor = DeadLetteringProcessor(
    model=ReceiptsRecord, dead_letters=_dead_letters, max_receives=RECEIPTS_QUEUE.max_receive_count
)


# What the invocation's records did, as one metric per invocation (a metric per record would flush mid-batch).
_MOVED: Counter[str] = Counter()


def record_handler(record: ReceiptsRecord) -> None:
    applied: list[Applied] = []
    outcomes: dict[str, int] = {}

    def apply(_: int, raw: dict[str, Any]) -> None:
        outcome = apply_receipt(parse_event(raw), _log(), applied, utc_now())
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    try:
        each_part(_dead_letters(), record, record.body.detail.data.raw_events(), "events", apply)
    finally:  # what moved before a failure is counted now (a redelivery finds it unchanged)
        _log().count_moves(applied)
    logger.info("receipts applied", outcomes=outcomes)
    _MOVED.update(outcomes)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _MOVED.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    metrics.add_metric(name="ReceiptsApplied", unit=MetricUnit.Count, value=_MOVED["moved"])
    return response
