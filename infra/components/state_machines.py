"""Step Functions machines from `cdp.topology.STATE_MACHINES`, loaded from the same ASL files the local runtime runs.

Each `${Placeholder}` in a file must name a function in the spec's `functions` mapping; it becomes that function's
ARN. A missing ASL file skips its machine with a synth warning (the files are authored alongside the handlers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdp import topology
from infra.nag import LOG_DELIVERY_REASON, XRAY_REASON, acknowledge, arn_ref, nag_resource

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def placeholders(asl_file: Path) -> set[str]:
    return set(_PLACEHOLDER.findall(asl_file.read_text(encoding="utf-8")))


def runs_distributed_map(asl_file: Path) -> bool:
    """True when a Map state of the file (at any depth) runs its items as child executions (`Mode: DISTRIBUTED`)."""

    def distributed(states: Mapping[str, Any]) -> bool:
        for state in states.values():
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                return True
            branches = [processor, *state.get("Branches", [])]
            if any(distributed(branch.get("States", {})) for branch in branches):
                return True
        return False

    return distributed(json.loads(asl_file.read_text(encoding="utf-8"))["States"])


class StateMachines(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asl_dir: Path,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_key: dict[str, sfn.StateMachine] = {}
        for spec in topology.STATE_MACHINES:
            asl_file = asl_dir / spec.asl_file
            if not asl_file.is_file():
                Annotations.of(self).add_warning_v2(
                    f"cdp:missing-asl-{spec.key}", f"{asl_file} not found: state machine {spec.key} skipped"
                )
                continue
            self.by_key[spec.key] = self._machine(spec, asl_file, functions)

    def _machine(
        self, spec: topology.StateMachineSpec, asl_file: Path, functions: Mapping[str, lambda_.IFunction]
    ) -> sfn.StateMachine:
        unknown = placeholders(asl_file) - set(spec.functions)
        if unknown:
            raise ValueError(f"{asl_file.name}: placeholders {sorted(unknown)} are not in topology {spec.key}")
        log_group = logs.LogGroup(
            self,
            f"{spec.logical_id}Logs",
            # The /aws/vendedlogs/ prefix keeps the log group resource policy small (Step Functions docs).
            log_group_name=f"/aws/vendedlogs/states/{Stack.of(self).stack_name}-{spec.key}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # A Distributed Map starts executions of its own machine, so the role names the machine: by a name fixed here
        # (a reference to the machine from its own role's policy would be a circular dependency).
        machine_name = f"{Stack.of(self).stack_name}-{spec.key}" if runs_distributed_map(asl_file) else None
        machine = sfn.StateMachine(
            self,
            spec.logical_id,
            state_machine_name=machine_name,
            definition_body=sfn.DefinitionBody.from_file(str(asl_file)),
            definition_substitutions={name: functions[fn.key].function_arn for name, fn in spec.functions.items()},
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            # Execution data holds profile and audience payloads: keep personal data out of the logs.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        for fn in spec.functions.values():
            functions[fn.key].grant_invoke(machine)
            acknowledge(
                machine.role,
                f"AwsSolutions-IAM5[Resource::{arn_ref(functions[fn.key])}:*]",
                "lambda:InvokeFunction on the function's versions and aliases (`arn:*`), as CDK's grantInvoke does.",
            )
        # CDK puts X-Ray and the vended log delivery in one `Resource::*` statement: both are resource-less APIs.
        acknowledge(machine.role, "AwsSolutions-IAM5[Resource::*]", f"{XRAY_REASON} {LOG_DELIVERY_REASON}")
        if machine_name is not None:
            _grant_child_executions(machine, machine_name)
        return machine


def _grant_child_executions(machine: sfn.StateMachine, name: str) -> None:
    """What a Distributed Map needs (AWS docs, "IAM policies for using Distributed Map states"): start executions of
    this machine, and describe and stop its executions. No other machine's."""
    stack = Stack.of(machine)

    def arn(resource: str, resource_name: str) -> str:
        return stack.format_arn(
            service="states", resource=resource, resource_name=resource_name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )

    machine.add_to_role_policy(
        iam.PolicyStatement(actions=["states:StartExecution"], resources=[arn("stateMachine", name)])
    )
    # `{name}:*` as the AWS guide and CDK's own DistributedMap grant it; `{name}/*` the child executions' ARNs
    # (`execution:{machine}/{map run label}:{id}`)
    executions = [arn("execution", f"{name}:*"), arn("execution", f"{name}/*")]
    machine.add_to_role_policy(
        iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"], resources=executions)
    )
    for execution in executions:
        acknowledge(
            machine.role,
            f"AwsSolutions-IAM5[Resource::{nag_resource(machine, execution)}]",
            "Executions of this state machine only (its runs and its Distributed Map's child executions), whose ids "
            "are made at run time.",
        )
