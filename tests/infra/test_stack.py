"""Template assertions: every table, queue, rule, function, machine, schedule and route comes from `cdp.topology`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp import topology
from infra.components.access import ERASED_PREFIXES
from infra.components.state_machines import placeholders
from tests.infra.conftest import (
    CONTEXT,
    Synth,
    function_by_handler,
    get_att_id,
    policy_statements,
    product_functions,
    statement_actions,
)

pytestmark = pytest.mark.xdist_group("cdk")


def _task_resources(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("Type") == "Task":
            found.add(node["Resource"])
        for value in node.values():
            found |= _task_resources(value)
    elif isinstance(node, list):
        for value in node:
            found |= _task_resources(value)
    return found


def test_tables_follow_topology_key_shapes(synth: Synth) -> None:
    # Given the topology's tables / When synthesized / Then each is on-demand, PITR, TTL, encrypted, pk/sk strings
    for spec in topology.TABLES:
        synth.template.has_resource_properties(
            "AWS::DynamoDB::Table",
            {
                "KeySchema": [
                    {"AttributeName": spec.partition_key, "KeyType": "HASH"},
                    {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": spec.partition_key, "AttributeType": "S"},
                    {"AttributeName": spec.sort_key, "AttributeType": "S"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "TimeToLiveSpecification": {"AttributeName": spec.ttl_attribute, "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        )
    assert len(synth.resources("AWS::DynamoDB::Table")) == len(topology.TABLES)


def test_the_offers_tables_by_person_index_is_keys_only_and_queried_only_by_the_profile_api(synth: Synth) -> None:
    # Given the stack / Then the offers table carries the sparse keys-only index erasure reads
    (offers,) = [
        t for t in synth.resources("AWS::DynamoDB::Table").values() if t["Properties"].get("GlobalSecondaryIndexes")
    ]
    (index,) = offers["Properties"]["GlobalSecondaryIndexes"]
    name, key = topology.OFFERS_BY_PERSON.name, topology.OFFERS_BY_PERSON.partition_key
    assert index == {
        "IndexName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert {"AttributeName": key, "AttributeType": "S"} in offers["Properties"]["AttributeDefinitions"]
    # And only the profile API (erasure) may read it, by its name: no function holds `index/*`
    readers = []
    for spec in topology.FUNCTIONS:
        _, fn = function_by_handler(synth, spec.handler)
        for statement in policy_statements(synth, get_att_id(fn["Properties"]["Role"])):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            text = json.dumps(resources)
            assert "/index/*" not in text, spec.key
            if f"/index/{name}" in text:
                readers.append((spec, statement["Action"]))
    assert readers == [(topology.PROFILE_API, "dynamodb:Query")]


def test_data_bucket_is_private_versioned_encrypted_and_logged(synth: Synth) -> None:
    # Given the stack / Then the data bucket blocks public access, is versioned and logs to the access-log bucket
    buckets = synth.resources("AWS::S3::Bucket")
    data = [
        b
        for b in buckets.values()
        if b["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "data-bucket/"
    ]
    assert len(data) == 1
    props = data[0]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    # And both buckets deny non-TLS requests
    ssl_denies = [
        s
        for p in synth.resources("AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(ssl_denies) == len(buckets)


def test_each_bus_rule_buffers_through_its_queue_and_dlq_into_its_consumer(synth: Synth) -> None:
    rules = synth.resources("AWS::Events::Rule")
    queues = synth.resources("AWS::SQS::Queue")
    mappings = synth.resources("AWS::Lambda::EventSourceMapping")
    (bus_id,) = synth.resources("AWS::Events::EventBus")
    # (other rules on the default bus, such as the S3 file-import trigger, are not bus rules)
    ours = {k: r for k, r in rules.items() if r["Properties"].get("EventBusName") == {"Ref": bus_id}}
    assert len(ours) == len([spec for spec in topology.BUS_RULES if spec.bus == "platform"])
    for spec in topology.BUS_RULES:
        # Given a topology rule / Then a rule on its bus (ours, or the account's default) has exactly its pattern
        matching = [r for r in rules.values() if r["Properties"]["EventPattern"] == spec.pattern]
        assert len(matching) == 1, spec.logical_id
        rule = matching[0]["Properties"]
        assert rule.get("EventBusName") == ({"Ref": bus_id} if spec.bus == "platform" else "default")
        # And it targets one queue whose redrive policy follows the QueueSpec
        (target,) = rule["Targets"]
        queue_id = get_att_id(target["Arn"])
        queue = queues[queue_id]["Properties"]
        assert queue["VisibilityTimeout"] == spec.queue.visibility_timeout_s
        assert queue["RedrivePolicy"]["maxReceiveCount"] == spec.queue.max_receive_count
        dlq_id = get_att_id(queue["RedrivePolicy"]["deadLetterTargetArn"])
        assert dlq_id in queues
        assert get_att_id(target["DeadLetterConfig"]["Arn"]) == dlq_id
        # And the queue feeds the consumer with partial batch failure reporting
        fn_id, _ = function_by_handler(synth, spec.consumer.handler)
        (mapping,) = [m for m in mappings.values() if get_att_id(m["Properties"]["EventSourceArn"]) == queue_id]
        assert mapping["Properties"]["FunctionName"] == {"Ref": fn_id}
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["Properties"]["BatchSize"] == spec.batch_size
        assert mapping["Properties"]["MaximumBatchingWindowInSeconds"] == spec.max_batching_window_s


def test_functions_match_their_specs(synth: Synth) -> None:
    # (CDK's own console deployment function copies the console's files at deploy time: not one of ours)
    functions = product_functions(synth)
    layer_ids = set(synth.resources("AWS::Lambda::LayerVersion"))
    # Given the topology / Then there is exactly one function per spec
    assert len(functions) == len(topology.FUNCTIONS)
    for spec in topology.FUNCTIONS:
        _, fn = function_by_handler(synth, spec.handler)
        props = fn["Properties"]
        # Then runtime, architecture, sizing and tracing are as declared
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["x86_64"]
        assert props["MemorySize"] == spec.memory_mb
        assert props["Timeout"] == spec.timeout_s
        assert props["TracingConfig"] == {"Mode": "Active"}
        # And it gets exactly its layers and every environment variable it names, no more
        assert len(props["Layers"]) == len(spec.layers)
        assert {layer["Ref"] for layer in props["Layers"]} <= layer_ids
        assert set(props["Environment"]["Variables"]) == set(spec.env)
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == spec.local_name


def test_function_env_points_at_the_real_resources(synth: Synth) -> None:
    # Given the ingest and send functions / Then env vars reference the stack's table, bucket, bus, secret and config
    _, ingest = function_by_handler(synth, topology.INGEST.handler)
    env = ingest["Properties"]["Environment"]["Variables"]
    (ledger_id,) = [
        k
        for k, v in synth.resources("AWS::DynamoDB::Table").items()
        if v["Properties"]["KeySchema"] and k.startswith("Storage" + topology.LEDGER_TABLE.logical_id)
    ]
    assert env[topology.LEDGER_TABLE.env_var] == {"Ref": ledger_id}
    secrets = synth.resources("AWS::SecretsManager::Secret")
    (keys_id,) = [k for k in secrets if k.startswith("ApiKeys")]
    (sources_id,) = [k for k in secrets if k.startswith("SourceSecrets")]
    assert env[topology.API_KEYS_SECRET_ENV] == {"Ref": keys_id}
    assert env[topology.SOURCES_SECRET_ENV] == {"Ref": sources_id}
    # And it takes console users' ID tokens of the stack's user pool and the console's app client
    (client_id,) = synth.resources("AWS::Cognito::UserPoolClient")
    (pool_id,) = synth.resources("AWS::Cognito::UserPool")
    assert env[topology.CONSOLE_TOKEN_AUDIENCE_ENV] == {"Ref": client_id}
    assert {"Ref": pool_id} in env[topology.CONSOLE_TOKEN_ISSUER_ENV]["Fn::Join"][1]
    (bus_id,) = synth.resources("AWS::Events::EventBus")
    assert env[topology.EVENT_BUS_ENV] == {"Ref": bus_id}
    _, send = function_by_handler(synth, topology.SEND.handler)
    send_env = send["Properties"]["Environment"]["Variables"]
    assert send_env[topology.SMS_ORIGINATION_ENV] == CONTEXT["smsOriginationIdentity"]
    assert send_env[topology.EMAIL_FROM_ENV] == CONTEXT["emailFromAddress"]
    assert send_env[topology.SEND_VIA_OUTBOX_ENV] == "false"


def test_grants_are_least_privilege_per_function(synth: Synth) -> None:
    def actions_of(spec: topology.FunctionSpec) -> set[str]:
        _, fn = function_by_handler(synth, spec.handler)
        return statement_actions(policy_statements(synth, get_att_id(fn["Properties"]["Role"])))

    # Given the synthesized roles / Then only send may send, only the API edges (and the platform pull, for its shops'
    # app secrets) read a secret, writers put events
    send = actions_of(topology.SEND)
    assert {"ses:SendEmail", "sms-voice:SendTextMessage"} <= send
    assert "events:PutEvents" in send  # only the coupon_issued events of the offers it issues
    ingest = actions_of(topology.INGEST)
    assert {"secretsmanager:GetSecretValue", "events:PutEvents", "s3:PutObject"} <= ingest
    assert "s3:GetObject" not in ingest
    for spec in topology.FUNCTIONS:
        actions = actions_of(spec)
        if spec is not topology.SEND:
            assert not {"ses:SendEmail", "sms-voice:SendTextMessage"} & actions, spec.key
        readers = (
            topology.INGEST,
            topology.PROFILE_API,
            topology.OPERATIONS,
            topology.PLATFORM_PULL,
            topology.SEND,
            topology.AUDIENCE_API,
            topology.CAMPAIGN_API,
            topology.OFFER_API,
            topology.LOYALTY_API,
            topology.CAMPAIGN_SCHEDULER,  # the brands' WeChat Pay merchants: pending payouts asked again
            topology.INBOX_API,  # API keys (tokens issued with inbox:issue); the inbox tokens' key
            topology.PREFERENCE_CENTRE,  # the preference links' key
            topology.MODEL_API,  # API keys with the models scopes
            topology.ANALYTICS_API,  # API keys with analytics:read
        )
        if spec not in readers:
            assert "secretsmanager:GetSecretValue" not in actions, spec.key
        # And no function gets wildcard S3 actions, nor delete rights but the profile API's erasure and the
        # warehouse export (its own files under warehouse/: test_the_warehouse_export_touches_only_warehouse_objects)
        assert not {a for a in actions if a.startswith("s3:") and "*" in a}, spec.key
        if spec not in (topology.PROFILE_API, topology.WAREHOUSE_EXPORT):
            assert not {a for a in actions if a.startswith("s3:") and "Delete" in a}, spec.key


def test_erasure_deletes_only_under_the_prefixes_that_hold_personal_data(synth: Synth) -> None:
    _, fn = function_by_handler(synth, topology.PROFILE_API.handler)
    statements = policy_statements(synth, get_att_id(fn["Properties"]["Role"]))
    deletes = [s for s in statements if "s3:DeleteObject" in s["Action"]]
    resources = [r for s in deletes for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    tails = {r["Fn::Join"][1][-1] for r in resources}  # Fn::Join of [bucket ARN, "/<prefix>*"]
    assert tails == {f"/{prefix}*" for prefix in ERASED_PREFIXES}
    erased = {topology.RAW_PREFIX, topology.CAMPAIGNS_PREFIX, topology.EXPORTS_PREFIX, topology.IMPORTS_PREFIX}
    assert erased | {topology.REJECTS_PREFIX} <= set(ERASED_PREFIXES)


def test_the_warehouse_export_touches_only_warehouse_objects(synth: Synth) -> None:
    _, fn = function_by_handler(synth, topology.WAREHOUSE_EXPORT.handler)
    statements = policy_statements(synth, get_att_id(fn["Properties"]["Role"]))
    objects = [
        s for s in statements if any(a.startswith("s3:") and a != "s3:ListBucket" for a in statement_actions([s]))
    ]
    # Given its S3 statements / Then it reads, writes and deletes objects under warehouse/ only, and lists only there
    (statement,) = objects
    assert statement_actions([statement]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert json.dumps(statement["Resource"]).endswith(f'"/{topology.WAREHOUSE_PREFIX}*"]]}}')
    (listing,) = [s for s in statements if "s3:ListBucket" in statement_actions([s])]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{topology.WAREHOUSE_PREFIX}*"]}}


def test_ingest_s3_writes_are_confined_to_the_raw_prefix(synth: Synth) -> None:
    _, fn = function_by_handler(synth, topology.INGEST.handler)
    statements = policy_statements(synth, get_att_id(fn["Properties"]["Role"]))
    (put,) = [s for s in statements if s["Action"] == "s3:PutObject"]
    assert json.dumps(put["Resource"]).endswith(f'"/{topology.RAW_PREFIX}*"]]}}')


def test_state_machines_load_asl_with_function_arns_substituted(synth: Synth) -> None:
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == len(topology.STATE_MACHINES)
    for spec in topology.STATE_MACHINES:
        (machine,) = [m for k, m in machines.items() if k.startswith(f"StateMachines{spec.logical_id}")]
        props = machine["Properties"]
        # Then the definition is the ASL file shipped as an asset, and CloudFormation substitutes every placeholder
        asset = synth.assembly_dir / f"asset.{props['DefinitionS3Location']['Key']}"
        asl = json.loads(asset.read_text(encoding="utf-8"))
        # And every task is a Lambda invoke: the machine's role holds invoke rights only (add IAM with new kinds)
        assert _task_resources(asl) <= {"arn:aws:states:::lambda:invoke", *(f"${{{n}}}" for n in spec.functions)}
        assert placeholders(asset) == set(spec.functions)
        assert props["DefinitionSubstitutions"] == {
            name: {"Fn::GetAtt": [function_by_handler(synth, fn_spec.handler)[0], "Arn"]}
            for name, fn_spec in spec.functions.items()
        }
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
        # And its role may invoke exactly its functions
        role_actions = statement_actions(policy_statements(synth, get_att_id(props["RoleArn"])))
        assert "lambda:InvokeFunction" in role_actions


def test_http_api_routes_come_from_topology(synth: Synth) -> None:
    routes = synth.resources("AWS::ApiGatewayV2::Route")
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {f"{m} {p}" for m, p, _ in topology.API_ROUTES}
    for method, path, key in topology.API_ROUTES:
        (route,) = [r for r in routes.values() if r["Properties"]["RouteKey"] == f"{method} {path}"]
        target = route["Properties"]["Target"]["Fn::Join"][1][1]
        integration = integrations[target["Ref"]]["Properties"]
        fn_id, _ = function_by_handler(synth, topology.FUNCTIONS_BY_KEY[key].handler)
        assert integration["IntegrationUri"] == {"Fn::GetAtt": [fn_id, "Arn"]}
        assert integration["PayloadFormatVersion"] == "2.0"
    # And the stage throttles and writes access logs
    (stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": CONTEXT["apiBurstLimit"],
        "ThrottlingRateLimit": CONTEXT["apiRateLimit"],
    }
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]


def test_schedules_target_their_machine_or_function(synth: Synth) -> None:
    schedules = {
        s["Properties"]["Description"]: s["Properties"] for s in synth.resources("AWS::Scheduler::Schedule").values()
    }
    assert set(schedules) == {spec.local_name for spec in topology.SCHEDULES}
    for spec in topology.SCHEDULES:
        props = schedules[spec.local_name]
        assert props["ScheduleExpression"] == spec.expression
        assert json.loads(props["Target"]["Input"]) == json.loads(spec.input)
        target_id = get_att_id(props["Target"]["Arn"])
        if spec.target_machine is not None:
            assert target_id.startswith(f"StateMachines{spec.target_machine.logical_id}")
        else:
            assert spec.target_function is not None
            assert target_id == function_by_handler(synth, spec.target_function.handler)[0]
        assert "DeadLetterConfig" in props["Target"]


def test_every_dead_letter_queue_has_a_depth_alarm(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    redrive_targets = {
        get_att_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    schedule_dlqs = {
        get_att_id(s["Properties"]["Target"]["DeadLetterConfig"]["Arn"])
        for s in synth.resources("AWS::Scheduler::Schedule").values()
    }
    rule_dlqs = {
        get_att_id(t["DeadLetterConfig"]["Arn"])
        for r in synth.resources("AWS::Events::Rule").values()
        for t in r["Properties"]["Targets"]
    }
    async_failure_queues = {
        get_att_id(c["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
    }
    alarmed = set()
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            (dimension,) = props["Dimensions"]
            alarmed.add(get_att_id(dimension["Value"]))
            assert props["AlarmActions"], "a DLQ alarm must notify someone"
    # Given every queue that holds failures (SQS redrive, Scheduler and rule target DLQs, async on-failure)
    # Then each has a depth alarm, and nothing else does
    assert async_failure_queues, "the scheduled functions need an on-failure destination"
    assert redrive_targets | schedule_dlqs | rule_dlqs | async_failure_queues == alarmed


def test_cdk_nag_has_no_unacknowledged_findings_and_every_acknowledgement_has_a_reason(synth: Synth) -> None:
    # Given the assembly written by a synth that ran the AwsSolutions pack / Then it concluded with no violation
    report = json.loads((synth.assembly_dir / "validation-report.json").read_text(encoding="utf-8"))
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    # And every acknowledgement says why, in more than a word or two
    assert plugin["suppressedViolations"]
    for suppressed in plugin["suppressedViolations"]:
        assert len(suppressed["reason"].split()) >= 6, suppressed["acknowledgedId"]


def test_cfn_lint_passes_on_the_synthesized_template(synth: Synth) -> None:
    from cfnlint.api import ManualArgs, lint_file

    # Given the template / When cfn-lint runs (W3005 is CDK's redundant DependsOn) / Then it reports nothing
    matches = lint_file(synth.template_file, config=ManualArgs(ignore_checks=["W3005"], regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


CLOUDFORMATION_RESOURCE_LIMIT = 500  # resources per stack (AWS CloudFormation quotas)


def test_the_stack_stays_inside_cloudformations_resource_limit(synth: Synth) -> None:
    # Given the synthesized stack (each function brings its role, policy, log group and two alarms; each route one)
    # Then it deploys: CloudFormation refuses a template of more than 500 resources
    assert len(synth.raw["Resources"]) <= CLOUDFORMATION_RESOURCE_LIMIT


def test_the_score_machine_runs_its_shards_as_a_distributed_map_of_standard_child_executions(synth: Synth) -> None:
    # Given the score machine's ASL as deployed
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    ((machine_id, machine),) = [
        (k, m) for k, m in machines.items() if k.startswith(f"StateMachines{topology.SCORE_MACHINE.logical_id}")
    ]
    props = machine["Properties"]
    asl = json.loads((synth.assembly_dir / f"asset.{props['DefinitionS3Location']['Key']}").read_text("utf-8"))
    shards = asl["States"]["ScoreShards"]
    # Then the Map runs each shard as a STANDARD child execution, over the shards in the state input
    assert shards["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert shards["ItemsPath"] == "$.shards" and "ItemReader" not in shards
    # And any failed shard fails the run, before Totals, which gets the array of shard results (no ResultWriter)
    assert shards["ToleratedFailurePercentage"] == 0
    assert [c["Next"] for c in shards["Catch"]] == ["ScoringFailed"]
    assert "ResultWriter" not in shards and shards["ResultPath"] == "$.results" and shards["Next"] == "Totals"
    # And the machine has a fixed name (its role names it for the child executions) that no other machine has
    from infra.app import STACK_ID  # the stack's name: build_app gives it no other

    assert props["StateMachineName"] == f"{STACK_ID}-{topology.SCORE_MACHINE.key}"
    assert all("StateMachineName" not in m["Properties"] for k, m in machines.items() if k != machine_id)
