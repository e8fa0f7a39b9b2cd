"""EventBridge -> rule -> SQS -> consumer, with partial batch failures, retries and the DLQ."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsModel

from cdp import topology
from cdp_local.runtime import LocalRuntime
from tests.integration.runtime.recording import Recorder

RULE = topology.EVENT_RECEIVED_RULE


def put(runtime: LocalRuntime, *details: dict[str, Any], source: str = topology.SOURCE_INGEST) -> None:
    entries = [
        {
            "Source": source,
            "DetailType": topology.EVENT_RECEIVED,
            "Detail": json.dumps(d),
            "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
        }
        for d in details
    ]
    response = runtime.client("events").put_events(Entries=entries)
    assert response["FailedEntryCount"] == 0


def test_put_events_reaches_the_rule_queue_and_drain_delivers_a_well_formed_sqs_event(runtime: LocalRuntime) -> None:
    # Given the consumer of the event-received rule records what it gets
    consumer = Recorder(reply={"batchItemFailures": []})
    runtime.override(RULE.consumer.key, consumer)
    # When an event matching the rule is put on the bus
    put(runtime, {"n": 1})
    # Then it waits in the rule's queue (and nothing matched the other rule)
    assert runtime.queue_depth(RULE.queue) == 1
    assert runtime.queue_depth(topology.TAG_QUEUE) == 0
    # When the queues are drained
    report = runtime.drain()
    # Then the consumer got one SQS batch that Powertools' model accepts, wrapping the EventBridge envelope
    assert len(consumer.calls) == 1
    batch = SqsModel.model_validate(consumer.events[0])
    record = batch.Records[0]
    assert record.eventSourceARN == runtime.queue_arns[RULE.queue.local_name]
    assert record.attributes.ApproximateReceiveCount == "1"
    envelope = EventBridgeModel.model_validate_json(record.body)
    assert (envelope.source, envelope.detail_type, envelope.detail) == (
        topology.SOURCE_INGEST,
        topology.EVENT_RECEIVED,
        {"n": 1},
    )
    # And the message was deleted and counted
    assert (report.processed, report.failed, report.dead_lettered, report.quiet) == (1, 0, 0, True)
    assert runtime.queue_depth(RULE.queue) == 0


def test_events_that_match_no_rule_are_not_delivered(runtime: LocalRuntime) -> None:
    # Given an event from a source no rule listens to / When drained / Then nobody is invoked
    consumer = Recorder()
    runtime.override(RULE.consumer.key, consumer)
    put(runtime, {"n": 1}, source="someone.else")
    assert runtime.drain().invocations == 0
    assert consumer.calls == []


def test_partial_batch_failure_retries_then_dead_letters_after_max_receive_count(runtime: LocalRuntime) -> None:
    # Given a consumer that always fails the message marked "poison" and accepts the others
    seen_counts: list[str] = []

    def reply(event: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            if json.loads(record["body"])["detail"].get("poison"):
                seen_counts.append(record["attributes"]["ApproximateReceiveCount"])
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    runtime.override(RULE.consumer.key, Recorder(reply=reply))
    put(runtime, {"n": 1}, {"n": 2, "poison": True}, {"n": 3})
    # When the queues are drained until quiet
    report = runtime.drain()
    # Then the good ones were processed once, the poison one was tried maxReceiveCount times, then moved to the DLQ
    max_receives = RULE.queue.max_receive_count
    assert report.processed == 2
    assert report.failed == max_receives
    assert seen_counts == [str(n) for n in range(1, max_receives + 1)]
    assert report.dead_lettered == 1
    assert report.quiet
    dead = runtime.dlq_messages(RULE.queue)
    assert [json.loads(m["Body"])["detail"] for m in dead] == [{"n": 2, "poison": True}]
    assert runtime.queue_depth(RULE.queue) == 0
    # And reading the DLQ leaves the messages there
    assert len(runtime.dlq_messages(RULE.queue)) == 1


def test_handler_exception_fails_the_whole_batch_which_is_retried(runtime: LocalRuntime) -> None:
    # Given a consumer that raises on its first call only
    calls: list[int] = []

    def flaky(event: dict[str, Any], context: object) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise ConnectionError("table throttled")
        return {"batchItemFailures": []}

    runtime.override(RULE.consumer.key, flaky)
    put(runtime, {"n": 1}, {"n": 2})
    # When drained
    report = runtime.drain()
    # Then both messages failed once, came back on the next round and were processed
    assert calls == [2, 2]
    assert (report.failed, report.processed, report.dead_lettered) == (2, 2, 0)
    assert report.rounds >= 2


def test_consumer_publishing_feeds_the_next_rule_until_quiet(runtime: LocalRuntime) -> None:
    # Given identity_merge publishing profile.updated for each event, and a recording tag_update consumer
    def merge(event: dict[str, Any], context: object) -> dict[str, Any]:
        entries = [
            {
                "Source": topology.SOURCE_IDENTITY,
                "DetailType": topology.PROFILE_UPDATED,
                "Detail": json.dumps({"data": {"person_id": "p1", "event_type": "order_placed"}}),
                "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
            }
            for r in event["Records"]
        ]
        runtime.client("events").put_events(Entries=entries)
        return {"batchItemFailures": []}

    tags = Recorder(reply={"batchItemFailures": []})
    journeys = Recorder(reply={"batchItemFailures": []})
    runtime.override(topology.IDENTITY_MERGE.key, merge)
    runtime.override(topology.TAG_UPDATE.key, tags)
    runtime.override(topology.JOURNEY.key, journeys)
    put(runtime, {"n": 1}, {"n": 2})
    # When drained
    report = runtime.drain()
    # Then tag_update and the journeys each received both profile.updated events and every queue is empty
    assert sum(len(e["Records"]) for e in tags.events) == 2
    assert sum(len(e["Records"]) for e in journeys.events) == 2
    assert report.by_queue[topology.TAG_QUEUE.local_name].processed == 2
    assert report.processed == 6
    assert runtime.queue_depth(topology.IDENTITY_QUEUE) == runtime.queue_depth(topology.TAG_QUEUE) == 0


def test_an_idle_drain_looks_at_each_rule_queue_once_and_receives_nothing(runtime: LocalRuntime) -> None:
    # Given nothing published since the last drain (as after a read: `cdp serve` drains after every API request)
    runtime.drain()
    calls: list[str] = []
    sqs = runtime.client("sqs")

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    sqs.meta.events.register("before-call.sqs", record)
    try:
        # When the queues are drained
        report = runtime.drain()
    finally:
        sqs.meta.events.unregister("before-call.sqs", record)
    # Then one look per rule queue said there was nothing: no receive, no DLQ depth read
    assert calls == ["GetQueueAttributes"] * len(topology.BUS_RULES)
    assert (report.rounds, report.quiet, report.processed, report.dead_lettered) == (1, True, 0, 0)
    # And an event published after it is still delivered by the next drain
    consumer = Recorder(reply={"batchItemFailures": []})
    runtime.override(RULE.consumer.key, consumer)
    put(runtime, {"n": 2})
    assert runtime.drain().processed == 1 and len(consumer.calls) == 1
