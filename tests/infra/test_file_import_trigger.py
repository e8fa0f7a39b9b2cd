"""The batch file import wiring: S3 -> EventBridge (default bus) -> the import machine, and its function's grants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp import topology
from cdp.imports.keys import HISTORY_PREFIX, INCOMING_PREFIX, REJECTS_PREFIX, REPORTS_PREFIX
from tests.infra.conftest import Synth


def _role_actions_by_resource(synth: Synth, handler: str) -> dict[str, set[str]]:
    (fn,) = [f for f in synth.resources("AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out: dict[str, set[str]] = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources: Any = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                out.setdefault(json.dumps(resource), set()).update(actions)
    return out


@pytest.mark.parametrize(
    ("prefix", "machine"),
    [(INCOMING_PREFIX, topology.IMPORT_MACHINE), (HISTORY_PREFIX, topology.HISTORY_IMPORT_MACHINE)],
)
def test_objects_created_under_a_prefix_start_its_import_machine(
    synth: Synth, prefix: str, machine: topology.StateMachineSpec
) -> None:
    # Given the stack / Then the data bucket sends its events to EventBridge
    (data,) = [b for b in synth.resources("AWS::S3::Bucket").values() if "LoggingConfiguration" in b["Properties"]]
    assert data["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    # And one rule on the default bus matches "Object Created" under the prefix of that bucket
    (rule,) = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if "EventBusName" not in r["Properties"]
        and r["Properties"]["EventPattern"]["detail"]["object"] == {"key": [{"prefix": prefix}]}
    ]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    # And it starts the machine with {bucket, key}, keeping undeliverable events in an alarmed DLQ
    (target,) = rule["Targets"]
    machine_id = target["Arn"]["Ref"]
    assert machine_id.startswith(f"StateMachines{machine.logical_id}")
    transformer = target["InputTransformer"]
    template = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        template = template.replace(f"<{name}>", json.dumps(path))
    assert json.loads(template) == {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"}
    assert "DeadLetterConfig" in target


def test_the_history_import_function_reads_history_and_publishes_nothing(synth: Synth) -> None:
    grants = _role_actions_by_resource(synth, topology.HISTORY_IMPORT.handler)
    reads = set[str]()
    for resource, actions in grants.items():
        if resource.endswith(f'/{HISTORY_PREFIX}*"]]}}'):
            reads |= {a for a in actions if a.startswith("s3:")}
    assert reads == {"s3:GetObject", "s3:GetObjectVersion"}
    everything = set().union(*grants.values())
    assert "events:PutEvents" not in everything and "dynamodb:BatchWriteItem" in everything


def test_the_import_function_reads_incoming_and_writes_only_its_reports_and_rejects(synth: Synth) -> None:
    grants = _role_actions_by_resource(synth, topology.FILE_IMPORT.handler)
    by_prefix = {prefix: set[str]() for prefix in (INCOMING_PREFIX, REPORTS_PREFIX, REJECTS_PREFIX)}
    for resource, actions in grants.items():
        for prefix in by_prefix:
            if resource.endswith(f'/{prefix}*"]]}}'):
                by_prefix[prefix] |= {a for a in actions if a.startswith("s3:")}
    assert by_prefix == {
        INCOMING_PREFIX: {"s3:GetObject", "s3:GetObjectVersion"},
        REPORTS_PREFIX: {"s3:GetObject", "s3:PutObject"},
        REJECTS_PREFIX: {"s3:PutObject"},
    }
    everything = set().union(*grants.values())
    assert "events:PutEvents" in everything and "secretsmanager:GetSecretValue" not in everything
