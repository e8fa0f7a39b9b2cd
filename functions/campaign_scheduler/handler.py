"""EventBridge Scheduler tick (every minute): start the campaign runs due by the tick's scheduled time, each once, and
move on every journey's persons whose wait is up by then, expire the offers whose validity ended, and run the sweeps
of date and weather journeys."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.campaigns.catalog import Tick
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.campaigns.journeys import JourneyEngine, release_deferred
from cdp.campaigns.journeys_dynamodb import DynamoDeferredSends, DynamoSweepStore, dynamo_journey_engine
from cdp.campaigns.lifecycle import CampaignService
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.stepfunctions import StepFunctionsRunner
from cdp.campaigns.sweeps import open_date_sweeps, run_sweeps
from cdp.connectors.aws import SecretsManagerSources
from cdp.ingest.service import repacked
from cdp.loyalty.dynamodb import dynamo_loyalty_service
from cdp.loyalty.service import LoyaltyService
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import dynamo_offer_service
from cdp.offers.service import OfferService
from cdp.offers.wechat_pay_accounts import WeChatPayProviders
from cdp.org import load_org
from cdp.settings import CampaignSchedulerSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.ports import DeferredPublisher
from functions.budget_watch import count_low_pool


@cache
def _service() -> CampaignService:
    s = get_settings(CampaignSchedulerSettings)
    return CampaignService(
        DynamoCampaignCatalog(s.campaigns_table),
        StepFunctionsRunner(s.campaign_state_machine_arn),
        S3ArtifactStore(s.data_bucket),
        load_org(),
    )


@cache
def _journeys() -> JourneyEngine:
    s = get_settings(CampaignSchedulerSettings)
    return dynamo_journey_engine(s.campaigns_table, s.profiles_table, s.event_bus_name, s.offers_table, count_low_pool)


@cache
def _sweeps() -> DynamoSweepStore:
    return DynamoSweepStore(get_settings(CampaignSchedulerSettings).campaigns_table)


@cache
def _deferred() -> DynamoDeferredSends:
    return DynamoDeferredSends(get_settings(CampaignSchedulerSettings).campaigns_table)


_ANNOUNCED = DeferredPublisher()  # the tick's expiries and loyalty events, published packed at its end


@cache
def _offers() -> OfferService:
    s = get_settings(CampaignSchedulerSettings)
    wechat_pay = WeChatPayProviders(SecretsManagerSources(s.sources_secret_id))  # pending payouts asked again
    profiles, bus = _journeys().profiles, s.event_bus_name
    return dynamo_offer_service(s.offers_table, profiles, bus, wechat_pay, publisher=_ANNOUNCED, coupons=wechat_pay)


@cache
def _loyalty() -> LoyaltyService:
    s = get_settings(CampaignSchedulerSettings)
    return dynamo_loyalty_service(s.offers_table, _journeys().profiles, s.event_bus_name, publisher=_ANNOUNCED)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tick = Tick.model_validate(event)
    _journeys().refresh()  # journeys made live, paused or stopped since the last tick count now
    fired = _service().fire_due(tick.now)
    moved = _journeys().advance_due(tick.now)
    released = release_deferred(_deferred(), _journeys().orders, tick.now, tally=_journeys().store.tally)
    pending = _offers().settle_pending()  # red packets and external coupons the provider could not answer, asked again
    expired = _offers().expire_due(now=tick.now)  # holds released, `coupon_expired` on the timelines
    loyalty = _loyalty().run_due(now=tick.now)  # points lots expired, levels reviewed, reminders
    _ANNOUNCED.flush(EventBridgePublisher(get_settings(CampaignSchedulerSettings).event_bus_name), pack=repacked)
    # last: a sweep takes what time the tick has left (held sends and due steps never wait behind it)
    opened = open_date_sweeps(_journeys(), _sweeps(), load_org(), tick.now)
    swept = run_sweeps(
        _journeys(), _sweeps(), _journeys().profiles, lambda: context.get_remaining_time_in_millis() / 1000
    )
    counts = {
        "SendsReleasedAfterQuietHours": released,
        "OffersExpired": expired,
        "OfferPayoutsSettled": pending.done + pending.failed,
        "LoyaltyRemindersSent": loyalty.reminded,
        "LoyaltyPointsExpired": loyalty.expired_points,
        "LoyaltyLevelsReviewed": loyalty.reviewed,
        "JourneyEntriesBySweep": swept.entered,
        "JourneyStepsDue": moved,
    }
    for name, value in counts.items():
        if value:
            metrics.add_metric(name=name, unit="Count", value=value)
    started = [r.run_id for r in fired if r.outcome == "started"]
    skipped = [{"run_id": r.run_id, "reason": r.reason} for r in fired if r.outcome == "skipped"]
    if fired:
        logger.info("campaign occurrences", started=started, skipped=skipped)
        metrics.add_metric(name="CampaignRunsStarted", unit="Count", value=len(started))
        metrics.add_metric(name="CampaignOccurrencesSkipped", unit="Count", value=len(skipped))
    return {
        "now": tick.now.isoformat(),
        "started": started,
        "skipped": skipped,
        "journey_steps": moved,
        "released_after_quiet_hours": released,
        "offers_expired": expired,
        "offers_pending": {"done": pending.done, "failed": pending.failed, "still_pending": pending.pending},
        "loyalty": {"reminded": loyalty.reminded, "expired_points": loyalty.expired_points, "levels": loyalty.reviewed},
        "sweeps": {
            "opened": opened,
            "shards": swept.shards,
            "pages": swept.pages,
            "entered": swept.entered,
            "closed": swept.closed,
        },
    }
