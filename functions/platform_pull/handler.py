"""Scheduled (every 15 minutes, input {"shops": "all"}; or {"shops": [ids]} by hand): pull each Tmall/Taobao/JD
shop of the sources secret into canonical events (see `cdp.connectors.platforms.service`).

Every shop gets its turn even when an earlier one fails; then a failure is raised so the schedule retries (and
alarms through its DLQ). A retry is safe: cursors only move after publishing and dedupe absorbs the overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.connectors.aws import SecretsManagerSources
from cdp.connectors.platforms import client_for
from cdp.connectors.platforms.aws import DynamoPullState, S3Rejects
from cdp.connectors.platforms.ports import Transport
from cdp.connectors.platforms.service import PullPorts, PullSummary, pull_shop
from cdp.connectors.platforms.transport import RecordedTransport, https_transport
from cdp.connectors.sources import PlatformShop, SourcesConfig
from cdp.errors import CdpError, InvalidInputError, RetryableError
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import PlatformPullSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.time import utc_now

RECORDED_SAMPLES = Path(__file__).resolve().parents[2] / "events"  # the repository's events/ (local runtime only)


class PullRequest(BaseModel):
    shops: Literal["all"] | list[str] = "all"


class PlatformPullError(RetryableError):
    """At least one shop failed (the others were pulled)."""


@dataclass(frozen=True)
class Dependencies:
    settings: PlatformPullSettings
    sources: SecretsManagerSources
    ports: PullPorts


@cache
def dependencies() -> Dependencies:
    s = get_settings(PlatformPullSettings)
    ports = PullPorts(
        archive=S3RawArchive(s.data_bucket),
        ledger=DynamoDedupeLedger(s.ledger_table),
        publisher=EventBridgePublisher(s.event_bus_name),
        region_of=lambda brand: _phone_region(brand, s.default_phone_region),
        state=DynamoPullState(s.ledger_table),
        rejects=S3Rejects(s.data_bucket),
    )
    return Dependencies(s, SecretsManagerSources(s.sources_secret_id), ports)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = PullRequest.model_validate(event or {})
    deps = dependencies()
    sources = deps.sources.sources()
    transport = _transport(deps.settings, sources)
    now = utc_now()
    summaries: list[PullSummary] = []
    failed: dict[str, str] = {}
    for shop_id, shop in _selected(sources, request.shops).items():
        try:
            summaries.append(
                pull_shop(shop_id, shop, client_for(shop, transport), deps.ports, now, context.aws_request_id)
            )
        except CdpError as exc:
            logger.exception("shop pull failed", shop_id=shop_id)
            failed[shop_id] = str(exc)
    metrics.add_metric(name="PlatformEventsAccepted", unit="Count", value=sum(s.accepted for s in summaries))
    metrics.add_metric(name="PlatformRecordsRejected", unit="Count", value=sum(s.rejected for s in summaries))
    if failed:
        raise PlatformPullError(f"{len(failed)} shop(s) failed: {failed}")
    return {"shops": [s.model_dump(mode="json") for s in summaries]}


def _selected(sources: SourcesConfig, wanted: Literal["all"] | list[str]) -> dict[str, PlatformShop]:
    if wanted == "all":
        return dict(sources.shops)
    unknown = sorted(set(wanted) - set(sources.shops))
    if unknown:
        raise InvalidInputError(f"unknown shops {unknown}; configured: {sorted(sources.shops)}", "shops")
    return {shop_id: sources.shops[shop_id] for shop_id in wanted}


def _transport(settings: PlatformPullSettings, sources: SourcesConfig) -> Transport:
    if settings.platform_transport == "recorded":  # the local runtime: no sandbox account, recorded answers
        return RecordedTransport.for_sources(RECORDED_SAMPLES, sources)
    return https_transport


def _phone_region(brand_id: str | None, default: str) -> str:
    org = load_org()
    return org.brands[brand_id].phone_region if brand_id and brand_id in org.brands else default
