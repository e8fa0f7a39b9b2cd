"""Deliver one batch exactly once per (campaign, step, person): a Step Functions task (a scheduled run's Map
iteration), or SQS records of journeys' send orders (the bus rule "journey sends"), a bad order parked alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, Json

from cdp.budgets.dynamodb import DynamoBudgetLedger
from cdp.campaigns.dynamodb import DynamoCampaignCatalog, DynamoStopSwitch
from cdp.campaigns.journeys import journey_outcomes, tally_key
from cdp.campaigns.journeys_dynamodb import DynamoDeferredSends, DynamoJourneyStore
from cdp.campaigns.planned import CatalogPlannedRuns
from cdp.channels.adapters import OutboxChannel, S3BatchReader
from cdp.channels.contact import ContactRules
from cdp.channels.dead_addresses import DynamoDeadAddresses
from cdp.channels.inbox import DynamoInbox
from cdp.channels.ledger import DynamoContactLedger, DynamoSendLedger
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.models import SendBatchRequest, SendBatchResult
from cdp.channels.offers import WalletOffers
from cdp.channels.ports import Channel
from cdp.channels.rate_limits import DynamoRateLimiter
from cdp.channels.routing import ProviderKit, SenderDirectory, StackDefaults
from cdp.channels.service import LinkTracking, send_batch
from cdp.channels.spending import PlanSpending
from cdp.channels.wechat_tokens import DynamoAccessTokens
from cdp.connectors.aws import SecretsManagerSources
from cdp.connectors.short_links import DynamoShortLinks
from cdp.ingest.service import repacked
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import dynamo_offer_service
from cdp.offers.wechat_pay_accounts import WeChatPayProviders
from cdp.org import load_org
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import SendSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.deadletter import DeadLetteringProcessor, SqsDeadLetters, each_part
from cdp.shared.envelope import BusEntry
from cdp.shared.ports import DeferredPublisher
from cdp.shared.time import utc_now
from cdp.topology import CHANNEL_DIMENSION, METRICS_NAMESPACE, SEND_QUEUE
from functions.budget_watch import count_low_pool


@dataclass(frozen=True)
class _Ports:
    store: DynamoProfileStore
    ledger: DynamoSendLedger
    batches: S3BatchReader
    channels: Mapping[str, Channel]
    links: LinkTracking | None
    switch: DynamoStopSwitch
    contact: ContactRules
    journeys: DynamoJourneyStore
    offers: WalletOffers
    spending: PlanSpending
    log: DynamoMessageLog
    dead: DynamoDeadAddresses


@cache
def _ports() -> _Ports:
    settings = get_settings(SendSettings)
    profiles = DynamoProfileStore(settings.profiles_table)
    catalog = DynamoCampaignCatalog(settings.campaigns_table)
    return _Ports(
        store=profiles,
        ledger=DynamoSendLedger(settings.ledger_table),
        batches=S3BatchReader(settings.data_bucket),
        channels=_senders(settings),
        links=_link_tracking(settings),
        switch=DynamoStopSwitch(catalog),
        contact=ContactRules(
            load_org(),
            DynamoContactLedger(settings.ledger_table),
            DynamoDeferredSends(settings.campaigns_table),
            planned=CatalogPlannedRuns(catalog),  # higher-priority runs due later today keep their cap room
        ),
        journeys=DynamoJourneyStore(settings.campaigns_table),
        offers=_offers(settings, profiles),
        # a run's messages paid from its pool
        spending=PlanSpending(DynamoBudgetLedger(settings.offers_table, watch=count_low_pool)),
        log=DynamoMessageLog(settings.ledger_table),
        dead=DynamoDeadAddresses(settings.ledger_table),  # addresses providers refused for good: never again
    )


def _senders(settings: SendSettings) -> Mapping[str, Channel]:
    """Each brand's accounts (the sources secret's `senders`), else the stack's SES and End User Messaging; rates
    shared by every container through the ledger table, WeChat access tokens too."""
    defaults = StackDefaults(
        email_from=settings.email_from_address,
        ses_configuration_set=settings.ses_configuration_set or None,
        sms_origination=settings.sms_origination_identity,
        sms_configuration_set=settings.sms_configuration_set or None,
        via_outbox=settings.send_via_outbox,
    )
    kit = ProviderKit(
        tokens=DynamoAccessTokens(settings.ledger_table), limiter=DynamoRateLimiter(settings.ledger_table)
    )
    sources = SecretsManagerSources(settings.sources_secret_id) if settings.sources_secret_id else None
    outbox, inbox = OutboxChannel(settings.data_bucket), DynamoInbox(settings.ledger_table)  # inapp: the inboxes
    return SenderDirectory(sources, defaults, kit, outbox=outbox, inbox=inbox).channels()


# A batch's issued offers announce their coupon_issued events here; `send` publishes them packed (a batch of 500
# coupons is one bus entry, not 500) once the batch is done.
_ANNOUNCED = DeferredPublisher()


def _offers(settings: SendSettings, profiles: DynamoProfileStore) -> WalletOffers:
    # a campaign's red packets are paid and its WeChat Pay coupons issued through the brand's merchant account
    wechat_pay = (
        WeChatPayProviders(SecretsManagerSources(settings.sources_secret_id)) if settings.sources_secret_id else None
    )
    service = dynamo_offer_service(
        settings.offers_table,
        profiles,
        settings.event_bus_name,
        wechat_pay,
        publisher=_ANNOUNCED,
        coupons=wechat_pay,
        watch=count_low_pool,
    )
    return WalletOffers(service)


@cache
def _bus() -> EventBridgePublisher:
    return EventBridgePublisher(get_settings(SendSettings).event_bus_name)


def _link_tracking(settings: SendSettings) -> LinkTracking | None:
    """Click tracking needs a public base URL for /r/ links and the redirect secret; without either, links are sent
    as written."""
    if not (settings.tracked_link_base_url and settings.sources_secret_id):
        return None
    redirect = SecretsManagerSources(settings.sources_secret_id).sources().redirect
    if redirect is None:
        logger.warning("TRACKED_LINK_BASE_URL is set but the sources secret has no redirect entry: links untracked")
        return None
    return LinkTracking(
        settings.tracked_link_base_url,
        redirect.secret.get_secret_value(),
        redirect.allowed_hosts,
        short_links=DynamoShortLinks(settings.ledger_table),  # an SMS's links: /r/{9-character code}
    )


class SendOrders(BaseModel):
    requests: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class SendOrderRecord(SqsRecordModel):
    body: Json[BusEntry[SendOrders]]


@cache
def _dead_letters() -> SqsDeadLetters:
    return SqsDeadLetters(get_settings(SendSettings).dead_letter_queue_url)


processor = DeadLetteringProcessor(
    model=SendOrderRecord, dead_letters=_dead_letters, max_receives=SEND_QUEUE.max_receive_count
)


def order_handler(record: SendOrderRecord) -> None:
    def deliver(_: int, raw: dict[str, Any]) -> None:
        send(SendBatchRequest.model_validate(raw))

    each_part(_dead_letters(), record, record.body.detail.data.requests, "requests", deliver)


@dataclass
class _Invocation:
    context: LambdaContext | None = None

    def time_left(self) -> float:
        """Seconds this invocation has left (no limit where the context cannot tell, as in a test's bare context)."""
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        return remaining() / 1000 if callable(remaining) else float("inf")


_INVOCATION = _Invocation()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    _INVOCATION.context = context  # a batch that waits on a provider's rate stops in time (send_batch's time_left)
    if "Records" in event:  # journeys' send orders, through the send queue
        return process_partial_response(event=event, record_handler=order_handler, processor=processor, context=context)
    return send(SendBatchRequest.model_validate(event))


def send(request: SendBatchRequest) -> dict[str, Any]:
    logger.append_keys(campaign_id=request.campaign_id, run_id=request.run_id, step=request.step)
    ports = _ports()
    result = send_batch(
        request,
        ports.store,
        ports.store,
        ports.ledger,
        ports.channels,
        now=utc_now(),
        batches=ports.batches,
        links=ports.links,
        switch=ports.switch,
        contact=ports.contact,
        offers=ports.offers,
        spending=ports.spending,
        log=ports.log,
        dead_addresses=ports.dead,
        time_left=_INVOCATION.time_left,
        report=_count,  # a batch that fails every message raises for a retry: its failures are counted first
    )
    _ANNOUNCED.flush(_bus(), pack=repacked)  # a failure fails the batch: its retry issues nothing twice
    outcomes = journey_outcomes(request.run_id, result)
    ports.journeys.tally(request.brand_id or "", request.campaign_id, outcomes, tally_key(request))
    return result.model_dump(mode="json")


def _count(result: SendBatchResult) -> None:
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=result.sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=result.failed)
    count_by_channel(result)
    if result.deferred_quiet_hours:
        metrics.add_metric(name="MessagesDeferredQuietHours", unit=MetricUnit.Count, value=result.deferred_quiet_hours)
    if result.deferred_rate_limit:
        metrics.add_metric(name="MessagesDeferredRateLimit", unit=MetricUnit.Count, value=result.deferred_rate_limit)
    if result.suppressed_frequency_cap:
        metrics.add_metric(name="MessagesCapped", unit=MetricUnit.Count, value=result.suppressed_frequency_cap)
    if result.suppressed_offer:
        metrics.add_metric(name="MessagesWithoutTheirOffer", unit=MetricUnit.Count, value=result.suppressed_offer)
    if result.held_stop_switch:
        metrics.add_metric(name="MessagesHeldByStopSwitch", unit=MetricUnit.Count, value=result.held_stop_switch)


def count_by_channel(result: SendBatchResult) -> None:
    """Sent and failed per channel (the per-channel failure alarms), one EMF line per channel the batch used. The
    shared `metrics` has one dimension set per flush, so each channel's pair goes in a metric set of its own."""
    for channel in sorted({*result.by_channel, *result.failed_by_channel}):
        counts = EphemeralMetrics(namespace=METRICS_NAMESPACE)  # `service` from POWERTOOLS_SERVICE_NAME, as ever
        counts.add_dimension(name=CHANNEL_DIMENSION, value=channel)
        counts.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=result.by_channel.get(channel, 0))
        counts.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=result.failed_by_channel.get(channel, 0))
        counts.flush_metrics()
