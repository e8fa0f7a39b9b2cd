"""EventBridge Scheduler schedules from `cdp.topology.SCHEDULES`: each starts a state machine or invokes a function."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Annotations, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdp import topology
from infra.nag import acknowledge, arn_ref


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
        self.dlq = sqs.Queue(
            self,
            "SchedulesDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the schedules (Scheduler DLQ, not an SQS redrive).",
        )
        # One role for every schedule, owned here so its findings are acknowledged next to their cause.
        self.role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
        self.by_id: dict[str, scheduler.Schedule] = {}
        for spec in topology.SCHEDULES:
            target = self._target(spec, functions, machines)
            if target is None:
                continue
            self.by_id[spec.logical_id] = scheduler.Schedule(
                self,
                spec.logical_id,
                schedule=scheduler.ScheduleExpression.expression(spec.expression),
                target=target,
                description=spec.local_name,
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
                machine, input=payload, dead_letter_queue=self.dlq, retry_attempts=3, role=self.role
            )
        if spec.target_function is not None:
            function = functions[spec.target_function.key]
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{arn_ref(function)}:*]",
                "lambda:InvokeFunction on the scheduled function's versions and aliases, as the CDK target grants it.",
            )
            return targets.LambdaInvoke(
                function, input=payload, dead_letter_queue=self.dlq, retry_attempts=3, role=self.role
            )
        raise ValueError(f"{spec.logical_id}: a schedule needs a target machine or function")
