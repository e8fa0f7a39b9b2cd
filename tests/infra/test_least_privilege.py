"""Narrow IAM: `*` only where AWS offers nothing narrower, SMS only from the configured identity, listing confined
where a function lists one area, table writes only for functions that write, acknowledgements naming their finding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp import topology
from cdp.audiences.models import DEFINITIONS_PREFIX
from cdp.tags.catalog_source import CATALOG_PREFIX
from infra.components.access import ERASED_PREFIXES
from tests.infra.conftest import (
    CDK_DEPLOYMENT,
    Synth,
    function_by_handler,
    get_att_id,
    policy_statements,
    product_functions,
    referenced_ids,
    resource_list,
    statement_actions,
)

pytestmark = pytest.mark.xdist_group("cdk")

XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
}
TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def _role_statements(synth: Synth, spec: topology.FunctionSpec) -> list[dict[str, Any]]:
    _, fn = function_by_handler(synth, spec.handler)
    return policy_statements(synth, get_att_id(fn["Properties"]["Role"]))


CLOUDFRONT_INVALIDATION = {"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"}


def _suppressed(synth: Synth) -> list[dict[str, Any]]:
    report = json.loads((synth.assembly_dir / "validation-report.json").read_text(encoding="utf-8"))
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    suppressed: list[dict[str, Any]] = plugin["suppressedViolations"]
    return suppressed


def test_the_only_wildcard_resources_are_the_apis_that_have_no_resource_level_permissions(synth: Synth) -> None:
    machine_roles = {
        get_att_id(m["Properties"]["RoleArn"]) for m in synth.resources("AWS::StepFunctions::StateMachine").values()
    }
    function_roles = {get_att_id(f["Properties"]["Role"]) for f in product_functions(synth).values()}
    for policy_id, policy in synth.resources("AWS::IAM::Policy").items():
        roles = {r["Ref"] for r in policy["Properties"]["Roles"]}
        if policy_id.startswith(CDK_DEPLOYMENT):  # CDK's console copy: CloudFront invalidations, checked below
            assert statement_actions(policy["Properties"]["PolicyDocument"]["Statement"]) & CLOUDFRONT_INVALIDATION
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" not in resource_list(statement):
                continue
            # Given a statement on `*` / Then it holds X-Ray only (functions), or X-Ray and log delivery (machines)
            found = statement_actions([statement])
            if roles <= function_roles:
                assert found <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, policy_id
            else:
                assert roles <= machine_roles, policy_id
                assert found <= XRAY | LOG_DELIVERY, policy_id


def test_sms_is_sent_only_from_the_configured_sender_id(synth: Synth) -> None:
    (sms,) = [s for s in _role_statements(synth, topology.SEND) if "sms-voice:SendTextMessage" in s["Action"]]
    # Given the context's sender ID CDPSHOP / Then the resource is that sender ID in any country, never `*`
    assert sms["Action"] == "sms-voice:SendTextMessage"
    (resource,) = resource_list(sms)
    assert resource != "*"
    assert resource["Fn::Join"][1][-1] == ":sender-id/CDPSHOP/*"


_IN_THIS_ACCOUNT = "arn:<AWS::Partition>:sms-voice:<AWS::Region>:<AWS::AccountId>"
_POOL_ARN = "arn:aws:sms-voice:cn-north-1:123456789012:pool/pool-x"


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ("CDPSHOP", f"{_IN_THIS_ACCOUNT}:sender-id/CDPSHOP/*"),
        ("pool-0123abcd", f"{_IN_THIS_ACCOUNT}:pool/pool-0123abcd"),
        ("phone-0123abcd", f"{_IN_THIS_ACCOUNT}:phone-number/phone-0123abcd"),
        ("+8613800000000", f"{_IN_THIS_ACCOUNT}:phone-number/*"),
        (_POOL_ARN, _POOL_ARN),
    ],
)
def test_each_form_of_origination_identity_maps_to_its_arn(identity: str, expected: str) -> None:
    from aws_cdk import App, Stack

    from infra.components.access import sms_identity_arn
    from infra.config import DeployConfig
    from infra.nag import nag_resource

    # Given an identity in one of the forms SendTextMessage accepts
    stack = Stack(App(), "T")
    config = DeployConfig.from_context({"smsOriginationIdentity": identity, "emailFromAddress": "a@b.example"}.get)
    # When mapped / Then it is the ARN SendTextMessage is authorized against, in this account and region
    assert nag_resource(stack, sms_identity_arn(stack, config)) == expected


def test_iam_acknowledgements_name_the_finding_they_cover(synth: Synth) -> None:
    # cdk-nag reports an IAM finding as `rule[finding]`; an acknowledgement of the bare rule would cover them all
    iam = [s for s in _suppressed(synth) if s["ruleName"].startswith(("AwsSolutions-IAM4[", "AwsSolutions-IAM5["))]
    assert iam
    for suppressed in iam:
        # Given an acknowledged IAM finding / Then the acknowledgement names exactly that finding
        assert suppressed["acknowledgedId"] == f"AwsSolutions::{suppressed['ruleName']}"
    assert not [s for s in _suppressed(synth) if s["acknowledgedId"].endswith(("-IAM4", "-IAM5"))]
    # And `Resource::*` is acknowledged for X-Ray (and machines' log delivery) only, never for SMS
    wildcard = [s for s in iam if s["ruleName"] == "AwsSolutions-IAM5[Resource::*]"]
    assert wildcard
    for suppressed in wildcard:
        if suppressed["acknowledgedAt"].split("/")[1].startswith(CDK_DEPLOYMENT.replace("CDK", "::CDK", 1)):
            assert "CloudFront CreateInvalidation" in suppressed["reason"]
            continue
        assert "X-Ray" in suppressed["reason"]
        assert "sms" not in suppressed["reason"].lower()


def _list_statements(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in statement_actions([s])]


@pytest.mark.parametrize(
    ("spec", "prefixes"),
    [
        (topology.OPERATIONS, [topology.RAW_PREFIX]),
        (topology.TAG_UPDATE, [CATALOG_PREFIX, DEFINITIONS_PREFIX]),
        (topology.TAG_SWEEP, [CATALOG_PREFIX, DEFINITIONS_PREFIX]),
    ],
)
def test_functions_that_list_one_area_list_only_under_its_prefixes(
    synth: Synth, spec: topology.FunctionSpec, prefixes: list[str]
) -> None:
    # Given a function that lists only known prefixes and reads only keys it listed
    (statement,) = _list_statements(_role_statements(synth, spec), "s3:ListBucket")
    # Then its ListBucket carries an s3:prefix condition naming exactly those prefixes
    assert statement["Condition"] == {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}


def test_whole_bucket_listing_is_kept_only_where_a_missing_key_must_read_as_404(synth: Synth) -> None:
    # S3 answers 403 instead of 404 for a missing key without bucket-wide ListBucket; these functions read keys that
    # may not exist. A new function on this list is a deliberate change to this test.
    expected = {
        topology.TRAIN,
        topology.SCORING,
        topology.CAMPAIGN,
        topology.SEND,
        topology.PROFILE_API,
        topology.FILE_IMPORT,
        topology.HISTORY_IMPORT,  # a chunk report not written yet, the brand's catalog when there is none
        topology.AUDIENCE_API,
        topology.CAMPAIGN_API,  # a run's summary before the run has finished
        topology.MODEL_API,  # an unknown model's or version's manifest, a model never promoted
    }
    unconditioned = {
        spec
        for spec in topology.FUNCTIONS
        for s in _list_statements(_role_statements(synth, spec), "s3:ListBucket")
        if "Condition" not in s
    }
    assert unconditioned == expected
    # And the erasure lists object versions only under the prefixes it erases
    (versions,) = _list_statements(_role_statements(synth, topology.PROFILE_API), "s3:ListBucketVersions")
    assert versions["Condition"] == {"StringLike": {"s3:prefix": [f"{p}*" for p in ERASED_PREFIXES]}}


READ_ONLY = "read"
READ_WRITE = "read-write"
TABLE_ACCESS: dict[topology.FunctionSpec, dict[topology.TableSpec, str]] = {
    topology.INGEST: {topology.LEDGER_TABLE: READ_WRITE},
    topology.IDENTITY_MERGE: {topology.PROFILES_TABLE: READ_WRITE},
    topology.TAG_UPDATE: {topology.PROFILES_TABLE: READ_WRITE},
    topology.TAG_SWEEP: {topology.PROFILES_TABLE: READ_WRITE},
    topology.TRAIN: {topology.PROFILES_TABLE: READ_ONLY},
    topology.SCORING: {topology.PROFILES_TABLE: READ_WRITE},
    topology.CAMPAIGN: {topology.PROFILES_TABLE: READ_ONLY, topology.OFFERS_TABLE: READ_WRITE},  # offer plans
    topology.SEND: {
        topology.PROFILES_TABLE: "read + PutItem",
        topology.LEDGER_TABLE: READ_WRITE,
        # stop switch; held sends; journey outcomes; the due list and due versions (priority arbitration)
        topology.CAMPAIGNS_TABLE: "GetItem + Query + PutItem + UpdateItem",
        topology.OFFERS_TABLE: READ_WRITE,  # a step's offer issued: wallet, code, budget hold
    },
    topology.PROFILE_API: {
        topology.PROFILES_TABLE: READ_WRITE,
        topology.LEDGER_TABLE: READ_WRITE,
        topology.OFFERS_TABLE: READ_WRITE,  # the wallet in the 360 view; erasure removes wallets and accounts
    },
    topology.OPERATIONS: {topology.PROFILES_TABLE: READ_WRITE, topology.LEDGER_TABLE: READ_WRITE},  # migrations
    topology.FILE_IMPORT: {topology.LEDGER_TABLE: READ_WRITE},
    topology.HISTORY_IMPORT: {topology.PROFILES_TABLE: READ_WRITE, topology.LEDGER_TABLE: READ_WRITE},
    topology.PLATFORM_PULL: {topology.LEDGER_TABLE: READ_WRITE},
    topology.WAREHOUSE_EXPORT: {topology.PROFILES_TABLE: "Scan"},  # one scan: persons, tags, filed events
    topology.AUDIENCE_API: {topology.PROFILES_TABLE: READ_ONLY},
    topology.CAMPAIGN_API: {
        topology.CAMPAIGNS_TABLE: READ_WRITE,
        topology.PROFILES_TABLE: READ_ONLY,  # dry runs
        topology.LEDGER_TABLE: "GetItem + Query",  # dry runs: contact histories; runs' message counts
        topology.OFFERS_TABLE: READ_WRITE,  # a stopped run's offer plans released
    },
    topology.CAMPAIGN_SCHEDULER: {
        topology.CAMPAIGNS_TABLE: READ_WRITE,
        topology.PROFILES_TABLE: READ_ONLY,  # sweeps
        topology.OFFERS_TABLE: READ_WRITE,  # expiries
    },
    topology.JOURNEY: {
        topology.CAMPAIGNS_TABLE: READ_WRITE,
        topology.PROFILES_TABLE: READ_ONLY,
        topology.OFFERS_TABLE: READ_WRITE,  # a treated entry's offers reserved at entry
    },
    topology.OFFER_API: {topology.OFFERS_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},
    topology.OFFER_EVENTS: {topology.OFFERS_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},
    topology.LOYALTY_API: {topology.OFFERS_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},
    topology.LOYALTY_EVENTS: {topology.OFFERS_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},
    topology.INBOX_API: {topology.LEDGER_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},  # inboxes, dedupe
    topology.PREFERENCE_CENTRE: {topology.LEDGER_TABLE: READ_WRITE, topology.PROFILES_TABLE: READ_ONLY},  # dedupe
    topology.MESSAGE_RECEIPTS: {topology.LEDGER_TABLE: READ_WRITE},
    topology.DELIVERY_EVENTS: {topology.LEDGER_TABLE: READ_WRITE},
    topology.MODEL_API: {topology.PROFILES_TABLE: READ_WRITE},  # one person's score and the tags that read it
    topology.ANALYTICS_API: {},  # the warehouse's Parquet and Athena, no table
}
"""What each handler does with each table (read from functions/<name>/handler.py and the stores it builds)."""


def test_table_rights_follow_what_each_function_does(synth: Synth) -> None:
    assert set(TABLE_ACCESS) == set(topology.FUNCTIONS)
    table_ids = {
        spec: next(k for k in synth.resources("AWS::DynamoDB::Table") if k.startswith(f"Storage{spec.logical_id}"))
        for spec in topology.TABLES
    }
    for fn_spec, expected in TABLE_ACCESS.items():
        statements = _role_statements(synth, fn_spec)
        for table_spec, table_id in table_ids.items():
            on_table = [s for s in statements if table_id in referenced_ids(s)]
            granted = statement_actions(on_table)
            access = expected.get(table_spec)
            where = f"{fn_spec.key} on {table_spec.logical_id}"
            if access is None:
                # Given a table the function never touches / Then it has no right on it at all
                assert granted == set(), where
                continue
            if access == "GetItem":
                assert granted == {"dynamodb:GetItem"}, where
                continue
            if access == "Scan":
                assert granted == {"dynamodb:Scan"}, where
                continue
            if access == "GetItem + Query":
                assert granted == {"dynamodb:GetItem", "dynamodb:Query"}, where
                continue
            if access == "GetItem + PutItem":
                assert granted == {"dynamodb:GetItem", "dynamodb:PutItem"}, where
                continue
            if access == "GetItem + Query + PutItem + UpdateItem":
                assert granted == {f"dynamodb:{a}" for a in ("GetItem", "Query", "PutItem", "UpdateItem")}, where
                continue
            assert {"dynamodb:GetItem", "dynamodb:Query"} <= granted, where
            if access == READ_ONLY:
                assert not granted & TABLE_WRITES, where
            elif access == READ_WRITE:
                assert granted >= TABLE_WRITES, where
            else:
                # send only adds its message records to the timeline: a new item per message, never an update
                assert granted & TABLE_WRITES == {"dynamodb:PutItem"}, where


def test_only_the_campaign_api_and_its_scheduler_start_runs_and_only_of_the_campaign_machine(synth: Synth) -> None:
    (machine_id,) = [k for k in synth.resources("AWS::StepFunctions::StateMachine") if "CampaignStateMachine" in k]
    starters = {
        spec
        for spec in topology.FUNCTIONS
        if "states:StartExecution" in statement_actions(_role_statements(synth, spec))
    }
    assert starters == {topology.CAMPAIGN_API, topology.CAMPAIGN_SCHEDULER}
    for spec in starters:
        statements = _role_statements(synth, spec)
        starts = [s for s in statements if "states:StartExecution" in s["Action"]]
        # Given the functions that start runs / Then they start, read and stop executions of that machine only
        assert all(referenced_ids(s) == {machine_id} for s in starts), spec.key
        run_rights = {a for a in statement_actions(statements) if a.startswith("states:")}
        assert run_rights == {"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}, spec.key


def test_the_audience_api_reads_the_sources_secret_only_for_the_ad_accounts(synth: Synth) -> None:
    # Given the audience API, which activates audiences with the brands' ad accounts (the sources secret's ad_platforms)
    secrets = synth.resources("AWS::SecretsManager::Secret")
    (sources_id,) = [k for k in secrets if k.startswith("SourceSecrets")]
    (keys_id,) = [k for k in secrets if k.startswith("ApiKeys")]
    reads = [
        s for s in _role_statements(synth, topology.AUDIENCE_API) if "secretsmanager:GetSecretValue" in s["Action"]
    ]
    # Then it reads exactly the API keys and the sources secret, and may not change either
    assert set().union(*(referenced_ids(s) for s in reads)) == {keys_id, sources_id}
    actions = statement_actions(_role_statements(synth, topology.AUDIENCE_API))
    assert not {
        a
        for a in actions
        if a.startswith("secretsmanager:") and a.startswith(("secretsmanager:Put", "secretsmanager:Update"))
    }


def _object_writes_under(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    """The object keys (as written in the policy, after the bucket ARN) a role may PutObject under `prefix`."""
    tails = set()
    for statement in statements:
        if "s3:PutObject" not in statement_actions([statement]):
            continue
        for resource in resource_list(statement):
            tail = resource["Fn::Join"][1][-1] if isinstance(resource, dict) and "Fn::Join" in resource else ""
            if tail.startswith(f"/{prefix}"):
                tails.add(tail)
    return tails


def test_only_training_writes_model_bytes_and_the_model_api_writes_only_the_latest_pointers(synth: Synth) -> None:
    # Given every function's role / When its object writes under models/ are read
    writers = {
        spec: tails
        for spec in topology.FUNCTIONS
        if (tails := _object_writes_under(_role_statements(synth, spec), topology.MODELS_PREFIX))
    }
    # Then the train function writes versions (bytes and manifests), and the model API only each model's latest.json
    # (a rollback): the pointer names a hash it cannot make the bytes match
    assert writers == {
        topology.TRAIN: {f"/{topology.MODELS_PREFIX}*"},
        topology.MODEL_API: {f"/{topology.MODELS_PREFIX}*/latest.json"},
    }


def _spelled(resource: Any) -> str:
    """A policy resource as text: `{"Ref": "AWS::Region"}` as `<AWS::Region>` (how cdk-nag spells it too)."""
    if isinstance(resource, str):
        return resource
    return "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in resource["Fn::Join"][1])


def test_only_the_score_machine_runs_child_executions_and_only_of_itself(synth: Synth) -> None:
    from infra.app import STACK_ID

    name = f"{STACK_ID}-{topology.SCORE_MACHINE.key}"
    in_this_account = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
    for machine_id, machine in synth.resources("AWS::StepFunctions::StateMachine").items():
        # Given each machine's role / When its Step Functions rights are read
        statements = policy_statements(synth, get_att_id(machine["Properties"]["RoleArn"]))
        rights = {
            action: {_spelled(r) for s in statements if action in statement_actions([s]) for r in resource_list(s)}
            for action in statement_actions(statements)
            if action.startswith("states:")
        }
        if not machine_id.startswith(f"StateMachines{topology.SCORE_MACHINE.logical_id}"):
            assert rights == {}, machine_id  # Then the other machines (inline Maps) start nothing
            continue
        # Then the score machine (a Distributed Map) starts executions of itself, by name, never `*`, and describes
        # and stops its own executions only (the Map Run's children are `{name}/{label}:{id}`)
        executions = {f"{in_this_account}:execution:{name}:*", f"{in_this_account}:execution:{name}/*"}
        assert rights == {
            "states:StartExecution": {f"{in_this_account}:stateMachine:{name}"},
            "states:DescribeExecution": executions,
            "states:StopExecution": executions,
        }


def _text(resource: Any) -> str:
    """Any policy resource as text: a Ref as `<id>`, a GetAtt as `<id.Attr>`, a join of them spelled out."""
    if isinstance(resource, str):
        return resource
    if "Ref" in resource:
        return f"<{resource['Ref']}>"
    if "Fn::GetAtt" in resource:
        return f"<{'.'.join(resource['Fn::GetAtt'])}>"
    return "".join(_text(part) for part in resource["Fn::Join"][1])


def test_the_analytics_api_queries_only_its_workgroup_over_the_warehouse_tables_it_reads(synth: Synth) -> None:
    from infra.app import STACK_ID
    from infra.components.warehouse import database_name

    statements = _role_statements(synth, topology.ANALYTICS_API)
    rights: dict[str, set[str]] = {}
    for statement in statements:
        for action in statement_actions([statement]):
            rights.setdefault(action, set()).update(_text(r) for r in resource_list(statement))
    in_account = "arn:<AWS::Partition>:{}:<AWS::Region>:<AWS::AccountId>"
    # Given its role / Then it starts and reads Athena queries in the stack's workgroup only
    (workgroup,) = synth.resources("AWS::Athena::WorkGroup")
    queries = {f"{in_account.format('athena')}:workgroup/<{workgroup}>"}
    assert {a: r for a, r in rights.items() if a.startswith("athena:")} == {
        a: queries for a in ("athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults")
    }
    # And reads the Glue catalog's warehouse database and only the three tables the reports read
    database, glue = database_name(STACK_ID), in_account.format("glue")
    tables = {f"{glue}:table/{database}/{name}" for name in ("profiles", "events", "tags")}
    catalog = {f"{glue}:catalog", f"{glue}:database/{database}", *tables}
    assert {a: r for a, r in rights.items() if a.startswith("glue:")} == {
        a: catalog for a in ("glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions")
    }
    # And S3: the warehouse's Parquet read, its query results and requests read and written under
    # analytics-results/, nothing else; listing only under those two prefixes
    (bucket,) = {r.split("/", 1)[0] for r in rights["s3:GetObject"]}
    warehouse, results = f"{bucket}/{topology.WAREHOUSE_PREFIX}*", f"{bucket}/{topology.ANALYTICS_RESULTS_PREFIX}*"
    assert rights["s3:GetObject"] == {warehouse, results}
    for action in ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"):
        assert rights[action] == {results}, action
    (listing,) = _list_statements(statements, "s3:ListBucket")
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": [f"{topology.WAREHOUSE_PREFIX}*", f"{topology.ANALYTICS_RESULTS_PREFIX}*"]}
    }
    assert rights["s3:ListBucket"] == rights["s3:GetBucketLocation"] == {bucket}
    s3 = {a for a in rights if a.startswith("s3:")}
    assert s3 == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucket",
        "s3:GetBucketLocation",
    }
    # And no table, no bus, no queue, no machine
    assert not {a for a in rights if a.startswith(("dynamodb:", "events:", "sqs:", "states:"))}


def test_only_the_settings_api_writes_the_api_keys_and_manages_the_console_users(synth: Synth) -> None:
    from infra.components.access import CONSOLE_USER_ADMIN_ACTIONS

    secrets = synth.resources("AWS::SecretsManager::Secret")
    (keys_id,) = [k for k in secrets if k.startswith("ApiKeys")]
    (sources_id,) = [k for k in secrets if k.startswith("SourceSecrets")]
    (pool_id,) = synth.resources("AWS::Cognito::UserPool")
    for spec in topology.FUNCTIONS:
        statements = _role_statements(synth, spec)
        actions = statement_actions(statements)
        writes = {
            a
            for a in actions
            if a.startswith("secretsmanager:") and not a.startswith(("secretsmanager:Get", "secretsmanager:Describe"))
        }
        users = {a for a in actions if a.startswith("cognito-idp:")}
        if spec is not topology.OPERATIONS:
            # Given any other function / Then it changes no secret and touches no user
            assert writes == set() and users == set(), spec.key
            continue
        # Given the operations function (the settings API) / Then it puts new versions of the API keys secret only
        assert writes == {"secretsmanager:PutSecretValue"}
        puts = [s for s in statements if "secretsmanager:PutSecretValue" in statement_actions([s])]
        assert set().union(*(referenced_ids(s) for s in puts)) == {keys_id}
        # And reads that secret and the sources secret (listed without their values), no other
        reads = [s for s in statements if "secretsmanager:GetSecretValue" in statement_actions([s])]
        assert set().union(*(referenced_ids(s) for s in reads)) == {keys_id, sources_id}
        # And its user-pool rights are exactly the admin actions it uses, on the console's user pool only
        assert users == set(CONSOLE_USER_ADMIN_ACTIONS)
        on_pool = [s for s in statements if statement_actions([s]) & users]
        assert set().union(*(referenced_ids(s) for s in on_pool)) == {pool_id}
        assert all("*" not in resource_list(s) for s in on_pool)
    # And it is told which pool (the variable the settings are validated from)
    _, fn = function_by_handler(synth, topology.OPERATIONS.handler)
    assert fn["Properties"]["Environment"]["Variables"][topology.CONSOLE_USER_POOL_ENV] == {"Ref": pool_id}
