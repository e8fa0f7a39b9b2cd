"""SQS (fed by the bus rule "journey": profile.updated, a batch's updates packed per entry; audience.entered and
lifecycle.changed from the tag engine; signal.received from POST /v1/signals) -> enter each person into the journeys
the signal triggers and move them on in those an event concerns (cdp.campaigns.journeys, cdp.campaigns.sweeps); a bad
update is parked alone with its reason."""

from __future__ import annotations

from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.campaigns.journeys import JourneyEngine, ProfileEvent, TagSignal
from cdp.campaigns.journeys_dynamodb import DynamoSweepStore, dynamo_journey_engine
from cdp.campaigns.sweeps import SignalReceived, on_signal_received
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import JourneySettings, get_settings
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part
from cdp.tags.changes import ProfileChangeRecord
from cdp.topology import AUDIENCE_ENTERED, JOURNEY_QUEUE, LIFECYCLE_CHANGED, SIGNAL_RECEIVED
from functions.budget_watch import count_low_pool


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(JourneySettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=ProfileChangeRecord, dead_letters=_dead_letters, max_receives=JOURNEY_QUEUE.max_receive_count
)


@cache
def _sweeps() -> DynamoSweepStore:
    return DynamoSweepStore(get_settings(JourneySettings).campaigns_table)


@cache
def engine() -> JourneyEngine:
    s = get_settings(JourneySettings)
    return dynamo_journey_engine(s.campaigns_table, s.profiles_table, s.event_bus_name, s.offers_table, count_low_pool)


def record_handler(record: ProfileChangeRecord) -> None:
    entry = record.body
    data = entry.detail.data
    parts = data.raw_changes()
    if entry.detail_type == SIGNAL_RECEIVED:
        received = SignalReceived.model_validate({**parts[0], "brand_id": data.brand_id})  # bad: parked
        _log(on_signal_received(engine(), _sweeps(), load_org(), received), signal=received.signal.kind)
        return
    if entry.detail_type in (AUDIENCE_ENTERED, LIFECYCLE_CHANGED):
        # brand_id is a field of the entry's data, the rest its extras; a bad one fails the record (parked)
        signal = TagSignal.model_validate({**parts[0], "brand_id": data.brand_id})
        trigger = signal.trigger(entry.detail_type)
        if trigger is not None:
            key = signal.key(*trigger)
            _log(engine().on_signal(signal.brand_id, signal.person_id, *trigger, key), signal=key)
        return

    def process(_: int, raw: dict[str, Any]) -> None:
        update = ProfileEvent.model_validate(raw)
        if not data.brand_id:
            raise ValueError("the profile update names no brand")  # parked with this reason
        happened = engine().on_event(data.brand_id, update.person_id, update.event_type, update.event_id, update.keys)
        _log(happened, event_id=update.event_id)

    each_part(_dead_letters(), record, parts, "updates", process)


def _log(happened: list[str], **context: Any) -> None:
    for what in happened:
        logger.info("journey", what=what, **context)
        metrics.add_metric(name="JourneyTransitions", unit="Count", value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    engine().refresh()  # a journey made live, paused or stopped counts from the next batch on
    return process_partial_response(
        event=event, record_handler=partial(record_handler), processor=processor, context=context
    )
