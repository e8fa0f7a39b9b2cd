"""Least privilege: what each function may touch, in one table, so a review reads one file.

Every function key in `cdp.topology.FUNCTIONS` must have an entry; a new function without one fails synth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Fn, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from cdp import topology
from cdp.audiences.models import AUDIENCES_PREFIX, DEFINITIONS_PREFIX
from cdp.imports import keys as imports
from cdp.models.keys import latest_key
from cdp.tags.catalog_source import CATALOG_PREFIX
from cdp.warehouse.schema import ERASURES_PREFIX as WAREHOUSE_ERASURES_PREFIX
from cdp.warehouse.schema import EVENTS, PROFILES, TAGS
from infra.config import DeployConfig
from infra.nag import XRAY_REASON, acknowledge, arn_ref, nag_resource


@dataclass(frozen=True)
class Resources:
    profiles: dynamodb.ITable
    ledger: dynamodb.ITable
    campaigns: dynamodb.ITable
    offers: dynamodb.ITable
    bucket: s3.IBucket
    bus: events.IEventBus
    api_keys: secretsmanager.ISecret
    sources: secretsmanager.ISecret
    console_users: cognito.IUserPool  # the console's users (the settings API adds and disables them)
    queues: Mapping[str, sqs.IQueue]  # by QueueSpec.logical_id
    dlqs: Mapping[str, sqs.IQueue]
    config: DeployConfig
    warehouse_database: str  # the Glue database of the warehouse tables
    analytics_workgroup: str  # the Athena workgroup the analytics API queries in


Grant = Callable[[lambda_.Function, Resources], None]


def _objects(fn: lambda_.Function, bucket: s3.IBucket, prefix: str, actions: list[str]) -> None:
    """Exact object actions on one key prefix (the CDK bucket grants add `s3:GetObject*`, `s3:Abort*`, ...)."""
    fn.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")]))
    acknowledge(
        fn.role or fn,
        f"AwsSolutions-IAM5[Resource::{arn_ref(bucket)}/{prefix}*]",
        f"S3 rights are scoped to the {prefix} key prefix this function owns or reads; keys under it are per "
        "source/model/run and unknown at deploy time.",
    )


def _list_under(fn: lambda_.Function, bucket: s3.IBucket, prefixes: list[str], action: str = "s3:ListBucket") -> None:
    """Listing only under the given prefixes (every list call the function makes names one of them)."""
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=[action],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        )
    )


def _missing_keys_answer_404(fn: lambda_.Function, bucket: s3.IBucket) -> None:
    """For functions that read keys which may not exist (a model's latest.json, a campaign artifact, an audience by
    id): without ListBucket S3 answers a missing key with 403, and the stores treat only NoSuchKey/404 as "absent".
    A prefix condition would not help: S3 checks this permission for GetObject without a prefix in the context."""
    fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))


def _read(fn: lambda_.Function, r: Resources, prefix: str) -> None:
    _objects(fn, r.bucket, prefix, ["s3:GetObject"])


def _write(fn: lambda_.Function, r: Resources, prefix: str) -> None:
    _objects(fn, r.bucket, prefix, ["s3:PutObject"])


def _read_write(fn: lambda_.Function, r: Resources, prefix: str) -> None:
    _objects(fn, r.bucket, prefix, ["s3:GetObject", "s3:PutObject"])


def _ingest(fn: lambda_.Function, r: Resources) -> None:
    r.ledger.grant_read_write_data(fn)  # dedupe: conditional put, read back the first receipt
    _write(fn, r, topology.RAW_PREFIX)
    r.bus.grant_put_events_to(fn)
    r.api_keys.grant_read(fn)
    r.sources.grant_read(fn)


def _profile_writer(fn: lambda_.Function, r: Resources) -> None:
    r.profiles.grant_read_write_data(fn)
    r.bus.grant_put_events_to(fn)


TAG_ENGINE_LISTS = (CATALOG_PREFIX, DEFINITIONS_PREFIX)
"""What the tag engine lists (`cdp.app.tag_engine`): the catalog's files and the audience definitions; it reads only
keys it has just listed, so it needs no bucket-wide ListBucket."""


def _tag_engine(fn: lambda_.Function, r: Resources) -> None:
    """tag_update / tag_sweep: tags and history on profiles, changes on the bus, the catalog and dynamic audiences."""
    _profile_writer(fn, r)
    for prefix in TAG_ENGINE_LISTS:
        _read(fn, r, prefix)
    _list_under(fn, r.bucket, list(TAG_ENGINE_LISTS))


def _train(fn: lambda_.Function, r: Resources) -> None:
    r.profiles.grant_read_data(fn)
    _read(fn, r, topology.EXPORTS_PREFIX)
    _read_write(fn, r, topology.MODELS_PREFIX)
    _missing_keys_answer_404(fn, r.bucket)  # the first training finds no latest.json


def _scoring(fn: lambda_.Function, r: Resources) -> None:
    r.profiles.grant_read_write_data(fn)  # writes predictive tags back onto profiles
    _missing_keys_answer_404(fn, r.bucket)  # no promoted model yet
    _read(fn, r, topology.MODELS_PREFIX)
    _read(fn, r, topology.EXPORTS_PREFIX)
    # predictive tags follow the scores: the tag engine's catalog, dynamic audiences and bus announcements
    _read(fn, r, CATALOG_PREFIX)
    _read(fn, r, DEFINITIONS_PREFIX)
    r.bus.grant_put_events_to(fn)


def _model_api(fn: lambda_.Function, r: Resources) -> None:
    """The model registry API: it reads under models/ (manifests and pointers; the bytes too: a rollback verifies
    them, a score predicts with them) and writes one kind of object there, `latest.json` (a rollback): a version's
    bytes and manifest stay the train function's alone. One person scored on demand is written like the nightly
    score writes it: scores and predictive tags on the profile, the tag engine's catalog and dynamic audiences read,
    its announcements on the bus."""
    r.api_keys.grant_read(fn)
    _read(fn, r, topology.MODELS_PREFIX)
    pointers = latest_key("*")  # models/*/latest.json
    fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[r.bucket.arn_for_objects(pointers)]))
    acknowledge(
        fn.role or fn,
        f"AwsSolutions-IAM5[Resource::{arn_ref(r.bucket)}/{pointers}]",
        "A rollback writes one object per model, its latest.json pointer; model names are data, unknown at deploy "
        "time. The pointer names the SHA-256 the version's bytes must match, which this function cannot write.",
    )
    _missing_keys_answer_404(fn, r.bucket)  # an unknown model's or version's manifest is a 404, not a 503
    r.profiles.grant_read_write_data(fn)
    for prefix in TAG_ENGINE_LISTS:
        _read(fn, r, prefix)
    r.bus.grant_put_events_to(fn)


def _campaign(fn: lambda_.Function, r: Resources) -> None:
    # No ledger right: the handler never touches that table (its env var is only validated by CampaignSettings).
    r.profiles.grant_read_data(fn)
    _missing_keys_answer_404(fn, r.bucket)  # artifacts of a run not written yet, an audience id that does not exist
    _read(fn, r, topology.EXPORTS_PREFIX)
    _read(fn, r, topology.MODELS_PREFIX)
    _read_write(fn, r, topology.CAMPAIGNS_PREFIX)
    _read(fn, r, AUDIENCES_PREFIX)  # a request may name a stored audience: its definition and snapshots
    r.offers.grant_read_write_data(fn)  # the run's catalog offers reserved from their pools, released at the end
    r.bus.grant_put_events_to(fn)  # each selected person's group (campaign_assigned), filed on their timeline


def _audience_api(fn: lambda_.Function, r: Resources) -> None:
    """Audience packages: definitions and snapshots under audiences/ (deletes are tombstones: no delete right),
    the brand's tag catalog (read), profiles and timelines (read: sizes, previews, exports)."""
    r.profiles.grant_read_data(fn)
    _read_write(fn, r, AUDIENCES_PREFIX)
    _read(fn, r, CATALOG_PREFIX)
    _missing_keys_answer_404(fn, r.bucket)  # GET /v1/audiences/{id} of an unknown id is a 404, not a 503
    r.api_keys.grant_read(fn)
    r.sources.grant_read(fn)  # the brands' ad accounts: activation uploads (records under audiences/activations/)


def _campaign_api(fn: lambda_.Function, r: Resources) -> None:
    """Campaign definitions, states, runs and switches (the campaigns table); run results under campaigns/ (read).
    Starting, reading and stopping runs on the campaign state machine: `grant_campaign_runs`, once it exists."""
    r.campaigns.grant_read_write_data(fn)
    _read(fn, r, topology.CAMPAIGNS_PREFIX)
    _missing_keys_answer_404(fn, r.bucket)  # a run's summary before it has finished
    r.api_keys.grant_read(fn)
    # dry runs: the selection on today's profiles and stored audiences, the contact histories caps read
    r.profiles.grant_read_data(fn)
    _read(fn, r, AUDIENCES_PREFIX)
    _read(fn, r, topology.MODELS_PREFIX)  # targeting auto: the uplift model's held-out comparison (its manifest)
    # contact histories (dry runs' caps); each run's message counts by status (the message log's MSGSTATS items)
    r.ledger.grant(fn, "dynamodb:GetItem", "dynamodb:Query")
    r.bus.grant_put_events_to(fn)  # external signals (POST /v1/signals), for the journey function
    r.offers.grant_read_write_data(fn)  # a stopped run's offer plans go back to their pools


def _campaign_scheduler(fn: lambda_.Function, r: Resources) -> None:
    """The due list and the campaigns' states and runs; runs start on the state machine (`grant_campaign_runs`);
    journeys' due waits move on (places and timers in the campaigns table), their sends ordered on the bus; the
    sweeps of date and weather journeys scan the profiles."""
    r.campaigns.grant_read_write_data(fn)
    r.bus.grant_put_events_to(fn)
    r.profiles.grant_read_data(fn)
    r.offers.grant_read_write_data(fn)  # offers whose validity ended expire: wallet entries, holds released
    r.sources.grant_read(fn)  # the brands' WeChat Pay merchants: red packets and coupons left pending asked again


def _journey(fn: lambda_.Function, r: Resources) -> None:
    """Persons enter and leave journeys (the campaigns table), read for their audience conditions (profiles),
    their sends ordered on the bus (its queue and DLQ: `Messaging.subscribe_consumers`)."""
    r.campaigns.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    r.bus.grant_put_events_to(fn)
    r.offers.grant_read_write_data(fn)  # a treated entry's catalog offers reserved at entry, released at exit


def _offer_api(fn: lambda_.Function, r: Resources) -> None:
    """The offer catalog, code pools, wallets and budget pools (the offers table); persons read to issue to them;
    issues and expiries published as canonical events for the timelines."""
    r.offers.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    r.bus.grant_put_events_to(fn)
    r.api_keys.grant_read(fn)
    r.sources.grant_read(fn)  # the claim links' key (the tracked-link secret) and the brands' red packet merchants


def _offer_events(fn: lambda_.Function, r: Resources) -> None:
    """Redemptions: wallets, codes and budget holds in the offers table (its queue and DLQ:
    `Messaging.subscribe_consumers`)."""
    r.offers.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)


def _loyalty_api(fn: lambda_.Function, r: Resources) -> None:
    """Members' accounts and operations (the offers table); persons read to find who merged into whom; burns,
    adjustments and conversions published as canonical events for the timelines."""
    r.offers.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    r.bus.grant_put_events_to(fn)
    r.api_keys.grant_read(fn)


def _loyalty_events(fn: lambda_.Function, r: Resources) -> None:
    """Orders earn and returns give back points: accounts in the offers table, points events on the bus; persons
    read when a merge moved an order's person meanwhile (its queue and DLQ: `Messaging.subscribe_consumers`)."""
    r.offers.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    r.bus.grant_put_events_to(fn)


def _inbox_api(fn: lambda_.Function, r: Resources) -> None:
    """The in-app inbox: the persons' inboxes and the receipts' dedupe claims (the ledger table); persons read (a
    token's person, merges followed, or found by identifier); each read's receipt archived under raw/ and published
    like ingest's; API keys (tokens issued with inbox:issue) and the sources secret (the tokens' key)."""
    r.ledger.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    _write(fn, r, topology.RAW_PREFIX)
    r.bus.grant_put_events_to(fn)
    r.api_keys.grant_read(fn)
    r.sources.grant_read(fn)


def _preference_centre(fn: lambda_.Function, r: Resources) -> None:
    """The preference centre: persons read (a link's person, merges followed); each consent change archived under
    raw/, claimed in the ledger table and published like ingest's; the sources secret (the links' key)."""
    r.ledger.grant_read_write_data(fn)
    r.profiles.grant_read_data(fn)
    _write(fn, r, topology.RAW_PREFIX)
    r.bus.grant_put_events_to(fn)
    r.sources.grant_read(fn)


def _delivery_events(fn: lambda_.Function, r: Resources) -> None:
    """SES and End User Messaging delivery events ingested as receipts: archived raw, deduped in the ledger table,
    published on the bus (its queue and DLQ: `Messaging.subscribe_consumers`)."""
    r.ledger.grant_read_write_data(fn)
    _write(fn, r, topology.RAW_PREFIX)
    r.bus.grant_put_events_to(fn)


def _message_receipts(fn: lambda_.Function, r: Resources) -> None:
    """Receipts move messages in the message log and their runs' counts (the ledger table; its queue and DLQ:
    `Messaging.subscribe_consumers`)."""
    r.ledger.grant_read_write_data(fn)


def grant_campaign_runs(functions: Mapping[str, lambda_.Function], machine: sfn.IStateMachine) -> None:
    """The functions that start runs: start executions of the campaign machine, read and stop them."""
    for key in (topology.CAMPAIGN_API.key, topology.CAMPAIGN_SCHEDULER.key):
        fn = functions[key]
        machine.grant_start_execution(fn)
        machine.grant_execution(fn, "states:DescribeExecution", "states:StopExecution")
        fn.add_environment(topology.CAMPAIGN_MACHINE_ARN_ENV, machine.state_machine_arn)
        acknowledge(
            fn.role or fn,
            f"AwsSolutions-IAM5[Resource::{_executions_of(machine)}]",
            "Executions of the campaign state machine only: each run is an execution named by its run id.",
        )


def _executions_of(machine: sfn.IStateMachine) -> str:
    """How cdk-nag spells the `execution:{machine name}:*` resource CDK's grant_execution writes."""
    name = Fn.select(6, Fn.split(":", machine.state_machine_arn))
    arn = Stack.of(machine).format_arn(
        service="states", resource="execution", resource_name=f"{name}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )
    return nag_resource(machine, arn)


def _send(fn: lambda_.Function, r: Resources) -> None:
    r.profiles.grant_read_data(fn)
    # the brand's stop switch (BRAND#{brand} / SWITCH); a send held back by quiet hours (DEFERRED#...); what became
    # of a journey's messages (JOURNEY#... / OUTCOMES, counters); the due list (Query) and the due campaigns' states
    # and versions: higher-priority runs due later today keep their cap room
    r.campaigns.grant(fn, "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem")
    # each message sent (or suppressed) goes on the person's timeline: one new item per message, never an update
    r.profiles.grant(fn, "dynamodb:PutItem")
    r.ledger.grant_read_write_data(fn)  # exactly-once: idempotency record per (run, person, step)
    # a step's catalog offer issued to each recipient (wallet, code, budget hold) and its coupon_issued event
    r.offers.grant_read_write_data(fn)
    r.bus.grant_put_events_to(fn)
    _missing_keys_answer_404(fn, r.bucket)  # a batch file of the run that is not there
    _read(fn, r, topology.CAMPAIGNS_PREFIX)
    _write(fn, r, topology.OUTBOX_PREFIX)
    r.sources.grant_read(fn)  # the tracked-link signing secret
    stack = Stack.of(fn)
    identities = [
        stack.format_arn(service="ses", resource="identity", resource_name=name)
        for name in (r.config.email_from_address, r.config.email_domain)
    ]
    fn.add_to_role_policy(iam.PolicyStatement(actions=["ses:SendEmail"], resources=identities))
    sms_identity = sms_identity_arn(stack, r.config)
    fn.add_to_role_policy(iam.PolicyStatement(actions=["sms-voice:SendTextMessage"], resources=[sms_identity]))
    if "*" in sms_identity:
        acknowledge(
            fn.role or fn,
            f"AwsSolutions-IAM5[Resource::{nag_resource(stack, sms_identity)}]",
            "SMS is sent from the configured origination identity only; a sender ID's ARN carries the country "
            "it is registered in (any of them), a bare phone number's ARN an opaque id (set its ARN to narrow it).",
        )


ERASED_PREFIXES = (
    topology.RAW_PREFIX,
    topology.CAMPAIGNS_PREFIX,
    topology.EXPORTS_PREFIX,
    topology.OUTBOX_PREFIX,
    topology.IMPORTS_PREFIX,  # dropped files, their rejects and reports lose the person's rows
    topology.REJECTS_PREFIX,  # pulled platform records that were not ingested
    WAREHOUSE_ERASURES_PREFIX,  # the request the warehouse export applies to its Parquet (cdp.warehouse.erasure)
)
"""Where an erasure (`cdp.privacy`) finds a person's data in the bucket: it rewrites or deletes those objects."""


def _profile_api(fn: lambda_.Function, r: Resources) -> None:
    r.profiles.grant_read_write_data(fn)  # views, edits (resolved as events), identity operations, erasure
    r.ledger.grant_read_write_data(fn)  # erasure: the dedupe records name raw bodies; send records are deleted
    r.bus.grant_put_events_to(fn)  # profile.updated / merged, person.split, person.erased
    r.api_keys.grant_read(fn)  # API keys with scopes, like ingest
    r.offers.grant_read_write_data(fn)  # the wallet in the 360 view; erasure: wallets, holds, loyalty accounts
    # erasure finds a person's loyalty operations through the offers table's by-person index (only this function)
    index = f"{r.offers.table_arn}/index/{topology.OFFERS_BY_PERSON.name}"
    fn.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[index]))
    erase = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"]
    for prefix in ERASED_PREFIXES:
        _objects(fn, r.bucket, prefix, erase)
    _missing_keys_answer_404(fn, r.bucket)  # an erasure reads keys named by old records, which may have expired
    # The bucket is versioned: an erased object's older versions are listed (by its key) and deleted too.
    _list_under(fn, r.bucket, list(ERASED_PREFIXES), action="s3:ListBucketVersions")


def sms_identity_arn(stack: Stack, config: DeployConfig) -> str:
    """The ARN SendTextMessage is authorized against for the configured origination identity (the identity's own
    ARN, a pool id, a phone-number id, a bare E.164 number or a sender ID). Never `*`: a number whose id we cannot
    derive is still confined to this account's and region's phone numbers."""
    identity = config.sms_origination_identity

    def sms_arn(resource: str, name: str) -> str:
        return stack.format_arn(
            service="sms-voice", resource=resource, resource_name=name, arn_format=ArnFormat.SLASH_RESOURCE_NAME
        )

    if identity.startswith("arn:"):
        return identity
    if identity.startswith("pool-"):
        return sms_arn("pool", identity)
    if identity.startswith("phone-"):
        return sms_arn("phone-number", identity)
    if identity.startswith("+"):
        # phone-number ARNs carry the number's id (phone-...), not the number: configure the id or ARN to narrow
        return sms_arn("phone-number", "*")
    return sms_arn("sender-id", f"{identity}/*")  # sender-id/{SenderId}/{IsoCountryCode}


CONSOLE_USER_ADMIN_ACTIONS = (
    "cognito-idp:ListUsers",
    "cognito-idp:AdminCreateUser",
    "cognito-idp:AdminSetUserPassword",
    "cognito-idp:AdminDisableUser",
    "cognito-idp:AdminDeleteUser",  # only a user it just made whose password could not be set (cdp.access.aws)
)
"""What the settings API does in the console's user pool, and nothing else there (no attribute updates, no sign-in
on a user's behalf)."""


def _operations(fn: lambda_.Function, r: Resources) -> None:
    """Dead letters (list, redrive into the source queue), archive replay (read raw/, republish, re-claim) and the
    person-item layout migration (scan and rewrite person items, keep its progress in the table). Settings: the API
    keys (read, and written back with PutSecretValue: that secret only), the sources (read: listed without their
    secrets) and the console's users (the admin actions above, on the stack's user pool only)."""
    r.ledger.grant_read_write_data(fn)  # replay claims each event again (dedupe), like ingest
    r.profiles.grant_read_write_data(fn)
    _read(fn, r, topology.RAW_PREFIX)
    _list_under(fn, r.bucket, [topology.RAW_PREFIX])  # replay lists raw/{source}/{hour}/ and reads what it listed
    r.bus.grant_put_events_to(fn)
    r.api_keys.grant_read(fn)
    fn.add_to_role_policy(
        iam.PolicyStatement(actions=["secretsmanager:PutSecretValue"], resources=[r.api_keys.secret_arn])
    )
    r.sources.grant_read(fn)
    r.console_users.grant(fn, *CONSOLE_USER_ADMIN_ACTIONS)
    for queue in r.queues.values():
        queue.grant_send_messages(fn)
    for dlq in r.dlqs.values():
        dlq.grant_consume_messages(fn)


def _file_import(fn: lambda_.Function, r: Resources) -> None:
    """Batch file imports: read the dropped file (the exact planned version), write plan, reports and rejects."""
    r.ledger.grant_read_write_data(fn)  # dedupe claims, and the progress record IMPORT#{import_id}
    _objects(fn, r.bucket, imports.INCOMING_PREFIX, ["s3:GetObject", "s3:GetObjectVersion"])
    _read_write(fn, r, imports.REPORTS_PREFIX)
    _missing_keys_answer_404(fn, r.bucket)  # a report not written yet (the first chunk of an import)
    _write(fn, r, imports.REJECTS_PREFIX)
    r.bus.grant_put_events_to(fn)


def _history_import(fn: lambda_.Function, r: Resources) -> None:
    """History imports: read the dropped file, write work chunks, reports and rejects; write persons, identifiers and
    tag history into the profiles table (items only: no transactions, nothing published); read the catalog and the
    dynamic audiences the tag replay evaluates."""
    r.ledger.grant_read_write_data(fn)  # the progress record IMPORT#{import_id}
    r.profiles.grant_read_write_data(fn)
    _objects(fn, r.bucket, imports.HISTORY_PREFIX, ["s3:GetObject", "s3:GetObjectVersion"])
    _read_write(fn, r, imports.REPORTS_PREFIX)
    _missing_keys_answer_404(fn, r.bucket)
    _write(fn, r, imports.REJECTS_PREFIX)
    for prefix in TAG_ENGINE_LISTS:
        _read(fn, r, prefix)
    _list_under(fn, r.bucket, list(TAG_ENGINE_LISTS))


def _platform_pull(fn: lambda_.Function, r: Resources) -> None:
    """Scheduled Tmall/Taobao/JD pulls: archive each page, record rejects, dedupe and publish like ingest."""
    r.ledger.grant_read_write_data(fn)  # dedupe claims, shop cursors CURSOR#{shop}, order buyers BUYER#{shop}#{order}
    _write(fn, r, topology.RAW_PREFIX)
    _write(fn, r, f"{topology.REJECTS_PREFIX}platforms/")
    r.bus.grant_put_events_to(fn)
    r.sources.grant_read(fn)  # the shops' app keys, secrets and sessions


def _warehouse_export(fn: lambda_.Function, r: Resources) -> None:
    """The nightly warehouse export: one scan of the profiles table (nothing else of it); under warehouse/ it lists,
    writes, replaces and deletes the Parquet files, its state and the erasure requests it applies. It reads only keys
    it has listed, so no bucket-wide ListBucket."""
    r.profiles.grant(fn, "dynamodb:Scan")
    _objects(fn, r.bucket, topology.WAREHOUSE_PREFIX, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
    _list_under(fn, r.bucket, [topology.WAREHOUSE_PREFIX])


def _analytics_api(fn: lambda_.Function, r: Resources) -> None:
    """The reports: Athena queries in the stack's workgroup only, which read the warehouse's profiles, tags and events
    (Athena reads the Glue tables and the Parquet with the caller's rights) and write their results under
    analytics-results/, where the function also keeps each query's request; DuckDB (when it is the engine) lists and
    reads the same warehouse files. Nothing else: no table, no other prefix."""
    r.api_keys.grant_read(fn)
    stack = Stack.of(fn)
    workgroup = stack.format_arn(service="athena", resource="workgroup", resource_name=r.analytics_workgroup)
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"],
            resources=[workgroup],
        )
    )
    database = r.warehouse_database
    catalog = [
        stack.format_arn(service="glue", resource="catalog"),
        stack.format_arn(service="glue", resource="database", resource_name=database),
        *(
            stack.format_arn(service="glue", resource="table", resource_name=f"{database}/{table.name}")
            for table in (PROFILES, EVENTS, TAGS)  # the tags table: the catalog's value distributions
        ),
    ]
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions"],
            resources=catalog,
        )
    )
    _read(fn, r, topology.WAREHOUSE_PREFIX)
    results = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    _objects(fn, r.bucket, topology.ANALYTICS_RESULTS_PREFIX, results)
    # a missing query is found missing by listing its key (no bucket-wide ListBucket)
    _list_under(fn, r.bucket, [topology.WAREHOUSE_PREFIX, topology.ANALYTICS_RESULTS_PREFIX])
    fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[r.bucket.bucket_arn]))


GRANTS: Mapping[str, Grant] = {
    topology.INGEST.key: _ingest,
    topology.IDENTITY_MERGE.key: _profile_writer,
    topology.TAG_UPDATE.key: _tag_engine,
    topology.TAG_SWEEP.key: _tag_engine,
    topology.TRAIN.key: _train,
    topology.SCORING.key: _scoring,
    topology.CAMPAIGN.key: _campaign,
    topology.SEND.key: _send,
    topology.PROFILE_API.key: _profile_api,
    topology.OPERATIONS.key: _operations,
    topology.FILE_IMPORT.key: _file_import,
    topology.HISTORY_IMPORT.key: _history_import,
    topology.PLATFORM_PULL.key: _platform_pull,
    topology.WAREHOUSE_EXPORT.key: _warehouse_export,
    topology.AUDIENCE_API.key: _audience_api,
    topology.CAMPAIGN_API.key: _campaign_api,
    topology.CAMPAIGN_SCHEDULER.key: _campaign_scheduler,
    topology.JOURNEY.key: _journey,
    topology.OFFER_API.key: _offer_api,
    topology.OFFER_EVENTS.key: _offer_events,
    topology.LOYALTY_API.key: _loyalty_api,
    topology.LOYALTY_EVENTS.key: _loyalty_events,
    topology.INBOX_API.key: _inbox_api,
    topology.PREFERENCE_CENTRE.key: _preference_centre,
    topology.MESSAGE_RECEIPTS.key: _message_receipts,
    topology.DELIVERY_EVENTS.key: _delivery_events,
    topology.MODEL_API.key: _model_api,
    topology.ANALYTICS_API.key: _analytics_api,
}


def grant_least_privilege(functions: Mapping[str, lambda_.Function], resources: Resources) -> None:
    missing = sorted(set(functions) - set(GRANTS))
    if missing:
        raise KeyError(f"no access entry in infra/components/access.py for functions {missing}")
    for key, fn in functions.items():
        GRANTS[key](fn, resources)
        role = fn.role or fn
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The basic execution policy only lets the function write its own CloudWatch Logs streams.",
        )
        # Only X-Ray's statement has `Resource::*` (tests/infra check it): this acknowledgement covers nothing else.
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
