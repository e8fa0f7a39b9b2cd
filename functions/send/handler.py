"""Step Functions task (campaign Map iteration) -> deliver one batch exactly once per (campaign, step, person)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.channels.adapters import S3BatchReader, channels_for
from cdp.channels.ledger import DynamoSendLedger
from cdp.channels.models import SendBatchRequest
from cdp.channels.ports import Channel
from cdp.channels.service import send_batch
from cdp.observability import logger, metrics, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import SendSettings, get_settings
from cdp.shared.time import utc_now


@dataclass(frozen=True)
class _Ports:
    store: DynamoProfileStore
    ledger: DynamoSendLedger
    batches: S3BatchReader
    channels: Mapping[str, Channel]


@cache
def _ports() -> _Ports:
    settings = get_settings(SendSettings)
    return _Ports(
        store=DynamoProfileStore(settings.profiles_table),
        ledger=DynamoSendLedger(settings.ledger_table),
        batches=S3BatchReader(settings.data_bucket),
        channels=channels_for(settings),
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SendBatchRequest.model_validate(event)
    logger.append_keys(campaign_id=request.campaign_id, run_id=request.run_id, step=request.step)
    ports = _ports()
    result = send_batch(
        request, ports.store, ports.store, ports.ledger, ports.channels, now=utc_now(), batches=ports.batches
    )
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=result.sent)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=result.failed)
    return result.model_dump(mode="json")
