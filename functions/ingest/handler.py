"""HTTP API: POST /v1/events (one canonical event or {"batch": [...]})."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.errors import AuthenticationError, InvalidInputError, RetryableError
from cdp.ingest.auth import authenticate
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive, SecretsManagerKeyring
from cdp.ingest.service import IngestResult, ingest
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import IngestSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.time import utc_now

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    settings: IngestSettings
    archive: S3RawArchive
    ledger: DynamoDedupeLedger
    publisher: EventBridgePublisher
    keyring: SecretsManagerKeyring


@cache
def dependencies() -> Dependencies:
    s = get_settings(IngestSettings)
    return Dependencies(
        settings=s,
        archive=S3RawArchive(s.data_bucket),
        ledger=DynamoDedupeLedger(s.ledger_table),
        publisher=EventBridgePublisher(s.event_bus_name),
        keyring=SecretsManagerKeyring(s.api_keys_secret_id),
    )


@app.post("/v1/events")
def post_events() -> Response[str]:
    deps = dependencies()
    event = app.current_event
    body = event.decoded_body.encode() if event.decoded_body else b""
    now = utc_now()
    client = authenticate({k.lower(): v for k, v in (event.headers or {}).items()}, body, deps.keyring, now)
    logger.append_keys(client=client.name)
    result = ingest(
        body,
        event.request_context.request_id,
        now,
        deps.archive,
        deps.ledger,
        deps.publisher,
        phone_region=_phone_region_for,
    )
    metrics.add_metric(name="EventsAccepted", unit="Count", value=result.accepted)
    metrics.add_metric(name="EventsRejected", unit="Count", value=len(result.rejected))
    return _json(_status(result), result.model_dump_json())


def _phone_region_for(brand_id: str | None) -> str:
    """Each brand's configured phone region; brands outside the directory use the deployment default."""
    org = load_org()
    if brand_id and brand_id in org.brands:
        return org.brands[brand_id].phone_region
    return dependencies().settings.default_phone_region


def _status(result: IngestResult) -> int:
    if result.rejected and not (result.accepted or result.duplicates):
        return 400
    return 207 if result.rejected else 202


def _json(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(InvalidInputError)
def _invalid(exc: InvalidInputError) -> Response[str]:
    error = {"error": "invalid_request", "message": exc.message, "field": exc.location}
    return _json(400, _dumps(error))


@app.exception_handler(AuthenticationError)
def _unauthorized(exc: AuthenticationError) -> Response[str]:
    return _json(401, _dumps({"error": "unauthorized", "message": str(exc)}))


@app.exception_handler(RetryableError)
def _unavailable(exc: RetryableError) -> Response[str]:
    logger.exception("ingest dependency failed")
    return _json(503, _dumps({"error": "unavailable", "message": "try again; nothing was lost"}))


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
