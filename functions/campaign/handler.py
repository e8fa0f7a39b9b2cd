"""Step Functions task of the campaign state machine: {"action": "select" | "check" | "summarize", ...}."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from cdp.audiences.store import AudienceStore
from cdp.campaigns.models import CampaignCommand, SelectCommand
from cdp.campaigns.ports import ArtifactStore
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.service import run_command
from cdp.campaigns.targeting import ManifestValidations
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import OfferSpend, RunPlans
from cdp.org import load_org
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import CampaignSettings, get_settings
from cdp.shared.aws import EventBridgePublisher, S3ObjectStore
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now
from functions.budget_watch import count_low_pool

_COMMAND: TypeAdapter[CampaignCommand] = TypeAdapter(CampaignCommand)


@cache
def _ports() -> tuple[DynamoProfileStore, ArtifactStore]:
    settings = get_settings(CampaignSettings)
    return DynamoProfileStore(settings.profiles_table), S3ArtifactStore(settings.data_bucket)


@cache
def _plans() -> RunPlans:
    """A run's catalog offers reserved whole at selection from their budget pools, released at its end."""
    store = DynamoOfferStore(get_settings(CampaignSettings).offers_table, watch=count_low_pool)
    return RunPlans(store, store.budgets)


class _Plans:
    """The plans, built at their first use: a run whose sends name no catalog offer nor budget pool never touches the
    offers table."""

    def reserve(self, brand_id: str, run_id: str, offer_ids: Sequence[str], persons: int, now: datetime) -> int:
        return _plans().reserve(brand_id, run_id, offer_ids, persons, now)

    def reserve_messages(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, now: datetime) -> int:
        return _plans().reserve_messages(brand_id, run_id, pool_id, amount_minor, now)

    def release(self, brand_id: str, run_id: str, offer_ids: Sequence[str], now: datetime) -> None:
        _plans().release(brand_id, run_id, offer_ids, now)

    def pool_problem(self, brand_id: str, pool_id: str, currency: str) -> str | None:
        return _plans().pool_problem(brand_id, pool_id, currency)

    def spent(self, brand_id: str, run_id: str, offer_ids: Sequence[str]) -> list[OfferSpend]:
        return _plans().spent(brand_id, run_id, offer_ids)


@cache
def _bus() -> EventBridgePublisher:
    return EventBridgePublisher(get_settings(CampaignSettings).event_bus_name)


class _Assignments(EventPublisher):
    """Each selected person's group (`campaign_assigned`), filed on their timeline through ingest's bus; the client
    is built at the first publish (a selection of persons known by no identifier publishes nothing)."""

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        return _bus().publish(events, correlation_id)


@cache
def _audiences() -> AudienceStore:
    """Stored audience packages (a request may name one): definitions and snapshots in the data bucket."""
    return AudienceStore(S3ObjectStore(get_settings(CampaignSettings).data_bucket))


@cache
def _validations() -> ManifestValidations:
    """The uplift models' held-out comparisons (their manifests in the registry), for targeting `auto`."""
    return ManifestValidations(S3ObjectStore(get_settings(CampaignSettings).data_bucket))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    command = _COMMAND.validate_python(event)
    logger.append_keys(action=command.action, run_id=getattr(command, "run_id", None))
    profiles, store = _ports()
    named = isinstance(command, SelectCommand) and command.request.audience.audience_id is not None
    audiences = _audiences() if named else None
    targeted = isinstance(command, SelectCommand) and command.request.targeting is not None
    validations = _validations() if targeted else None
    assignments = _Assignments()
    return run_command(
        command,
        profiles,
        store,
        utc_now(),
        audiences,
        load_org(),
        _Plans(),
        validations,
        assignments,
        profiles.messages,
    )
