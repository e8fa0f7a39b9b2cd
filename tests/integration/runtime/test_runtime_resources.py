"""The runtime creates every resource `cdp.topology` declares, as declared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cdp import topology
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.core import STATEMACHINES_DIR
from cdp_local.runtime.environment import LOCAL_EMAIL_FROM


def test_tables_have_topology_keys_and_ttl(runtime: LocalRuntime) -> None:
    # Given a started runtime / When the tables are described
    ddb = runtime.client("dynamodb")
    for spec in topology.TABLES:
        table = ddb.describe_table(TableName=spec.local_name)["Table"]
        # Then the key schema and TTL attribute are the ones in topology
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        assert keys == {"HASH": spec.partition_key, "RANGE": spec.sort_key}
        ttl = ddb.describe_time_to_live(TableName=spec.local_name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == spec.ttl_attribute


def test_bucket_bus_secret_and_sender_identity_exist(runtime: LocalRuntime) -> None:
    # Given a started runtime / Then bucket, bus, API-key secret and the verified sender exist
    runtime.client("s3").head_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
    runtime.client("events").describe_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
    secret = runtime.client("secretsmanager").get_secret_value(SecretId=topology.API_KEYS_SECRET_LOCAL_NAME)
    keys = json.loads(secret["SecretString"])["keys"]
    assert keys[runtime.api_key] == {"client": "local", "scopes": ["events:write"]}
    # And SES accepts mail from the configured sender (moto rejects unverified senders)
    sent = runtime.client("sesv2").send_email(
        FromEmailAddress=os.environ[topology.EMAIL_FROM_ENV],
        Destination={"ToAddresses": ["ann@example.com"]},
        Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}},
    )
    assert sent["MessageId"]
    assert os.environ[topology.EMAIL_FROM_ENV] == LOCAL_EMAIL_FROM


def test_queues_redrive_to_their_dlq_after_max_receive_count(runtime: LocalRuntime) -> None:
    # Given a started runtime / When each queue's attributes are read
    sqs = runtime.client("sqs")
    for spec in topology.QUEUES:
        attrs = sqs.get_queue_attributes(QueueUrl=runtime.queue_urls[spec.local_name], AttributeNames=["All"])
        redrive = json.loads(attrs["Attributes"]["RedrivePolicy"])
        # Then visibility and the redrive policy come from topology
        assert attrs["Attributes"]["VisibilityTimeout"] == str(spec.visibility_timeout_s)
        assert int(redrive["maxReceiveCount"]) == spec.max_receive_count
        assert redrive["deadLetterTargetArn"] == runtime.queue_arns[topology.dlq_name(spec)]


def test_bus_rules_carry_topology_patterns_and_target_their_queue(runtime: LocalRuntime) -> None:
    events = runtime.client("events")
    for spec in topology.BUS_RULES:
        # When the rule and its targets are described (on our bus, or the account's default for AWS services)
        bus = topology.EVENT_BUS_LOCAL_NAME if spec.bus == "platform" else "default"
        rule = events.describe_rule(Name=spec.local_name, EventBusName=bus)
        targets = events.list_targets_by_rule(Rule=spec.local_name, EventBusName=bus)
        # Then the pattern is topology's and the only target is the rule's queue
        assert json.loads(rule["EventPattern"]) == spec.pattern
        assert [t["Arn"] for t in targets["Targets"]] == [runtime.queue_arns[spec.queue.local_name]]


def test_functions_exist_with_their_handler_and_env(runtime: LocalRuntime) -> None:
    lam = runtime.client("lambda")
    for spec in topology.FUNCTIONS:
        config = lam.get_function_configuration(FunctionName=spec.local_name)
        assert config["Handler"] == spec.handler
        assert config["Timeout"] == spec.timeout_s
        # Then the function's declared variables are set, and set in the process for in-process handlers
        variables = config.get("Environment", {}).get("Variables", {})
        for name in spec.env:
            assert variables[name] == os.environ[name]


def test_union_of_function_env_is_set_and_restored_on_exit() -> None:
    # Given no runtime: the profiles table variable is not the runtime's
    os.environ.pop(topology.PROFILES_TABLE.env_var, None)
    # When a runtime runs
    with LocalRuntime(state_machines=()):
        # Then every variable any function declares is set
        assert os.environ[topology.PROFILES_TABLE.env_var] == topology.PROFILES_TABLE.local_name
        assert os.environ[topology.EVENT_BUS_ENV] == topology.EVENT_BUS_LOCAL_NAME
        assert os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] == "disabled"
    # And after exit it is gone again
    assert topology.PROFILES_TABLE.env_var not in os.environ


def test_state_machines_from_existing_asl_files_others_skipped(asl_dir: Path) -> None:
    # Given an ASL file for the score machine only
    (asl_dir / topology.SCORE_MACHINE.asl_file).write_text(
        json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Comment": "${ScoringFunctionArn}", "End": True}}}
        )
    )
    # When the runtime starts
    with LocalRuntime(statemachines_dir=asl_dir) as rt:
        # Then score exists with the function ARN substituted, and the others are skipped with a reason
        arn = rt.state_machine_arns[topology.SCORE_MACHINE.key]
        definition = rt.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"]
        assert f":function:{topology.SCORING.local_name}" in definition
        assert "${" not in definition
        assert set(rt.skipped_machines) == {m.key for m in topology.STATE_MACHINES} - {topology.SCORE_MACHINE.key}
        # And schedules whose target exists are stored in EventBridge Scheduler
        names = {s["Name"] for s in rt.client("scheduler").list_schedules()["Schedules"]}
        expected = {s.local_name for s in topology.SCHEDULES if s.target_machine in (None, topology.SCORE_MACHINE)}
        assert names == expected


def test_shipped_asl_files_become_state_machines_with_every_placeholder_substituted() -> None:
    # Given the ASL files infra ships (a machine whose file is not written yet is skipped)
    shipped = [m for m in topology.STATE_MACHINES if (STATEMACHINES_DIR / m.asl_file).is_file()]
    # When the runtime starts with them
    with LocalRuntime() as rt:
        sfn = rt.client("stepfunctions")
        for machine in shipped:
            # Then each exists, and each function placeholder became that function's ARN
            definition = sfn.describe_state_machine(stateMachineArn=rt.state_machine_arns[machine.key])["definition"]
            assert "${" not in definition
            for fn in machine.functions.values():
                assert f":function:{fn.local_name}" in definition
        assert set(rt.skipped_machines) == {m.key for m in topology.STATE_MACHINES} - {m.key for m in shipped}


def test_only_one_runtime_per_process(runtime: LocalRuntime) -> None:
    # Given a running runtime / When a second one starts / Then it refuses
    with pytest.raises(RuntimeError, match="already running"), LocalRuntime():
        pass
