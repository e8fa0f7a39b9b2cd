"""EventBridge Scheduler schedules from `cdp.topology.SCHEDULES`: each starts a state machine or invokes a function.

A scheduled run that fails is never silent. Scheduler retries a target it cannot reach, then parks the event in
`dlq`. A function target is invoked asynchronously, so Scheduler only sees Lambda accept it: the function's own
async invoke config retries a failed run and then sends the event, with the error, to `function_failures`. Both
queues are alarmed (`infra.components.monitoring`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Annotations, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdp import topology
from infra.components.messaging import DEAD_LETTER_RETENTION
from infra.nag import acknowledge, arn_ref

SCHEDULER_RETRY_ATTEMPTS = 3
FUNCTION_RETRY_ATTEMPTS = 2  # Lambda's async retries of a run that raised or timed out
# A sweep or pull still waiting after an hour is superseded by the next run (hourly sweep, 15-minute pull).
FUNCTION_MAX_EVENT_AGE = Duration.hours(1)
MACHINE_MAX_EVENT_AGE = Duration.hours(24)  # a nightly score or weekly training is still worth starting late


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        machines: Mapping[str, sfn.IStateMachine],
    ) -> None:
        super().__init__(scope, construct_id)
        # Schedule invocations that still fail after retries are kept here (and alarmed on) instead of vanishing.
        self.dlq = self._dead_letter_queue(
            "SchedulesDlq",
            "This queue is itself the dead-letter queue of the schedules (Scheduler DLQ, not an SQS redrive).",
        )
        self.function_failures = self._dead_letter_queue(
            "ScheduledFunctionFailures",
            "This queue is itself the on-failure destination of the scheduled functions' asynchronous invocations.",
        )
        # One role for every schedule, owned here so its findings are acknowledged next to their cause.
        self.role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
        self.by_id: dict[str, scheduler.Schedule] = {}
        self._async_configured: set[str] = set()
        for spec in topology.SCHEDULES:
            target = self._target(spec, functions, machines)
            if target is None:
                continue
            if spec.target_function is not None:
                self._on_failure_to_queue(functions[spec.target_function.key])
            self.by_id[spec.logical_id] = scheduler.Schedule(
                self,
                spec.logical_id,
                schedule=scheduler.ScheduleExpression.expression(spec.expression),
                target=target,
                description=spec.local_name,
            )

    def _dead_letter_queue(self, construct_id: str, why_no_dlq_of_its_own: str) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(queue, "AwsSolutions-SQS3", why_no_dlq_of_its_own)
        return queue

    def _on_failure_to_queue(self, function: lambda_.IFunction) -> None:
        """Once per function (two schedules may invoke the same one: Lambda allows one async invoke config)."""
        if function.node.path in self._async_configured:
            return
        self._async_configured.add(function.node.path)
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.function_failures),
            retry_attempts=FUNCTION_RETRY_ATTEMPTS,
            max_event_age=FUNCTION_MAX_EVENT_AGE,
        )

    def _target(
        self,
        spec: topology.ScheduleSpec,
        functions: Mapping[str, lambda_.IFunction],
        machines: Mapping[str, sfn.IStateMachine],
    ) -> scheduler.IScheduleTarget | None:
        payload = scheduler.ScheduleTargetInput.from_object(json.loads(spec.input))
        if spec.target_machine is not None:
            machine = machines.get(spec.target_machine.key)
            if machine is None:
                Annotations.of(self).add_warning_v2(
                    f"cdp:schedule-skipped-{spec.logical_id}",
                    f"{spec.logical_id} skipped: state machine {spec.target_machine.key} is not in this stack",
                )
                return None
            return targets.StepFunctionsStartExecution(
                machine,
                input=payload,
                dead_letter_queue=self.dlq,
                retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
                max_event_age=MACHINE_MAX_EVENT_AGE,
                role=self.role,
            )
        if spec.target_function is not None:
            function = functions[spec.target_function.key]
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{arn_ref(function)}:*]",
                "lambda:InvokeFunction on the scheduled function's versions and aliases, as the CDK target grants it.",
            )
            return targets.LambdaInvoke(
                function,
                input=payload,
                dead_letter_queue=self.dlq,
                retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
                max_event_age=FUNCTION_MAX_EVENT_AGE,
                role=self.role,
            )
        raise ValueError(f"{spec.logical_id}: a schedule needs a target machine or function")
