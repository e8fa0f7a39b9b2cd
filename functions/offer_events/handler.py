"""SQS (fed by the bus rule "coupon used": ingest's entries of accepted orders and coupon redemptions that name an
issued coupon's code) -> redeem the code for the order, once (cdp.offers.service); a bad event is parked alone with
its reason."""

from __future__ import annotations

from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from cdp.identity.received import ReceivedData
from cdp.ingest.events import parse_event
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import dynamo_offer_service
from cdp.offers.service import OfferService
from cdp.offers.wallet import RedemptionError
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import OfferEventsSettings, get_settings
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part
from cdp.shared.envelope import BusEntry
from cdp.topology import OFFER_EVENTS_QUEUE
from functions.budget_watch import count_low_pool


class CouponUsedRecord(SqsRecordModel):
    body: Json[BusEntry[ReceivedData]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(OfferEventsSettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=CouponUsedRecord, dead_letters=_dead_letters, max_receives=OFFER_EVENTS_QUEUE.max_receive_count
)


@cache
def service() -> OfferService:
    s = get_settings(OfferEventsSettings)
    profiles = DynamoProfileStore(s.profiles_table)
    return dynamo_offer_service(s.offers_table, profiles, s.event_bus_name, watch=count_low_pool)  # promotions


def record_handler(record: CouponUsedRecord) -> None:
    parts = record.body.detail.data.raw_events()

    def redeem(_: int, raw: dict[str, Any]) -> None:
        event = parse_event(raw)
        try:
            happened = service().redeem_from(event)
        except RedemptionError as exc:  # never right on a retry: parked alone, with its reason
            raise ValueError(f"event {event.event_id}: {exc}") from exc
        if happened:
            logger.info("coupon redeemed", what=happened, event_id=event.event_id)
            metrics.add_metric(name="CouponsRedeemed", unit="Count", value=1)

    each_part(_dead_letters(), record, parts, "events", redeem)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=partial(record_handler), processor=processor, context=context
    )
