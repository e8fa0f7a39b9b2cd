"""SQS (fed by the bus rule "event received": each message a packed entry of one request's events of one brand) ->
resolve each event to one person; partial batch failures per message, a permanently bad event parked alone."""

from __future__ import annotations

from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.events import packed_updates
from cdp.identity.received import ReceivedData
from cdp.identity.service import resolve_batch_reads, resolve_event, settle
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.observability import logger, metrics, tracer
from cdp.settings import IdentitySettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part, parseable
from cdp.shared.envelope import BusEntry
from cdp.shared.ports import DeferredPublisher
from cdp.topology import IDENTITY_QUEUE


class ReceivedRecord(SqsRecordModel):
    body: Json[BusEntry[ReceivedData]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(IdentitySettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=ReceivedRecord, dead_letters=_dead_letters, max_receives=IDENTITY_QUEUE.max_receive_count
)


@cache
def _ports() -> tuple[DynamoIdentityStore, EventBridgePublisher]:
    settings = get_settings(IdentitySettings)
    return DynamoIdentityStore(settings.profiles_table), EventBridgePublisher(settings.event_bus_name)


def record_handler(record: ReceivedRecord, publisher: DeferredPublisher) -> None:
    store, _ = _ports()
    parts = record.body.detail.data.raw_events()
    each_part(_dead_letters(), record, parts, "events", lambda _, raw: resolve_one(parse_event(raw), store, publisher))


def resolve_one(event: CanonicalEvent, store: DynamoIdentityStore, publisher: DeferredPublisher) -> None:
    outcome = resolve_event(event, store, publisher)
    notable = outcome.merged_ids or outcome.split or outcome.quarantined or outcome.suppressed or not outcome.applied
    # INFO for what changes who is who (or was dropped or seen again); routine ones at DEBUG: a log line per event
    # would cost more than the event's own bus entry
    (logger.info if notable else logger.debug)(
        "event resolved",
        event_id=event.event_id,
        person_id=outcome.person_id,
        applied=outcome.applied,
        merged_ids=list(outcome.merged_ids),
        quarantined=list(outcome.quarantined),
        split=list(outcome.split),
        suppressed=outcome.suppressed,
    )
    if outcome.merged_ids:
        metrics.add_metric(name="PersonsMerged", unit="Count", value=len(outcome.merged_ids))
    if outcome.split:
        metrics.add_metric(name="PersonsSplit", unit="Count", value=len(outcome.split))
    if outcome.quarantined:
        metrics.add_metric(name="IdentifiersQuarantined", unit="Count", value=len(outcome.quarantined))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # An existing person's events are planned one after another and the person written once at the end; the
    # announcements of the whole batch go out together after that. If either fails, the invocation fails and
    # every record is redelivered: events found filed fold their person again, and are announced again.
    deferred = DeferredPublisher()
    store, publisher = _ports()
    with store.batch_reads(), store.deferred_writes():
        prefetch(store, event.get("Records") or [])
        response = process_partial_response(
            event=event,
            record_handler=partial(record_handler, publisher=deferred),
            processor=processor,
            context=context,
        )
        settle(store)  # the batch's persons, each written once (their events filed first)
    deferred.flush(publisher, pack=packed_updates)
    return response


def prefetch(store: DynamoIdentityStore, records: list[dict[str, Any]]) -> None:
    """Read the identifiers (and suppressions) of every event in the batch, then their persons, in one round each
    instead of one per event."""
    events = [e for r in parseable(ReceivedRecord, records) for e in r.body.detail.data.parseable()]
    resolve_batch_reads(events, store)
