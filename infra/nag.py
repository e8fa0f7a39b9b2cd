"""Helpers for cdk-nag acknowledgements: every one names the exact finding and carries the reason it is acceptable."""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

XRAY_REASON = "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (AWS docs)."
LOG_DELIVERY_REASON = (
    "CloudWatch Logs vended delivery (logs:*LogDelivery, PutResourcePolicy, DescribeLogGroups), which Step Functions "
    "logging needs, supports no resource-level permissions either (AWS docs)."
)


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


def nag_resource(scope: IConstruct, resource: str) -> str:
    """How cdk-nag spells a resource in a finding: references as `<AWS::Region>`, `<Logical.Arn>`, text as is."""
    resolved = Stack.of(scope).resolve(resource)
    if isinstance(resolved, str):
        return resolved
    parts = resolved["Fn::Join"][1]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif "Ref" in part:
            out.append(f"<{part['Ref']}>")
        elif "Fn::GetAtt" in part:
            logical_id, attribute = part["Fn::GetAtt"]
            out.append(f"<{logical_id}.{attribute}>")
        else:  # another intrinsic (Fn::Select of a machine's name): spelled as its JSON
            out.append(json.dumps(part, separators=(",", ":")))
    return "".join(out)
