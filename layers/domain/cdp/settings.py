"""Environment variables as composed pydantic models, validated once at cold start (fail fast, no silent defaults)."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp import topology
from cdp.errors import CdpError


class _Env(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class Observability(_Env):
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    log_level: str = Field(default="INFO", alias="POWERTOOLS_LOG_LEVEL")


class ProfilesTable(_Env):
    profiles_table: str = Field(alias=topology.PROFILES_TABLE.env_var, min_length=3)


class LedgerTable(_Env):
    ledger_table: str = Field(alias=topology.LEDGER_TABLE.env_var, min_length=3)


class CampaignsTable(_Env):
    campaigns_table: str = Field(alias=topology.CAMPAIGNS_TABLE.env_var, min_length=3)


class OffersTable(_Env):
    offers_table: str = Field(alias=topology.OFFERS_TABLE.env_var, min_length=3)


class CampaignMachine(_Env):
    campaign_state_machine_arn: str = Field(alias=topology.CAMPAIGN_MACHINE_ARN_ENV, pattern=r"^arn:aws[a-z-]*:states:")


class DataBucket(_Env):
    data_bucket: str = Field(alias=topology.DATA_BUCKET_ENV, min_length=3)


class EventBus(_Env):
    event_bus_name: str = Field(alias=topology.EVENT_BUS_ENV, min_length=1)


class ApiKeys(_Env):
    api_keys_secret_id: str = Field(alias=topology.API_KEYS_SECRET_ENV, min_length=1)


class ConsoleTokens(_Env):
    """Who signs console users in (cdp.ingest.console_tokens); every part unset: API keys only."""

    issuer: str | None = Field(default=None, alias=topology.CONSOLE_TOKEN_ISSUER_ENV, min_length=1)
    audience: str | None = Field(default=None, alias=topology.CONSOLE_TOKEN_AUDIENCE_ENV, min_length=1)
    jwks_url: str | None = Field(default=None, alias=topology.CONSOLE_JWKS_URL_ENV, pattern=r"^https?://")
    jwks: str | None = Field(default=None, alias=topology.CONSOLE_JWKS_ENV, min_length=2)

    @field_validator("issuer", "audience", "jwks_url", "jwks", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    @model_validator(mode="after")
    def _whole(self) -> ConsoleTokens:
        if self.issuer and not (self.audience and (self.jwks_url or self.jwks)):
            raise ValueError(f"{topology.CONSOLE_TOKEN_ISSUER_ENV} needs an audience and a JWKS (URL or inline)")
        return self


class ConsoleUserDirectory(_Env):
    """Where the console's users are kept (cdp.access): the stack's Cognito user pool, or, in the local runtime only
    (CDK never sets it), the users file `cdp serve` signs them in from. Exactly one of the two."""

    console_user_pool_id: str | None = Field(
        default=None, alias=topology.CONSOLE_USER_POOL_ENV, pattern=r"^[\w-]+_[0-9a-zA-Z]+$", max_length=55
    )
    console_users_file: str | None = Field(default=None, alias=topology.CONSOLE_USERS_FILE_ENV, min_length=1)

    @field_validator("console_user_pool_id", "console_users_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    @model_validator(mode="after")
    def _one_directory(self) -> ConsoleUserDirectory:
        if bool(self.console_user_pool_id) == bool(self.console_users_file):
            raise ValueError(
                f"one of {topology.CONSOLE_USER_POOL_ENV} (the stack's user pool) or {topology.CONSOLE_USERS_FILE_ENV} "
                "(the local runtime's users file) is needed, not both"
            )
        return self


class Sources(_Env):
    sources_secret_id: str = Field(alias=topology.SOURCES_SECRET_ENV, min_length=1)


class PhoneRegion(_Env):
    default_phone_region: str = Field(default="CN", alias=topology.DEFAULT_REGION_ENV, pattern=r"^[A-Z]{2}$")


class Senders(_Env):
    sms_origination_identity: str = Field(alias=topology.SMS_ORIGINATION_ENV, min_length=1)
    email_from_address: str = Field(alias=topology.EMAIL_FROM_ENV, min_length=3)
    ses_configuration_set: str = Field(default="", alias=topology.SES_CONFIGURATION_SET_ENV)
    sms_configuration_set: str = Field(default="", alias=topology.SMS_CONFIGURATION_SET_ENV)


class ChannelRouting(_Env):
    send_via_outbox: bool = Field(default=False, alias=topology.SEND_VIA_OUTBOX_ENV)


class TrackedLinkBase(_Env):
    tracked_link_base_url: str = Field(default="", alias=topology.TRACKED_LINK_BASE_URL_ENV)


class LinkTrackingEnv(_Env):
    tracked_link_base_url: str = Field(default="", alias=topology.TRACKED_LINK_BASE_URL_ENV)
    sources_secret_id: str = Field(default="", alias=topology.SOURCES_SECRET_ENV)


class IdentityDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.IDENTITY_QUEUE.dlq_env, min_length=1)


class TagDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.TAG_QUEUE.dlq_env, min_length=1)


class IngestSettings(Observability, LedgerTable, DataBucket, EventBus, ApiKeys, Sources, PhoneRegion):
    pass


class IdentitySettings(Observability, ProfilesTable, EventBus, IdentityDeadLetters):
    pass


class TagSettings(Observability, ProfilesTable, EventBus, DataBucket):
    """The tag engine's ports: profiles (tags, history), the bus (changes), dynamic audiences (in the data bucket).
    tag_sweep and scoring's predictive-tag refresh read these; tag_update adds its dead-letter queue."""


class TagUpdateSettings(TagSettings, TagDeadLetters):
    pass


class ModelSettings(Observability, ProfilesTable, DataBucket):
    pass


class ModelApiSettings(TagSettings, ApiKeys, PhoneRegion):
    """The model registry API: models under the data bucket's models/ prefix; one person scored on demand is written
    with the predictive tags that read the score (the tag engine's ports: profiles, bus, catalog and audiences)."""


class CampaignSettings(Observability, ProfilesTable, LedgerTable, OffersTable, DataBucket, EventBus):
    """Selection, conversion checks and the summary; the run's offers reserved from their pools (offers table); each
    selected person's group filed on their timeline (the bus)."""


class SendDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.SEND_QUEUE.dlq_env, min_length=1)


class CampaignApiSettings(
    Observability,
    CampaignsTable,
    ProfilesTable,
    LedgerTable,
    OffersTable,
    CampaignMachine,
    DataBucket,
    ApiKeys,
    EventBus,
    TrackedLinkBase,
):
    """Campaigns as data: definitions, approvals, runs and the brand's stop switch; runs start the state machine (a
    stopped run's offer plans go back to their pools); external signals go on the bus to the journey function."""


class CampaignSchedulerSettings(
    Observability, CampaignsTable, ProfilesTable, OffersTable, CampaignMachine, DataBucket, EventBus, Sources
):
    """The schedule's tick: due occurrences start runs on the state machine; journeys' due waits move on; sweeps of
    date and weather journeys scan the profiles; offers left pending at their provider are asked about again (the
    sources secret names each brand's WeChat Pay merchant); offers whose validity ended expire."""


class PublicBaseUrl(_Env):
    public_base_url: str = Field(default="", alias=topology.TRACKED_LINK_BASE_URL_ENV, pattern=r"^(https?://\S+)?$")


class OfferApiSettings(Observability, OffersTable, ProfilesTable, ApiKeys, EventBus, Sources, PublicBaseUrl):
    """Offers, wallets and budget pools; issues and expiries go on the bus as canonical events. The sources secret
    holds the claim links' key (the tracked-link secret) and each brand's red packet merchant (`wechat_pay`); the
    public base URL (the tracked links' one, empty: unknown) makes a claim link's whole URL."""


class DeliveryEventsDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.DELIVERY_EVENTS_QUEUE.dlq_env, min_length=1)


class DeliveryEventsSettings(Observability, LedgerTable, DataBucket, EventBus, DeliveryEventsDeadLetters):
    """SES and End User Messaging delivery events (the default bus) ingested as canonical receipts."""


class ReceiptsDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.RECEIPTS_QUEUE.dlq_env, min_length=1)


class MessageReceiptsSettings(Observability, LedgerTable, ReceiptsDeadLetters):
    """Receipts of messages sent move their status in the message log (`cdp.channels.messages`)."""


class OfferEventsDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.OFFER_EVENTS_QUEUE.dlq_env, min_length=1)


class OfferEventsSettings(Observability, OffersTable, ProfilesTable, EventBus, OfferEventsDeadLetters):
    """Redemptions: orders and coupon redemptions naming an issued code redeem it (once)."""


class LoyaltyApiSettings(Observability, OffersTable, ProfilesTable, ApiKeys, EventBus):
    """Programmes and members' accounts; burns, adjustments and conversions go on the bus as canonical events."""


class InboxApiSettings(Observability, LedgerTable, ProfilesTable, DataBucket, EventBus, ApiKeys, Sources):
    """The in-app inbox: inboxes in the ledger table, persons read from the profiles table, receipts archived, deduped
    and published like ingest's; API keys issue tokens, whose key derives from the sources secret's redirect."""


class PreferenceCentreSettings(Observability, LedgerTable, ProfilesTable, DataBucket, EventBus, Sources):
    """The preference centre: persons read from the profiles table, consent changes archived, deduped (ledger table)
    and published like ingest's; the links' key derives from the sources secret's redirect."""


class LoyaltyDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.LOYALTY_QUEUE.dlq_env, min_length=1)


class LoyaltyEventsSettings(Observability, OffersTable, ProfilesTable, EventBus, LoyaltyDeadLetters):
    """Resolved orders and returns earn and give back points (once per order and return)."""


class JourneyDeadLetters(_Env):
    dead_letter_queue_url: str = Field(alias=topology.JOURNEY_QUEUE.dlq_env, min_length=1)


class JourneySettings(Observability, CampaignsTable, ProfilesTable, OffersTable, EventBus, JourneyDeadLetters):
    """Journeys: persons enter and convert on profile changes; sends are ordered on the bus; a treated entry's
    catalog offers are reserved from their pools (offers table)."""


class SendSettings(
    Observability,
    ProfilesTable,
    LedgerTable,
    CampaignsTable,
    OffersTable,
    EventBus,
    DataBucket,
    Senders,
    ChannelRouting,
    LinkTrackingEnv,
    SendDeadLetters,
):
    pass


class ProfileApiSettings(
    Observability, ProfilesTable, LedgerTable, OffersTable, DataBucket, EventBus, ApiKeys, PhoneRegion
):
    """The profile API: reads and edits profiles, runs identity operations, and erases/exports (privacy)."""


class AudienceApiSettings(Observability, ProfilesTable, DataBucket, ApiKeys, Sources):
    """Audience packages: definitions and snapshots in the data bucket, sizes and previews over the profiles; the
    sources secret names each brand's ad accounts (activation)."""


class QueueUrls(_Env):
    identity_queue_url: str = Field(alias=topology.IDENTITY_QUEUE.url_env, min_length=1)
    identity_dlq_url: str = Field(alias=topology.IDENTITY_QUEUE.dlq_env, min_length=1)
    tag_queue_url: str = Field(alias=topology.TAG_QUEUE.url_env, min_length=1)
    tag_dlq_url: str = Field(alias=topology.TAG_QUEUE.dlq_env, min_length=1)
    journey_queue_url: str = Field(alias=topology.JOURNEY_QUEUE.url_env, min_length=1)
    journey_dlq_url: str = Field(alias=topology.JOURNEY_QUEUE.dlq_env, min_length=1)
    send_queue_url: str = Field(alias=topology.SEND_QUEUE.url_env, min_length=1)
    send_dlq_url: str = Field(alias=topology.SEND_QUEUE.dlq_env, min_length=1)
    offer_events_queue_url: str = Field(alias=topology.OFFER_EVENTS_QUEUE.url_env, min_length=1)
    offer_events_dlq_url: str = Field(alias=topology.OFFER_EVENTS_QUEUE.dlq_env, min_length=1)
    loyalty_queue_url: str = Field(alias=topology.LOYALTY_QUEUE.url_env, min_length=1)
    loyalty_dlq_url: str = Field(alias=topology.LOYALTY_QUEUE.dlq_env, min_length=1)
    receipts_queue_url: str = Field(alias=topology.RECEIPTS_QUEUE.url_env, min_length=1)
    receipts_dlq_url: str = Field(alias=topology.RECEIPTS_QUEUE.dlq_env, min_length=1)
    delivery_events_queue_url: str = Field(alias=topology.DELIVERY_EVENTS_QUEUE.url_env, min_length=1)
    delivery_events_dlq_url: str = Field(alias=topology.DELIVERY_EVENTS_QUEUE.dlq_env, min_length=1)

    def pairs(self) -> dict[str, tuple[str, str]]:
        """Queue name -> (queue URL, its DLQ URL): every consumer's queue (an offer charge parked for a short pool is
        redriven like an event identity could not resolve)."""
        urls = {
            topology.IDENTITY_QUEUE: (self.identity_queue_url, self.identity_dlq_url),
            topology.TAG_QUEUE: (self.tag_queue_url, self.tag_dlq_url),
            topology.JOURNEY_QUEUE: (self.journey_queue_url, self.journey_dlq_url),
            topology.SEND_QUEUE: (self.send_queue_url, self.send_dlq_url),
            topology.OFFER_EVENTS_QUEUE: (self.offer_events_queue_url, self.offer_events_dlq_url),
            topology.LOYALTY_QUEUE: (self.loyalty_queue_url, self.loyalty_dlq_url),
            topology.RECEIPTS_QUEUE: (self.receipts_queue_url, self.receipts_dlq_url),
            topology.DELIVERY_EVENTS_QUEUE: (self.delivery_events_queue_url, self.delivery_events_dlq_url),
        }
        return {queue.local_name.removeprefix("cdp-"): pair for queue, pair in urls.items()}


class OperationsSettings(
    Observability, ProfilesTable, LedgerTable, DataBucket, EventBus, ApiKeys, Sources, PhoneRegion, QueueUrls
):
    """Dead letters, redrive, archive replay and item-layout migrations; settings: API keys (written back to their
    secret), the sources (listed without their secrets). The console's users: `ConsoleUserDirectory`, read when a
    console-users route is first called (the local runtime may name its users file after the start)."""


class FileImportSettings(Observability, LedgerTable, DataBucket, EventBus, PhoneRegion):
    """Batch file imports: read the dropped file, dedupe and publish its events, keep progress in the ledger."""


class HistoryImportSettings(Observability, ProfilesTable, LedgerTable, DataBucket, PhoneRegion):
    """History imports: the file and work chunks in the data bucket, persons and tags in the profiles table, the
    progress record in the ledger."""


class PlatformTransport(_Env):
    # Not a deployment variable (CDK never sets it): only the local runtime sets "recorded", because there is no
    # sandbox account; the deployed function always calls the real gateways.
    platform_transport: Literal["https", "recorded"] = Field(default="https", alias="PLATFORM_TRANSPORT")


class PlatformPullSettings(Observability, LedgerTable, DataBucket, EventBus, Sources, PhoneRegion, PlatformTransport):
    """Scheduled Tmall/Taobao/JD pulls: shops from the sources secret, cursors and dedupe in the ledger."""


class WarehouseExportSettings(Observability, ProfilesTable, DataBucket):
    """The nightly warehouse export: scans the profiles table, writes Parquet under warehouse/ (cdp.warehouse)."""


class AnalyticsEngine(_Env):
    """Which engine runs the reports' SQL: Athena over the Glue tables (the stack's: its workgroup and database are
    then required) or DuckDB in the function over the brand's Parquet (the local runtime's; refused above
    `analytics_duckdb_max_mb` of files, where Athena is the engine to use)."""

    analytics_engine: Literal["athena", "duckdb"] = Field(alias=topology.ANALYTICS_ENGINE_ENV)
    analytics_workgroup: str = Field(default="", alias=topology.ANALYTICS_WORKGROUP_ENV)
    warehouse_database: str = Field(default="", alias=topology.WAREHOUSE_DATABASE_ENV, pattern=r"^[a-z0-9_]*$")
    # under API Gateway's 29 s, with room for the rows' read and the answer
    analytics_wait_seconds: float = Field(default=20.0, alias=topology.ANALYTICS_WAIT_ENV, gt=0, le=25)
    analytics_duckdb_max_mb: float = Field(default=512, alias=topology.ANALYTICS_DUCKDB_LIMIT_ENV, gt=0, le=10_240)

    @model_validator(mode="after")
    def _athena_named(self) -> AnalyticsEngine:
        if self.analytics_engine == "athena" and not (self.analytics_workgroup and self.warehouse_database):
            raise ValueError(
                f"the athena engine needs {topology.ANALYTICS_WORKGROUP_ENV} and {topology.WAREHOUSE_DATABASE_ENV}"
            )
        return self


class AnalyticsApiSettings(Observability, DataBucket, ApiKeys, AnalyticsEngine):
    """The customer-analytics reports: queries on the chosen engine, their requests and results under the data
    bucket's analytics-results/ prefix."""


class ConfigurationError(CdpError):
    """A required environment variable is missing or invalid (a deployment bug: fail at cold start)."""


SettingsT = TypeVar("SettingsT", bound=_Env)


@cache
def get_settings(model: type[SettingsT]) -> SettingsT:
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid environment for {model.__name__}: {problems}") from exc
