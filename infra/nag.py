"""Helpers for cdk-nag acknowledgements: every one names the exact finding and carries the reason it is acceptable."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

XRAY_REASON = "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (AWS docs)."


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """`finding` is a rule id with its optional finding, e.g. `AwsSolutions-IAM5[Resource::*]`."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{finding}", reason=reason))


def arn_ref(construct: IConstruct) -> str:
    """How cdk-nag spells `resource.Arn` in a finding: `<LogicalId.Arn>`."""
    default_child = construct.node.default_child
    if not isinstance(default_child, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    stack = Stack.of(construct)
    return f"<{stack.resolve(stack.get_logical_id(default_child))}.Arn>"
