"""The one source of truth for resource names, key shapes, rules and wiring.

The CDK stack, the local runtime and the tests all read this module, so a table key or a rule pattern is
declared once. Physical names here are the *local* names; on AWS, CDK lets CloudFormation name resources and
hands the names to functions through the environment variables listed on each FunctionSpec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

APP = "cdp"

# ---- metrics ------------------------------------------------------------------------------------------------
# Powertools EMF (`cdp.observability.metrics`): every value carries the dimension `service`, the emitting function's
# local name (the stack sets POWERTOOLS_SERVICE_NAME to it); the dashboard and alarms read these names.
METRICS_NAMESPACE = "CustomerDataPlatform"
CHANNEL_DIMENSION = "channel"  # the send function's sent/failed per channel: a handful of values (ChannelName)
BUDGET_POOL_LOW_METRIC = "BudgetPoolLow"  # a draw that left a budget pool (or found it) under a tenth of its total

# ---- tables -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index, keys only: sparse (only items carrying `partition_key` are in it)."""

    name: str
    partition_key: str


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    local_name: str
    env_var: str
    partition_key: str = "pk"
    sort_key: str = "sk"
    ttl_attribute: str | None = "expires_at"
    indexes: tuple[IndexSpec, ...] = ()


PROFILES_TABLE = TableSpec(logical_id="ProfilesTable", local_name="cdp-profiles", env_var="PROFILES_TABLE")
"""Persons, identifier index, timelines, applied-event markers. Key shapes: see `cdp.profile.keys`."""

LEDGER_TABLE = TableSpec(logical_id="LedgerTable", local_name="cdp-ledger", env_var="LEDGER_TABLE")
"""Ingest dedupe (source, event id), send idempotency records, campaign run records."""

CAMPAIGNS_TABLE = TableSpec(logical_id="CampaignsTable", local_name="cdp-campaigns", env_var="CAMPAIGNS_TABLE")
"""Campaign definitions (versions), states, runs, brand stop switches, the due list (`cdp.campaigns.dynamodb`)."""

OFFERS_BY_PERSON = IndexSpec(name="by-person", partition_key="person_ref")
"""Loyalty operations by the person they were applied to (`{brand}#{person}`): their own key is the programme's
operation id (applied once whatever person it resolves to later), so erasure finds a person's through this index."""

OFFERS_TABLE = TableSpec(
    logical_id="OffersTable", local_name="cdp-offers", env_var="OFFERS_TABLE", indexes=(OFFERS_BY_PERSON,)
)
"""Budget pools and holds (`cdp.budgets.dynamodb`); offers, code pools and wallets come next to them; loyalty
accounts, operations and timers (`cdp.loyalty.dynamodb`)."""

TABLES = (PROFILES_TABLE, LEDGER_TABLE, CAMPAIGNS_TABLE, OFFERS_TABLE)

# ---- bucket, bus, secrets -----------------------------------------------------------------------------------

DATA_BUCKET_LOCAL_NAME = "cdp-data"
DATA_BUCKET_ENV = "DATA_BUCKET"
EVENT_BUS_LOCAL_NAME = "cdp-bus"
EVENT_BUS_ENV = "EVENT_BUS_NAME"
API_KEYS_SECRET_LOCAL_NAME = "cdp/api-keys"  # noqa: S105 - a secret's name, not a secret
API_KEYS_SECRET_ENV = "API_KEYS_SECRET_ID"  # noqa: S105 - an env var name
# The console's sign-in tokens (cdp.ingest.console_tokens), read by every function that takes an API key: unset, only
# API keys are accepted. On AWS the Cognito user pool's issuer, the console's app client and the pool's JWKS URL;
# locally `cdp serve`'s issuer and its keys inline.
CONSOLE_TOKEN_ISSUER_ENV = "CONSOLE_TOKEN_ISSUER"  # noqa: S105 - an env var name
CONSOLE_TOKEN_AUDIENCE_ENV = "CONSOLE_TOKEN_AUDIENCE"  # noqa: S105 - an env var name
CONSOLE_JWKS_URL_ENV = "CONSOLE_JWKS_URL"
CONSOLE_JWKS_ENV = "CONSOLE_JWKS"
CONSOLE_TOKEN_ENV = (CONSOLE_TOKEN_ISSUER_ENV, CONSOLE_TOKEN_AUDIENCE_ENV, CONSOLE_JWKS_URL_ENV)  # CONSOLE_JWKS: local
# Where the console's users are managed (cdp.access): the stack's Cognito user pool; or, in the local runtime only
# (CDK never sets it, as PLATFORM_TRANSPORT), the users file `cdp serve` signs them in from
CONSOLE_USER_POOL_ENV = "CONSOLE_USER_POOL_ID"
CONSOLE_USERS_FILE_ENV = "CONSOLE_USERS_FILE"
SOURCES_SECRET_LOCAL_NAME = "cdp/sources"  # noqa: S105 - per-source secrets: write keys, WeChat tokens, webhook keys
SOURCES_SECRET_ENV = "SOURCES_SECRET_ID"  # noqa: S105 - an env var name
SMS_ORIGINATION_ENV = "SMS_ORIGINATION_IDENTITY"
EMAIL_FROM_ENV = "EMAIL_FROM_ADDRESS"
SES_CONFIGURATION_SET_ENV = "SES_CONFIGURATION_SET"  # the stack's: SES events (delivery, bounce, ...) come back
SMS_CONFIGURATION_SET_ENV = "SMS_CONFIGURATION_SET"  # the stack's: End User Messaging delivery events come back
SEND_VIA_OUTBOX_ENV = "SEND_VIA_OUTBOX"  # "true": every channel delivers to the S3 outbox (local runtime, dry runs)
DEFAULT_REGION_ENV = "DEFAULT_PHONE_REGION"
CAMPAIGN_MACHINE_ARN_ENV = "CAMPAIGN_STATE_MACHINE_ARN"
LATE_ENV = (CAMPAIGN_MACHINE_ARN_ENV,)  # set by the stack once the state machines (which run functions) exist
TRACKED_LINK_BASE_URL_ENV = "TRACKED_LINK_BASE_URL"  # empty: links in messages are sent as written (no click tracking)
# Customer analytics (cdp.analytics): which engine runs the reports' SQL, and Athena's workgroup and Glue database
ANALYTICS_ENGINE_ENV = "ANALYTICS_ENGINE"  # athena (the stack's) | duckdb (the local runtime's)
ANALYTICS_WORKGROUP_ENV = "ANALYTICS_WORKGROUP"
WAREHOUSE_DATABASE_ENV = "WAREHOUSE_DATABASE"
ANALYTICS_WAIT_ENV = "ANALYTICS_WAIT_SECONDS"  # optional: how long a report waits for its query before a 202
ANALYTICS_DUCKDB_LIMIT_ENV = "ANALYTICS_DUCKDB_MAX_MB"  # optional: the most warehouse Parquet DuckDB copies per query

# S3 key prefixes inside the data bucket
RAW_PREFIX = "raw/"  # raw/{source}/{yyyy}/{mm}/{dd}/{event_id}.json
MODELS_PREFIX = "models/"  # models/{name}/{version}/model.joblib + manifest.json; models/{name}/latest.json
EXPORTS_PREFIX = "exports/"
CAMPAIGNS_PREFIX = "campaigns/"  # campaigns/{run_id}/audience.json, batches/{n}.json, summary.json
OUTBOX_PREFIX = "outbox/"  # local/webhook channel deliveries
IMPORTS_PREFIX = "imports/"  # batch file imports: incoming/{brand}/{kind}/{file}, reports/, rejects/ (cdp.imports.keys)
REJECTS_PREFIX = "rejects/"  # rejects/platforms/{shop}/{yyyy/mm/dd}/{run}.jsonl: pulled records not ingested, why
WAREHOUSE_PREFIX = "warehouse/"  # Parquet for Athena: {table}/brand_id={b}/[dt={day}/]part-*.parquet (cdp.warehouse)
ANALYTICS_RESULTS_PREFIX = "analytics-results/"  # {brand}/{report}/: each report query's request and result

# Retention of the data bucket's prefixes (S3 lifecycle rules in CDK; the erasure receipt quotes the same figures).
RAW_RETENTION_DAYS = 400  # raw request bodies: as long as the ingest dedupe records, so replay covers what dedupe does
IMPORTS_RETENTION_DAYS = 400  # dropped import files (the archive of imported rows), their reports and rejects
REJECTS_RETENTION_DAYS = 90  # pulled platform records that were not ingested, with the reason
EXPORTS_RETENTION_DAYS = 14  # profile/event exports for batch SQL
ANALYTICS_RESULTS_RETENTION_DAYS = 7  # report queries' requests and results (counts, no person): read while polled
NONCURRENT_VERSION_DAYS = 30  # the bucket is versioned: an overwritten or deleted object's old version lives this long
WAREHOUSE_NONCURRENT_DAYS = 1  # warehouse/: each run replaces snapshots and recent days; erased rows must not linger

# ---- bus events -------------------------------------------------------------------------------------------

SOURCE_INGEST = "cdp.ingest"
SOURCE_IDENTITY = "cdp.identity"
SOURCE_TAGS = "cdp.tags"
SOURCE_CAMPAIGNS = "cdp.campaigns"

EVENT_RECEIVED = "event.received"
COUPON_USED = "coupon.used"  # accepted events that name an issued coupon's code (an order, a redemption)
RECEIPTS_RECEIVED = "message.receipts"  # accepted events that report on a message sent (cdp.channels.lifecycle)
PROFILE_UPDATED = "profile.updated"
LOYALTY_ACTIVITY = "loyalty.activity"  # resolved orders and returns of brands keeping a points programme
PROFILE_MERGED = "profile.merged"
PERSON_SPLIT = "person.split"
PERSON_ERASED = "person.erased"  # a person was erased (privacy): downstream systems erase their copies
IDENTIFIER_QUARANTINED = "identifier.quarantined"
IDENTITY_CHANGED = "identity_changed"  # ProfileUpdated.event_type after a split or a manual identity operation
TAGS_CHANGED = "tags.changed"
JOURNEY_SENDS = "journey.sends"  # a journey's sends, ordered for the send function (cdp.campaigns.journeys)
SIGNAL_RECEIVED = "signal.received"  # an external signal for journeys: weather, location (cdp.campaigns.sweeps)
# Published by the tag engine (source cdp.tags) on value changes: a catalog definition's `emits` names its event
# (the bundled lifecycle tag emits lifecycle.changed); dynamic audience memberships announce entry and exit.
LIFECYCLE_CHANGED = "lifecycle.changed"
AUDIENCE_ENTERED = "audience.entered"
AUDIENCE_EXITED = "audience.exited"

# ---- queues -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    local_name: str
    dlq_env: str = ""  # the env var giving the consumer its DLQ URL (it parks failures there with the reason)
    url_env: str = ""  # the env var giving the operations function the queue's URL (redrive target)
    visibility_timeout_s: int = 180
    max_receive_count: int = 5


IDENTITY_QUEUE = QueueSpec("IdentityMergeQueue", "cdp-identity-merge", "IDENTITY_DLQ_URL", "IDENTITY_QUEUE_URL")
TAG_QUEUE = QueueSpec("TagUpdateQueue", "cdp-tag-update", "TAG_DLQ_URL", "TAG_QUEUE_URL")
JOURNEY_QUEUE = QueueSpec("JourneyQueue", "cdp-journey", "JOURNEY_DLQ_URL", "JOURNEY_QUEUE_URL")
SEND_QUEUE = QueueSpec("SendQueue", "cdp-send", "SEND_DLQ_URL", "SEND_QUEUE_URL")
OFFER_EVENTS_QUEUE = QueueSpec("OfferEventsQueue", "cdp-offer-events", "OFFER_EVENTS_DLQ_URL", "OFFER_EVENTS_QUEUE_URL")
LOYALTY_QUEUE = QueueSpec("LoyaltyQueue", "cdp-loyalty", "LOYALTY_DLQ_URL", "LOYALTY_QUEUE_URL")
DELIVERY_EVENTS_QUEUE = QueueSpec(
    "DeliveryEventsQueue", "cdp-delivery-events", "DELIVERY_EVENTS_DLQ_URL", "DELIVERY_EVENTS_QUEUE_URL"
)
RECEIPTS_QUEUE = QueueSpec(
    "MessageReceiptsQueue", "cdp-message-receipts", "RECEIPTS_DLQ_URL", "RECEIPTS_QUEUE_URL", visibility_timeout_s=60
)
QUEUES = (
    IDENTITY_QUEUE,
    TAG_QUEUE,
    JOURNEY_QUEUE,
    SEND_QUEUE,
    OFFER_EVENTS_QUEUE,
    LOYALTY_QUEUE,
    RECEIPTS_QUEUE,
    DELIVERY_EVENTS_QUEUE,
)


def dlq_name(queue: QueueSpec) -> str:
    return f"{queue.local_name}-dlq"


# ---- functions --------------------------------------------------------------------------------------------

LayerName = Literal["domain", "deps", "ml", "warehouse"]


@dataclass(frozen=True)
class FunctionSpec:
    key: str
    logical_id: str
    handler: str  # dotted path, importable locally and in the Lambda code asset
    env: tuple[str, ...]  # environment variable names the function needs
    layers: tuple[LayerName, ...] = ("domain", "deps")
    memory_mb: int = 512
    timeout_s: int = 30
    ephemeral_mb: int = 512  # /tmp: Lambda's default 512 MB, more for functions that stage files

    def __post_init__(self) -> None:
        # whatever takes an API key takes a console user's sign-in token too (cdp.ingest.console_tokens)
        if API_KEYS_SECRET_ENV in self.env and CONSOLE_TOKEN_ENV[0] not in self.env:
            object.__setattr__(self, "env", (*self.env, *CONSOLE_TOKEN_ENV))

    @property
    def local_name(self) -> str:
        return f"{APP}-{self.key.replace('_', '-')}"


_COMMON_ENV = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL")

INGEST = FunctionSpec(
    "ingest",
    "IngestFunction",
    "functions.ingest.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        LEDGER_TABLE.env_var,
        DATA_BUCKET_ENV,
        EVENT_BUS_ENV,
        API_KEYS_SECRET_ENV,
        SOURCES_SECRET_ENV,
        DEFAULT_REGION_ENV,
    ),
)
IDENTITY_MERGE = FunctionSpec(
    "identity_merge",
    "IdentityMergeFunction",
    "functions.identity_merge.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, EVENT_BUS_ENV, IDENTITY_QUEUE.dlq_env),
    timeout_s=60,
)
TAG_UPDATE = FunctionSpec(
    "tag_update",
    "TagUpdateFunction",
    "functions.tag_update.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, EVENT_BUS_ENV, DATA_BUCKET_ENV, TAG_QUEUE.dlq_env),
    timeout_s=60,
)
TAG_SWEEP = FunctionSpec(
    "tag_sweep",
    "TagSweepFunction",
    "functions.tag_sweep.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, EVENT_BUS_ENV, DATA_BUCKET_ENV),
    timeout_s=300,
)
TRAIN = FunctionSpec(
    "train",
    "TrainFunction",
    "functions.train.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, DATA_BUCKET_ENV),
    layers=("domain", "deps", "ml"),
    memory_mb=3008,
    timeout_s=900,
)
SCORING = FunctionSpec(
    "scoring",
    "ScoringFunction",
    "functions.scoring.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, DATA_BUCKET_ENV, EVENT_BUS_ENV),  # the bus: predictive tag changes
    layers=("domain", "deps", "ml"),
    memory_mb=1769,
    timeout_s=300,
)
CAMPAIGN = FunctionSpec(
    "campaign",
    "CampaignFunction",
    "functions.campaign.handler.lambda_handler",
    # the offers table: a run's catalog offers reserved from their budget pools at selection, released at its end
    # the bus: each selected person's group (campaign_assigned) filed on their timeline, for uplift models
    env=(
        *_COMMON_ENV,
        PROFILES_TABLE.env_var,
        LEDGER_TABLE.env_var,
        OFFERS_TABLE.env_var,
        DATA_BUCKET_ENV,
        EVENT_BUS_ENV,
    ),
    memory_mb=1024,
    timeout_s=300,
)
SEND = FunctionSpec(
    "send",
    "SendFunction",
    "functions.send.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        PROFILES_TABLE.env_var,
        LEDGER_TABLE.env_var,
        CAMPAIGNS_TABLE.env_var,  # the brand's stop switch, checked per batch
        OFFERS_TABLE.env_var,  # a step's catalog offer, issued to each recipient as the message leaves
        EVENT_BUS_ENV,  # the coupon_issued events of those offers, for the timelines
        DATA_BUCKET_ENV,
        SMS_ORIGINATION_ENV,
        EMAIL_FROM_ENV,
        SES_CONFIGURATION_SET_ENV,
        SMS_CONFIGURATION_SET_ENV,
        SEND_VIA_OUTBOX_ENV,
        SOURCES_SECRET_ENV,  # the tracked-link signing secret
        TRACKED_LINK_BASE_URL_ENV,
        SEND_QUEUE.dlq_env,  # a journey's send order that can never be delivered is parked with its reason
    ),
    timeout_s=120,
)

PROFILE_API = FunctionSpec(
    "profile_api",
    "ProfileApiFunction",
    "functions.profile_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        PROFILES_TABLE.env_var,
        LEDGER_TABLE.env_var,
        OFFERS_TABLE.env_var,  # the wallet in the 360 view; erasure removes wallets and loyalty accounts
        DATA_BUCKET_ENV,
        EVENT_BUS_ENV,
        API_KEYS_SECRET_ENV,
        DEFAULT_REGION_ENV,
    ),
    memory_mb=1024,
)

OPERATIONS = FunctionSpec(
    "operations",
    "OperationsFunction",
    "functions.operations.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        PROFILES_TABLE.env_var,
        LEDGER_TABLE.env_var,
        DATA_BUCKET_ENV,
        EVENT_BUS_ENV,
        API_KEYS_SECRET_ENV,  # settings: API keys are listed, created and revoked in it
        SOURCES_SECRET_ENV,  # settings: the sources are listed (without their secrets)
        CONSOLE_USER_POOL_ENV,  # settings: the console's users
        DEFAULT_REGION_ENV,
        *(q.dlq_env for q in QUEUES),
        *(q.url_env for q in QUEUES),
    ),
    timeout_s=29,  # the HTTP API's limit: replays run in pages (`next_after`)
)

AUDIENCE_API = FunctionSpec(
    "audience_api",
    "AudienceApiFunction",
    "functions.audience_api.handler.lambda_handler",
    # the sources secret: the brands' ad accounts (activation)
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, DATA_BUCKET_ENV, API_KEYS_SECRET_ENV, SOURCES_SECRET_ENV),
    memory_mb=1769,  # a full vCPU: size estimates and previews evaluate rules on scanned profiles
    timeout_s=29,  # the HTTP API's limit: size estimates sample segments to stay well inside it
)

CAMPAIGN_API = FunctionSpec(
    "campaign_api",
    "CampaignApiFunction",
    "functions.campaign_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        CAMPAIGNS_TABLE.env_var,
        PROFILES_TABLE.env_var,  # dry runs: the selection on today's profiles
        LEDGER_TABLE.env_var,  # dry runs: the contact histories a frequency cap reads
        OFFERS_TABLE.env_var,  # a stopped run's offer plans released
        CAMPAIGN_MACHINE_ARN_ENV,
        DATA_BUCKET_ENV,
        API_KEYS_SECRET_ENV,
        EVENT_BUS_ENV,  # external signals (POST /v1/signals) go to the journey function
        TRACKED_LINK_BASE_URL_ENV,  # previews count an SMS's links as the short links it will carry
    ),
    memory_mb=1024,
    timeout_s=29,  # the HTTP API's limit
)

CAMPAIGN_SCHEDULER = FunctionSpec(
    "campaign_scheduler",
    "CampaignSchedulerFunction",
    "functions.campaign_scheduler.handler.lambda_handler",
    # the profiles table: the sweeps of date and weather journeys scan it; the offers table: expiries
    env=(
        *_COMMON_ENV,
        CAMPAIGNS_TABLE.env_var,
        PROFILES_TABLE.env_var,
        OFFERS_TABLE.env_var,
        CAMPAIGN_MACHINE_ARN_ENV,
        DATA_BUCKET_ENV,
        EVENT_BUS_ENV,
        SOURCES_SECRET_ENV,  # the brands' WeChat Pay merchants: red packets and coupons left pending asked again
    ),
    timeout_s=60,
)

JOURNEY = FunctionSpec(
    "journey",
    "JourneyFunction",
    "functions.journey.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        CAMPAIGNS_TABLE.env_var,
        PROFILES_TABLE.env_var,
        OFFERS_TABLE.env_var,  # a treated entry's catalog offers reserved from their pools
        EVENT_BUS_ENV,
        JOURNEY_QUEUE.dlq_env,
    ),
    timeout_s=60,
)

OFFER_API = FunctionSpec(
    "offer_api",
    "OfferApiFunction",
    "functions.offer_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        OFFERS_TABLE.env_var,
        PROFILES_TABLE.env_var,
        API_KEYS_SECRET_ENV,
        EVENT_BUS_ENV,
        SOURCES_SECRET_ENV,  # the claim links' key (the tracked-link secret) and the brands' red packet merchants
        TRACKED_LINK_BASE_URL_ENV,  # the API's public URL: a claim link's whole URL
    ),
)

OFFER_EVENTS = FunctionSpec(
    "offer_events",
    "OfferEventsFunction",
    "functions.offer_events.handler.lambda_handler",
    env=(*_COMMON_ENV, OFFERS_TABLE.env_var, PROFILES_TABLE.env_var, EVENT_BUS_ENV, OFFER_EVENTS_QUEUE.dlq_env),
)

LOYALTY_API = FunctionSpec(
    "loyalty_api",
    "LoyaltyApiFunction",
    "functions.loyalty_api.handler.lambda_handler",
    env=(*_COMMON_ENV, OFFERS_TABLE.env_var, PROFILES_TABLE.env_var, API_KEYS_SECRET_ENV, EVENT_BUS_ENV),
)

INBOX_API = FunctionSpec(
    "inbox_api",
    "InboxApiFunction",
    "functions.inbox_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        LEDGER_TABLE.env_var,  # the inboxes (INBOX#{brand}#{person}); the receipts' dedupe claims
        PROFILES_TABLE.env_var,  # the person a token names (merges followed), by id or by identifier
        DATA_BUCKET_ENV,  # the receipts' raw archive (raw/events/)
        EVENT_BUS_ENV,  # the receipts (message_opened), for the message log and the timeline
        API_KEYS_SECRET_ENV,  # POST /v1/inbox/tokens: the brand's backend, with inbox:issue
        SOURCES_SECRET_ENV,  # the inbox tokens' key (derived from the tracked-link secret)
    ),
)

PREFERENCE_CENTRE = FunctionSpec(
    "preference_centre",
    "PreferenceCentreFunction",
    "functions.preference_centre.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        LEDGER_TABLE.env_var,  # the consent changes' dedupe claims
        PROFILES_TABLE.env_var,  # the person a link names (merges followed) and their consent
        DATA_BUCKET_ENV,  # the consent changes' raw archive (raw/events/)
        EVENT_BUS_ENV,  # the consent changes (consent_changed), for the profile, the message log and the timeline
        SOURCES_SECRET_ENV,  # the preference links' key (derived from the tracked-link secret)
    ),
)

LOYALTY_EVENTS = FunctionSpec(
    "loyalty_events",
    "LoyaltyEventsFunction",
    "functions.loyalty_events.handler.lambda_handler",
    env=(*_COMMON_ENV, OFFERS_TABLE.env_var, PROFILES_TABLE.env_var, EVENT_BUS_ENV, LOYALTY_QUEUE.dlq_env),
)

DELIVERY_EVENTS = FunctionSpec(
    "delivery_events",
    "DeliveryEventsFunction",
    "functions.delivery_events.handler.lambda_handler",
    env=(*_COMMON_ENV, LEDGER_TABLE.env_var, DATA_BUCKET_ENV, EVENT_BUS_ENV, DELIVERY_EVENTS_QUEUE.dlq_env),
)

MESSAGE_RECEIPTS = FunctionSpec(
    "message_receipts",
    "MessageReceiptsFunction",
    "functions.message_receipts.handler.lambda_handler",
    env=(*_COMMON_ENV, LEDGER_TABLE.env_var, RECEIPTS_QUEUE.dlq_env),
)

FILE_IMPORT = FunctionSpec(
    "file_import",
    "FileImportFunction",
    "functions.file_import.handler.lambda_handler",
    env=(*_COMMON_ENV, LEDGER_TABLE.env_var, DATA_BUCKET_ENV, EVENT_BUS_ENV, DEFAULT_REGION_ENV),
    memory_mb=1024,
    timeout_s=300,  # one chunk (500 rows or ~1 MB) or the plan pass over the whole file
)

HISTORY_IMPORT = FunctionSpec(
    "history_import",
    "HistoryImportFunction",
    "functions.history_import.handler.lambda_handler",
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, LEDGER_TABLE.env_var, DATA_BUCKET_ENV, DEFAULT_REGION_ENV),
    layers=("domain", "deps", "ml"),  # numpy + scipy: bulk identity resolution (connected components)
    memory_mb=4096,  # the plan holds the whole file's events: ~1 M events per 2 GB
    timeout_s=900,
)

PLATFORM_PULL = FunctionSpec(
    "platform_pull",
    "PlatformPullFunction",
    "functions.platform_pull.handler.lambda_handler",
    env=(*_COMMON_ENV, LEDGER_TABLE.env_var, DATA_BUCKET_ENV, EVENT_BUS_ENV, SOURCES_SECRET_ENV, DEFAULT_REGION_ENV),
    timeout_s=300,  # every configured shop, page by page; a shop's cursor moves per finished window
)

WAREHOUSE_EXPORT = FunctionSpec(
    "warehouse_export",
    "WarehouseExportFunction",
    "functions.warehouse_export.handler.lambda_handler",
    # the profiles table: one scan gives persons, tags and the filed events of the days exported; the data bucket:
    # the Parquet files under warehouse/, the export's state and the erasure requests (cdp.warehouse)
    env=(*_COMMON_ENV, PROFILES_TABLE.env_var, DATA_BUCKET_ENV),
    layers=("domain", "deps", "warehouse"),  # duckdb writes the Parquet (its own layer: ~70 MB unzipped)
    memory_mb=2048,
    timeout_s=900,
    ephemeral_mb=4096,  # the staged rows and the Parquet files of a run before upload
)

MODEL_API = FunctionSpec(
    "model_api",
    "ModelApiFunction",
    "functions.model_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        PROFILES_TABLE.env_var,  # the person scored on demand: read with the timeline, the score and tags written
        DATA_BUCKET_ENV,  # models/ (manifests, bytes, latest.json); the tag engine's catalog and dynamic audiences
        EVENT_BUS_ENV,  # the predictive tag changes a score makes
        API_KEYS_SECRET_ENV,
        DEFAULT_REGION_ENV,  # a person named by a phone without a country code
    ),
    layers=("domain", "deps", "ml"),  # a rollback verifies the version loads; a score predicts with it
    memory_mb=1769,  # a full vCPU: a model is unpickled and its hash checked once per warm container
    timeout_s=29,  # the HTTP API's limit
)

ANALYTICS_API = FunctionSpec(
    "analytics_api",
    "AnalyticsApiFunction",
    "functions.analytics_api.handler.lambda_handler",
    env=(
        *_COMMON_ENV,
        DATA_BUCKET_ENV,  # warehouse/ (DuckDB reads the brand's files); analytics-results/ (each query's request)
        API_KEYS_SECRET_ENV,
        ANALYTICS_ENGINE_ENV,
        ANALYTICS_WORKGROUP_ENV,
        WAREHOUSE_DATABASE_ENV,
    ),
    layers=("domain", "deps", "warehouse"),  # duckdb, for ANALYTICS_ENGINE=duckdb (~130 MB of the 250 MB with it)
    memory_mb=1769,  # a full vCPU: DuckDB runs the report in the function when it is the engine
    timeout_s=29,  # the HTTP API's limit: a report waits for its query up to ANALYTICS_WAIT_SECONDS, then answers 202
    ephemeral_mb=2048,  # DuckDB's engine copies the brand's Parquet here (ANALYTICS_DUCKDB_MAX_MB bounds it)
)

FUNCTIONS = (
    INGEST,
    IDENTITY_MERGE,
    TAG_UPDATE,
    TAG_SWEEP,
    TRAIN,
    SCORING,
    CAMPAIGN,
    SEND,
    PROFILE_API,
    OPERATIONS,
    FILE_IMPORT,
    HISTORY_IMPORT,
    PLATFORM_PULL,
    WAREHOUSE_EXPORT,
    AUDIENCE_API,
    CAMPAIGN_API,
    CAMPAIGN_SCHEDULER,
    JOURNEY,
    OFFER_API,
    OFFER_EVENTS,
    LOYALTY_API,
    LOYALTY_EVENTS,
    INBOX_API,
    PREFERENCE_CENTRE,
    MESSAGE_RECEIPTS,
    DELIVERY_EVENTS,
    MODEL_API,
    ANALYTICS_API,
)
FUNCTIONS_BY_KEY = {f.key: f for f in FUNCTIONS}

# ---- HTTP API -----------------------------------------------------------------------------------------------

CONNECTOR_ROUTES: tuple[tuple[str, str], ...] = (
    # Segment HTTP Tracking API (write key as HTTP Basic user): Segment and RudderStack SDKs point here unchanged
    *(("POST", f"/v1/{call}") for call in ("identify", "track", "page", "screen", "alias", "group", "batch")),
    # WeChat official account server callback (GET: URL check, POST: pushes) and mini-program server events
    ("GET", "/v1/wechat/{key}"),
    ("POST", "/v1/wechat/{key}"),
    ("POST", "/v1/wechat/{key}/events"),
    # commerce and ads webhooks: {key} is the Shopify shop domain, the POS vendor, the ad platform
    ("POST", "/v1/webhooks/shopify/{key}"),
    ("POST", "/v1/webhooks/pos/{key}"),
    ("POST", "/v1/webhooks/ads/{key}"),
    # delivery feedback: SES events through SNS, SMS receipts and push opens ({key}: the provider), link clicks
    ("POST", "/v1/feedback/ses"),
    ("POST", "/v1/feedback/sms/{key}"),
    ("POST", "/v1/feedback/push/{key}"),
    ("GET", "/r/{key}"),
)

API_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/events", INGEST.key),
    ("GET", "/v1/openapi.json", INGEST.key),  # the whole API's OpenAPI document
    # channel connectors (cdp.connectors.registry maps each path to its connector)
    *((method, path, INGEST.key) for method, path in CONNECTOR_ROUTES),
    # the 360-degree profile API (scopes and hierarchy limits per API key: see cdp.app.profile_api)
    ("GET", "/v1/profiles/{person_id}", PROFILE_API.key),
    ("PATCH", "/v1/profiles/{person_id}", PROFILE_API.key),
    ("DELETE", "/v1/profiles/{person_id}", PROFILE_API.key),
    ("GET", "/v1/profiles/{person_id}/timeline", PROFILE_API.key),
    ("GET", "/v1/profiles/{person_id}/tags", PROFILE_API.key),  # tags as of a past time (tag history)
    ("GET", "/v1/profiles/{person_id}/export", PROFILE_API.key),
    ("POST", "/v1/profiles/{person_id}/unmerge", PROFILE_API.key),
    ("DELETE", "/v1/profiles/{person_id}/identifiers/{type}/{value}", PROFILE_API.key),
    ("GET", "/v1/profiles/by-identifier/{type}/{value}", PROFILE_API.key),
    ("GET", "/v1/org/brands", PROFILE_API.key),  # the brands the caller's scope covers (a console's brand picker)
    ("POST", "/v1/identity/merge", PROFILE_API.key),
    ("POST", "/v1/identity/quarantine", PROFILE_API.key),
    ("GET", "/v1/identity/review", PROFILE_API.key),
    # operations: dead letters with their reasons, redrive, archive replay, item-layout migration (operations:replay)
    ("GET", "/v1/admin/dead-letters", OPERATIONS.key),
    ("POST", "/v1/admin/dead-letters/redrive", OPERATIONS.key),
    ("POST", "/v1/admin/replay", OPERATIONS.key),
    ("POST", "/v1/admin/migrations/person-layout", OPERATIONS.key),
    # settings (cdp.access): API keys, console users and sources of the deployment (settings:admin, no org scope)
    ("GET", "/v1/admin/api-keys", OPERATIONS.key),
    ("POST", "/v1/admin/api-keys", OPERATIONS.key),
    ("DELETE", "/v1/admin/api-keys/{key_id}", OPERATIONS.key),
    ("GET", "/v1/admin/console-users", OPERATIONS.key),
    ("POST", "/v1/admin/console-users", OPERATIONS.key),
    ("DELETE", "/v1/admin/console-users/{username}", OPERATIONS.key),
    ("GET", "/v1/admin/sources", OPERATIONS.key),
    # audience packages: define, validate, size, preview, export (scopes audiences:read / audiences:write)
    ("POST", "/v1/audiences", AUDIENCE_API.key),
    ("GET", "/v1/audiences", AUDIENCE_API.key),
    ("POST", "/v1/audiences/validate", AUDIENCE_API.key),
    ("POST", "/v1/audiences/estimate", AUDIENCE_API.key),
    ("GET", "/v1/tags", AUDIENCE_API.key),
    ("GET", "/v1/audiences/{audience_id}", AUDIENCE_API.key),
    ("DELETE", "/v1/audiences/{audience_id}", AUDIENCE_API.key),
    ("POST", "/v1/audiences/{audience_id}/size", AUDIENCE_API.key),
    ("GET", "/v1/audiences/{audience_id}/preview", AUDIENCE_API.key),
    ("POST", "/v1/audiences/{audience_id}/export", AUDIENCE_API.key),
    ("GET", "/v1/audiences/{audience_id}/snapshots", AUDIENCE_API.key),
    # activation: a snapshot's members hashed and uploaded to the brand's ad account (cdp.activation)
    ("POST", "/v1/audiences/{audience_id}/activations", AUDIENCE_API.key),
    ("GET", "/v1/audiences/{audience_id}/activations", AUDIENCE_API.key),
    ("POST", "/v1/audiences/{audience_id}/activations/{activation_id}/continue", AUDIENCE_API.key),
    # campaigns as data (cdp.campaigns.lifecycle): campaigns:read / campaigns:write / campaigns:approve
    ("POST", "/v1/campaigns", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns", CAMPAIGN_API.key),
    ("POST", "/v1/campaigns/validate", CAMPAIGN_API.key),
    ("POST", "/v1/campaigns/switch", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns/{campaign_id}", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns/{campaign_id}/versions/{version}", CAMPAIGN_API.key),
    *(
        ("POST", f"/v1/campaigns/{{campaign_id}}/{action}", CAMPAIGN_API.key)
        for action in ("start", "activate", "pause", "resume", "stop", "approve", "dry-run", "test-send", "preview")
    ),
    ("GET", "/v1/campaigns/{campaign_id}/runs", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns/{campaign_id}/journey", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns/{campaign_id}/runs/{run_id}", CAMPAIGN_API.key),
    ("GET", "/v1/campaigns/{campaign_id}/results", CAMPAIGN_API.key),
    ("POST", "/v1/signals", CAMPAIGN_API.key),
    # offers, wallets and budget pools (cdp.offers, cdp.budgets): offers:read / offers:write / offers:issue
    ("POST", "/v1/offers", OFFER_API.key),
    ("GET", "/v1/offers", OFFER_API.key),
    ("GET", "/v1/offers/{offer_id}", OFFER_API.key),
    ("POST", "/v1/offers/{offer_id}/retire", OFFER_API.key),
    ("POST", "/v1/offers/{offer_id}/codes", OFFER_API.key),
    ("POST", "/v1/offers/{offer_id}/issue", OFFER_API.key),
    ("GET", "/v1/wallets/{person_id}", OFFER_API.key),
    ("POST", "/v1/budgets", OFFER_API.key),
    ("GET", "/v1/budgets", OFFER_API.key),
    ("POST", "/v1/budgets/{pool_id}/top-up", OFFER_API.key),
    ("POST", "/v1/promotions", OFFER_API.key),
    ("GET", "/v1/promotions", OFFER_API.key),
    ("POST", "/v1/promotions/evaluate", OFFER_API.key),  # a till's key (store-scoped) evaluates its store's carts
    # points programmes the platform keeps (cdp.loyalty): loyalty:read / loyalty:write
    ("GET", "/v1/loyalty/programs", LOYALTY_API.key),
    ("GET", "/v1/loyalty/accounts/{person_id}", LOYALTY_API.key),
    ("POST", "/v1/loyalty/{program}/burn", LOYALTY_API.key),
    ("POST", "/v1/loyalty/{program}/adjust", LOYALTY_API.key),
    ("POST", "/v1/loyalty/{program}/convert", LOYALTY_API.key),
    ("POST", "/v1/offers/{offer_id}/claim-links", OFFER_API.key),  # offers:issue: a link a person claims it from
    ("GET", "/v1/claim/{token}", OFFER_API.key),  # public: the signed claim token is the authority (TOKEN_ROUTES)
    ("POST", "/v1/claim/{token}", OFFER_API.key),
    # the in-app inbox (cdp.app.inbox_api): tokens issued with inbox:issue; the app reads with its token
    ("POST", "/v1/inbox/tokens", INBOX_API.key),
    ("GET", "/v1/inbox", INBOX_API.key),  # Authorization: Bearer <the person's inbox token> (TOKEN_ROUTES)
    ("POST", "/v1/inbox/{message_id}/read", INBOX_API.key),
    ("POST", "/v1/inbox/{message_id}/dismiss", INBOX_API.key),
    # the preference centre (cdp.app.preference_centre): the signed link in every marketing message
    ("GET", "/v1/preferences/{token}", PREFERENCE_CENTRE.key),  # public: the token is the authority (TOKEN_ROUTES)
    ("POST", "/v1/preferences/{token}", PREFERENCE_CENTRE.key),  # the form, or RFC 8058 one-click unsubscribe
    # the model registry (cdp.app.model_api): models:read / models:promote (rollback) / models:score (one person)
    ("GET", "/v1/models", MODEL_API.key),
    ("GET", "/v1/models/{model_name}", MODEL_API.key),
    ("GET", "/v1/models/{model_name}/versions/{version}", MODEL_API.key),
    ("POST", "/v1/models/{model_name}/rollback", MODEL_API.key),
    ("POST", "/v1/models/{model_name}/score", MODEL_API.key),
    # customer analytics over the warehouse (cdp.app.analytics_api): analytics:read, a key holding the whole brand
    ("GET", "/v1/analytics/{report}", ANALYTICS_API.key),
    ("GET", "/v1/analytics/{report}/queries/{query_id}", ANALYTICS_API.key),
)
"""(method, path, function key): the HTTP API routes, each integrated with one function from FUNCTIONS."""

REDIRECT_ROUTE = "GET /r/{key}"  # tracked links: throttled on their own (infra: DeployConfig.redirect_rate_limit)
TOKEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/r/{key}"),
        ("GET", "/v1/claim/{token}"),
        ("POST", "/v1/claim/{token}"),
        ("GET", "/v1/inbox"),
        ("POST", "/v1/inbox/{message_id}/read"),
        ("POST", "/v1/inbox/{message_id}/dismiss"),
        ("GET", "/v1/preferences/{token}"),
        ("POST", "/v1/preferences/{token}"),
    }
)
"""Routes whose only credential is a signed token (in their path: a tracked link, an offer's claim link; in
`Authorization: Bearer`: a person's inbox token): they take no API key; every other route's function checks one (or
its source's own signature) before any work."""

# ---- rules ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BusRuleSpec:
    logical_id: str
    local_name: str
    pattern: dict[str, Any]  # EventBridge JSON pattern, used verbatim by CDK and the local runtime
    queue: QueueSpec  # every bus rule buffers through SQS: retries, partial batch failure, DLQ
    consumer: FunctionSpec
    # Up to 100 messages per invocation, gathered for at most 1 s: the consumers read a batch's items in one round
    # and publish its announcements together, so a bigger batch is fewer calls per event (and 1 s more latency).
    batch_size: int = 100
    max_batching_window_s: int = 1
    bus: Literal["platform", "default"] = "platform"  # default: the account's own bus, where AWS services publish


EVENT_RECEIVED_RULE = BusRuleSpec(
    "EventReceivedRule",
    "cdp-event-received",
    {"source": [SOURCE_INGEST], "detail-type": [EVENT_RECEIVED]},
    IDENTITY_QUEUE,
    IDENTITY_MERGE,
)
# Every profile change wakes tag_update, whatever the event type: dynamic audiences are defined at run time (S3) and
# may read any attribute or event, so a list fixed at deploy time would miss them. tag_update decides per event type
# what can change (catalog triggers + audience conditions) and skips with no read at all when nothing can
# (metric TagUpdatesSkipped). Time-driven changes come from the sweep.
PROFILE_UPDATED_RULE = BusRuleSpec(
    "ProfileUpdatedRule",
    "cdp-profile-updated",
    {"source": [SOURCE_IDENTITY], "detail-type": [PROFILE_UPDATED, PROFILE_MERGED]},
    TAG_QUEUE,
    TAG_UPDATE,
)
# Journeys (cdp.campaigns.journeys) enter and convert persons on the same profile changes, and enter them when
# they enter a dynamic audience or change lifecycle stage (the tag engine's announcements). Each detail-type comes
# from one of the two sources only.
JOURNEY_RULE = BusRuleSpec(
    "JourneyRule",
    "cdp-journey",
    {
        "source": [SOURCE_IDENTITY, SOURCE_TAGS, SOURCE_CAMPAIGNS],
        "detail-type": [PROFILE_UPDATED, AUDIENCE_ENTERED, LIFECYCLE_CHANGED, SIGNAL_RECEIVED],
    },
    JOURNEY_QUEUE,
    JOURNEY,
)
# A journey's sends go through a queue to the send function: a burst of entries is smoothed, a failed batch retried.
SEND_RULE = BusRuleSpec(
    "JourneySendRule",
    "cdp-journey-sends",
    {"source": [SOURCE_CAMPAIGNS], "detail-type": [JOURNEY_SENDS]},
    SEND_QUEUE,
    SEND,
    batch_size=10,
)
# Orders and coupon redemptions that name an issued coupon's code: ingest publishes them apart (`coupon.used`, an
# entry only for such events), so the offer function redeems the code without reading every event.
COUPON_USED_RULE = BusRuleSpec(
    "CouponUsedRule",
    "cdp-coupon-used",
    {"source": [SOURCE_INGEST], "detail-type": [COUPON_USED]},
    OFFER_EVENTS_QUEUE,
    OFFER_EVENTS,
)
# Resolved orders and returns of brands that keep a points programme (identity publishes them only for those).
LOYALTY_RULE = BusRuleSpec(
    "LoyaltyRule",
    "cdp-loyalty",
    {"source": [SOURCE_IDENTITY], "detail-type": [LOYALTY_ACTIVITY]},
    LOYALTY_QUEUE,
    LOYALTY_EVENTS,
)
# Receipts of messages sent (delivered, bounced, opened, clicked, complaints): ingest publishes them apart too, so
# the message log moves each message's status without reading every event.
RECEIPTS_RULE = BusRuleSpec(
    "MessageReceiptsRule",
    "cdp-message-receipts",
    {"source": [SOURCE_INGEST], "detail-type": [RECEIPTS_RECEIVED]},
    RECEIPTS_QUEUE,
    MESSAGE_RECEIPTS,
)
# Delivery events of the AWS senders, on the account's default bus: SES (the stack's configuration set publishes
# there) and End User Messaging SMS (every text message's status). They become canonical receipts like any other.
DELIVERY_EVENTS_RULE = BusRuleSpec(
    "DeliveryEventsRule",
    "cdp-delivery-events",
    {
        "source": ["aws.ses", "aws.sms-voice"],
        "detail-type": [
            "Email Delivered",
            "Email Bounced",
            "Email Complaint Received",
            "Email Rejected",
            "Email Opened",
            "Email Clicked",
            "Email Subscription",
            "Text Message Delivery Status Updated",
        ],
    },
    DELIVERY_EVENTS_QUEUE,
    DELIVERY_EVENTS,
    bus="default",
)
BUS_RULES = (
    EVENT_RECEIVED_RULE,
    PROFILE_UPDATED_RULE,
    JOURNEY_RULE,
    SEND_RULE,
    COUPON_USED_RULE,
    LOYALTY_RULE,
    RECEIPTS_RULE,
    DELIVERY_EVENTS_RULE,
)

# ---- state machines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateMachineSpec:
    key: str
    logical_id: str
    asl_file: str  # under infra/statemachines/
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # ${Placeholder} -> function ARN

    @property
    def local_name(self) -> str:
        return f"{APP}-{self.key}"


SCORE_MACHINE = StateMachineSpec("score", "ScoreStateMachine", "score.asl.json", {"ScoringFunctionArn": SCORING})
TRAIN_MACHINE = StateMachineSpec("train", "TrainStateMachine", "train.asl.json", {"TrainFunctionArn": TRAIN})
CAMPAIGN_MACHINE = StateMachineSpec(
    "campaign",
    "CampaignStateMachine",
    "campaign.asl.json",
    {"CampaignFunctionArn": CAMPAIGN, "SendFunctionArn": SEND},
)
# Started by S3 "Object Created" under imports/incoming/ (EventBridge rule on the default bus, infra.components.imports)
IMPORT_MACHINE = StateMachineSpec(
    "import", "FileImportStateMachine", "file_import.asl.json", {"FileImportFunctionArn": FILE_IMPORT}
)
# Started by S3 "Object Created" under imports/history/ (the same trigger construct, its own prefix)
HISTORY_IMPORT_MACHINE = StateMachineSpec(
    "history-import",
    "HistoryImportStateMachine",
    "history_import.asl.json",
    {"HistoryImportFunctionArn": HISTORY_IMPORT},
)
STATE_MACHINES = (SCORE_MACHINE, TRAIN_MACHINE, CAMPAIGN_MACHINE, IMPORT_MACHINE, HISTORY_IMPORT_MACHINE)

# ---- schedules --------------------------------------------------------------------------------------------


SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # Scheduler puts the firing's scheduled time here in the input


@dataclass(frozen=True)
class ScheduleSpec:
    logical_id: str
    local_name: str
    expression: str  # EventBridge Scheduler expression
    target_machine: StateMachineSpec | None = None
    target_function: FunctionSpec | None = None
    input: str = "{}"


DEFAULT_MODEL_NAME = "purchase_propensity"
SCHEDULED_MODELS: tuple[tuple[str, str], ...] = (
    (DEFAULT_MODEL_NAME, '"kind": "propensity", "window_days": 30'),
    ("churn", '"kind": "churn", "window_days": 90'),
    ("clv", '"kind": "clv", "holdout_days": 90'),
    ("next_product", '"kind": "next_product", "holdout_days": 60'),
)
"""The models the schedules train weekly and score nightly (name, train input): the kinds that need no campaign or
seed named. Response, uplift and look-alike models are trained through the train machine when a brand names them."""

# campaign schedules (cdp.campaigns.lifecycle.fire_due): the occurrence time comes from Scheduler, so a late or
# repeated tick starts the runs due at that time, once each
CAMPAIGN_TICK = ScheduleSpec(
    "CampaignTickSchedule",
    "cdp-campaign-tick",
    "rate(1 minute)",
    target_function=CAMPAIGN_SCHEDULER,
    input=f'{{"now": "{SCHEDULED_TIME}"}}',
)
SCHEDULES = (
    ScheduleSpec(
        "NightlyScoreSchedule",
        "cdp-nightly-score",
        "cron(0 2 * * ? *)",
        target_machine=SCORE_MACHINE,
        input=json.dumps({"model_names": [name for name, _ in SCHEDULED_MODELS], "total_shards": 4}),
    ),
    ScheduleSpec(
        "WeeklyTrainSchedule",
        "cdp-weekly-train",
        "cron(0 3 ? * SUN *)",
        target_machine=TRAIN_MACHINE,
        # one batch: the models share one read of the histories
        input='{"models": [' + ", ".join(f'{{"model_name": "{n}", {a}}}' for n, a in SCHEDULED_MODELS) + "]}",
    ),
    CAMPAIGN_TICK,
    ScheduleSpec("HourlyTagSweepSchedule", "cdp-hourly-tag-sweep", "rate(1 hour)", target_function=TAG_SWEEP),
    # every person's tags in full, batch-freshness tags (timing, cake months) included, before the nightly score
    ScheduleSpec(
        "NightlyTagRefreshSchedule",
        "cdp-nightly-tag-refresh",
        "cron(0 1 * * ? *)",
        target_function=TAG_SWEEP,
        input='{"full": true}',
    ),
    # Tmall/Taobao/JD shops (cdp.connectors.platforms): each run pulls what changed since the shop's cursor
    ScheduleSpec(
        "PlatformPullSchedule",
        "cdp-platform-pull",
        "rate(15 minutes)",
        target_function=PLATFORM_PULL,
        input='{"shops": "all"}',
    ),
    # the brand's warehouse (cdp.warehouse): the days since the last run (and a few before, for late events) as
    # Parquet, the profile and tag snapshots replaced, pending erasures applied; after the nightly tag refresh
    ScheduleSpec(
        "NightlyWarehouseExportSchedule",
        "cdp-nightly-warehouse-export",
        "cron(30 1 * * ? *)",
        target_function=WAREHOUSE_EXPORT,
    ),
)
