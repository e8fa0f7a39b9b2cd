"""SQS (fed by the bus rule "profile updated/merged", a batch's updates packed per entry) -> recompute what the
changes can change of each person's tags, once per person per entry; a permanently bad change is parked alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.app.tag_engine import tag_engine
from cdp.observability import logger, metrics, tracer
from cdp.settings import TagUpdateSettings, get_settings
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_group, each_part, parseable
from cdp.shared.ports import DeferredPublisher
from cdp.shared.time import utc_now
from cdp.tags.changes import ProfileChange, ProfileChangeRecord
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.service import TagEngine
from cdp.topology import TAG_QUEUE


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


def record_handler(
    record: ProfileChangeRecord, publisher: DeferredPublisher, tally: Counter[str] | None = None
) -> None:
    entry = record.body
    parts = entry.detail.data.raw_changes()
    changes: dict[int, ProfileChange] = {}
    each_part(
        _dead_letters(), record, parts, "updates", lambda i, raw: changes.update({i: ProfileChange.model_validate(raw)})
    )
    by_person: dict[str, list[int]] = {}
    for index, change in changes.items():
        by_person.setdefault(change.subject, []).append(index)

    def refresh(group: Sequence[int]) -> None:  # one person's changes: one read, one evaluation, one write
        outcome = engine().refresh(
            changes[group[0]].subject,
            [changes[i].trigger(entry.detail_type) for i in group],
            utc_now(),
            cause=entry.id if len(parts) == 1 else f"{entry.id}/{group[0]}",  # the same on a redelivery
            redelivered=int(record.attributes.ApproximateReceiveCount) > 1,
            correlation_id=entry.detail.metadata.correlation_id,
            publisher=publisher,
        )
        counts = tally if tally is not None else Counter()
        counts["TagUpdatesSkipped"] += int(outcome.skipped)
        counts["TagChanges"] += len(outcome.changes)
        counts["AudienceTransitions"] += outcome.audience_changes

    each_group(_dead_letters(), record, parts, list(by_person.values()), "updates", refresh)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The batch's persons are read in one round up front (and kept until each is written); the tag changes of the
    # whole batch are published together at the end: if that fails the invocation fails, and every record is
    # redelivered and announces what it wrote (refresh looks its changes up by cause on a redelivery).
    deferred = DeferredPublisher()
    tally: Counter[str] = Counter()  # one value per metric and invocation (a packed batch holds thousands of persons)
    store = stores()
    with store.batch_reads():
        store.get_many(subjects(event.get("Records") or []))
        response = process_partial_response(
            event=event,
            record_handler=partial(record_handler, publisher=deferred, tally=tally),
            processor=processor,
            context=context,
        )
    deferred.flush(engine().publisher)
    for name, value in tally.items():
        if value:
            metrics.add_metric(name=name, unit="Count", value=value)
    return response


def subjects(records: list[dict[str, Any]]) -> set[str]:
    """The persons of a batch whose change can move a tag (records naming no person are left to the processor)."""
    parsed = parseable(ProfileChangeRecord, records)
    changes = [(c, r.body.detail_type) for r in parsed for c in r.body.detail.data.parseable()]
    return engine().persons_to_read((change.subject, change.trigger(kind)) for change, kind in changes)
