"""SQS (fed by the bus rule "loyalty": identity's resolved orders and returns of brands that keep a points
programme) -> earn or give back points, once per order and return (cdp.loyalty.service); a bad order is parked
alone with its reason."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

from cdp.identity.events import ResolvedOrder
from cdp.ingest.service import repacked
from cdp.loyalty.dynamodb import dynamo_loyalty_service
from cdp.loyalty.service import LoyaltyService
from cdp.observability import logger, metrics, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import LoyaltyEventsSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part
from cdp.shared.envelope import BusEntry
from cdp.shared.ports import DeferredPublisher
from cdp.topology import LOYALTY_QUEUE


class ResolvedOrders(BaseModel):
    brand_id: str
    orders: list[dict[str, Any]]


class LoyaltyRecord(SqsRecordModel):
    body: Json[BusEntry[ResolvedOrders]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(LoyaltyEventsSettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=LoyaltyRecord, dead_letters=_dead_letters, max_receives=LOYALTY_QUEUE.max_receive_count
)


_MADE = DeferredPublisher()  # the events a record's orders made, published packed once the record is done


@cache
def service() -> LoyaltyService:
    s = get_settings(LoyaltyEventsSettings)
    profiles = DynamoProfileStore(s.profiles_table)
    return dynamo_loyalty_service(s.offers_table, profiles, s.event_bus_name, publisher=_MADE)


@cache
def _bus() -> EventBridgePublisher:
    return EventBridgePublisher(get_settings(LoyaltyEventsSettings).event_bus_name)


def record_handler(record: LoyaltyRecord) -> None:
    moved = 0

    def apply(_: int, raw: dict[str, Any]) -> None:
        nonlocal moved
        for result in service().on_order(ResolvedOrder.model_validate(raw)):
            if result.new and result.points:
                logger.debug("points moved", program=result.program, points=result.points)
                moved += 1

    try:
        each_part(_dead_letters(), record, record.body.detail.data.orders, "orders", apply)
    finally:  # what was applied is announced even when a part failed (a retry re-sends the same event ids)
        _MADE.flush(_bus(), pack=repacked)
    if moved:
        metrics.add_metric(name="LoyaltyOrdersApplied", unit="Count", value=moved)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
