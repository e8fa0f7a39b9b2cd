"""The event bus, its rules from `cdp.topology.BUS_RULES`, and the SQS buffer (+ DLQ) in front of each consumer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdp import topology

DEAD_LETTER_RETENTION = Duration.days(14)
"""How long every dead-letter queue keeps a message (SQS's maximum): the time operators have to redrive it."""


def apply_pattern(rule: events.Rule, pattern: Mapping[str, Any]) -> None:
    """Set the topology's EventBridge JSON pattern verbatim (the L2 struct cannot express `$or` or content filters)."""
    cfn_rule = rule.node.default_child
    assert isinstance(cfn_rule, events.CfnRule)
    cfn_rule.add_property_override("EventPattern", dict(pattern))


class Messaging(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "EventBus")
        # Replays after a consumer bug: every event on the bus, kept for a month.
        self.bus.archive(
            "Archive",
            event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            retention=Duration.days(30),
        )
        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        for queue_spec in topology.QUEUES:
            self._queue(queue_spec)
        self.rules: dict[str, events.Rule] = {}
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")  # where AWS services publish
        for rule_spec in topology.BUS_RULES:
            rule = events.Rule(
                self,
                rule_spec.logical_id,
                event_bus=self.bus if rule_spec.bus == "platform" else default_bus,
                event_pattern=events.EventPattern(source=list(rule_spec.pattern["source"])),
                description=rule_spec.local_name,
            )
            apply_pattern(rule, rule_spec.pattern)
            # Events EventBridge cannot deliver land in the same DLQ the consumer's failures do.
            rule.add_target(
                targets.SqsQueue(
                    self.queues[rule_spec.queue.logical_id],
                    dead_letter_queue=self.dlqs[rule_spec.queue.logical_id],
                    retry_attempts=8,
                )
            )
            self.rules[rule_spec.logical_id] = rule

    def _queue(self, spec: topology.QueueSpec) -> None:
        dlq = sqs.Queue(
            self,
            f"{spec.logical_id}Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        self.dlqs[spec.logical_id] = dlq
        self.queues[spec.logical_id] = sqs.Queue(
            self,
            spec.logical_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=spec.max_receive_count, queue=dlq),
        )

    def subscribe_consumers(self, functions: Mapping[str, lambda_.Function]) -> None:
        """Each rule's queue feeds its consumer, reporting partial batch failures so one bad event is retried alone."""
        for rule_spec in topology.BUS_RULES:
            consumer = rule_spec.consumer
            if rule_spec.queue.visibility_timeout_s < consumer.timeout_s:
                raise ValueError(
                    f"{rule_spec.queue.logical_id}: visibility timeout {rule_spec.queue.visibility_timeout_s}s is "
                    f"shorter than {consumer.key} timeout {consumer.timeout_s}s (messages would be redelivered)"
                )
            # the consumer parks permanent and last-attempt failures in its DLQ itself, with the reason
            self.dlqs[rule_spec.queue.logical_id].grant_send_messages(functions[consumer.key])
            functions[consumer.key].add_event_source(
                sources.SqsEventSource(
                    self.queues[rule_spec.queue.logical_id],
                    batch_size=rule_spec.batch_size,
                    max_batching_window=Duration.seconds(rule_spec.max_batching_window_s),
                    report_batch_item_failures=True,
                )
            )
