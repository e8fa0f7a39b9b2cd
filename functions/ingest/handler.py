"""HTTP API: POST /v1/events (canonical events) and every channel connector's inbound routes (Segment calls, ...).

Thin: each route builds an `InboundRequest` and hands it to `cdp.connectors.service.receive`; typed errors map to
4xx here. Nothing is processed before the source is authenticated and the raw body archived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from cdp.connectors.aws import SecretsManagerSources
from cdp.connectors.base import Connector, InboundRequest
from cdp.connectors.redirect import set_short_links
from cdp.connectors.registry import ROUTES, ConnectorRoute
from cdp.connectors.service import Ports, Received, receive
from cdp.connectors.short_links import DynamoShortLinks
from cdp.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RetryableError,
    UnsupportedMediaTypeError,
)
from cdp.ingest.auth import authenticate
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive, SecretsManagerKeyring
from cdp.ingest.events import CanonicalEvent
from cdp.ingest.ports import ApiClient
from cdp.ingest.security import check_media_type
from cdp.ingest.service import META_WRITER_SCOPE, IngestResult, WriteScope, check_body, ingest
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import IngestSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.openapi import STATUS_TEXT, ErrorBody, body, responses
from cdp.shared.time import utc_now, wire_now
from functions.request_body import console_tokens, raw_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    settings: IngestSettings
    archive: S3RawArchive
    ledger: DynamoDedupeLedger
    publisher: EventBridgePublisher
    keyring: SecretsManagerKeyring
    ports: Ports


@cache
def dependencies() -> Dependencies:
    s = get_settings(IngestSettings)
    archive = S3RawArchive(s.data_bucket)
    ledger = DynamoDedupeLedger(s.ledger_table)
    publisher = EventBridgePublisher(s.event_bus_name)
    ports = Ports(SecretsManagerSources(s.sources_secret_id), archive, ledger, publisher, _phone_region_for)
    set_short_links(DynamoShortLinks(s.ledger_table))  # SMS links: /r/{code} resolves through the ledger table
    return Dependencies(s, archive, ledger, publisher, SecretsManagerKeyring(s.api_keys_secret_id), ports)


class EventBatch(BaseModel):
    batch: list[CanonicalEvent] = Field(min_length=1, max_length=500)


@app.post(
    "/v1/events",
    summary="Canonical events: one event or {batch: [...]} (x-api-key, or x-cdp-key-id + x-cdp-signature)",
    tags=["ingest"],
    responses=responses(
        {202: (IngestResult, "every event accepted (or already known)"), 207: (IngestResult, "some rejected")},
        (401, 413, 415, 503),
    )
    | {400: {"description": STATUS_TEXT[400], "content": {"application/json": {"model": ErrorBody | IngestResult}}}},
    openapi_extensions=body(CanonicalEvent | EventBatch, "EventsRequest"),
)
def post_events() -> Response[str]:
    deps = dependencies()
    event = app.current_event
    body = raw_body(event)
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    check_body(body)  # size and nesting before any credential or parsing work
    check_media_type(headers, body, ("application/json",))
    now = utc_now()
    client = authenticate(headers, body, deps.keyring, wire_now(), tokens=console_tokens())
    logger.append_keys(client=client.name)
    result = ingest(
        body,
        event.request_context.request_id,
        now,
        deps.archive,
        deps.ledger,
        deps.publisher,
        phone_region=_phone_region_for,
        write_scope=WriteScope(load_org(), (client.org_scope,)),
        archive_meta=_archive_meta(client),
    )
    _count(result)
    return _json(_status(result), result.model_dump_json())


# ---- channel connectors (cdp.connectors.registry) ------------------------------------------------------------


def _register(route: ConnectorRoute) -> None:
    path = route.path.replace("{key}", "<key>")

    def handle(key: str | None = None) -> Response[str]:
        received = _receive(route.factory(), key)
        if received.reply is not None:
            reply = received.reply
            return Response(reply.status, reply.content_type, reply.body, headers=reply.headers or None)
        result = received.result
        counts = (result.accepted, result.duplicates, len(result.rejected))
        status = route.json_status(*counts) if route.json_status else _status(result)
        answer: dict[str, Any] = {"success": 200 <= status < 300, **result.model_dump(mode="json")}
        if status >= 400:  # Segment SDKs raise their APIError from code + message (a KeyError without them)
            first = result.rejected[0].errors[0] if result.rejected and result.rejected[0].errors else None
            detail = f"; first: {first.field}: {first.message}" if first else ""
            answer |= {"code": "invalid_request", "message": f"{len(result.rejected)} rejected{detail}"}
        return _json(status, json.dumps(answer))

    app.route(
        path,
        [route.method],
        summary=route.summary or None,
        tags=["connectors"],
        responses=route.responses,
        openapi_extensions=route.request or None,
    )(handle)


for _route in ROUTES:
    _register(_route)


@app.get(
    "/v1/openapi.json",
    summary="This API's OpenAPI document (every function's routes)",
    tags=["docs"],
    responses=responses({200: (None, "the OpenAPI 3.1 document")}, ()),
)
def get_openapi() -> Response[str]:
    from functions.api_docs import openapi_document  # imports every API function's routes: only when asked

    return _json(200, json.dumps(openapi_document()))


# ---- shared ------------------------------------------------------------------------------------------------------


def _receive(connector: Connector, key: str | None = None) -> Received:
    event = app.current_event
    body = raw_body(event)  # bytes as sent: a gzip body arrives base64-encoded and must not be decoded as text
    request = InboundRequest(
        connector=connector.name,
        method=event.request_context.http.method,
        body=body,
        received_at=utc_now(),
        arrived_at=wire_now(),
        request_id=event.request_context.request_id,
        key=key,
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
        source_ip=event.request_context.http.source_ip,
    )
    received = receive(request, connector, dependencies().ports)
    logger.append_keys(connector=connector.name)
    _count(received.result)
    return received


def _archive_meta(client: ApiClient) -> dict[str, str]:
    """Who posted the body, kept with it (S3 metadata is ASCII: the name is percent-encoded, the scope \\u-escaped)."""
    scope = json.dumps(client.org_scope.model_dump(exclude_none=True), separators=(",", ":"))
    return {"client": quote(client.name, safe=""), META_WRITER_SCOPE: scope}


def _count(result: IngestResult) -> None:
    metrics.add_metric(name="EventsAccepted", unit="Count", value=result.accepted)
    metrics.add_metric(name="EventsRejected", unit="Count", value=len(result.rejected))


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


@app.exception_handler(PayloadTooLargeError)
def _too_large(exc: PayloadTooLargeError) -> Response[str]:
    return _json(413, _dumps({"error": "payload_too_large", "message": exc.message, "field": exc.location}))


@app.exception_handler(UnsupportedMediaTypeError)
def _unsupported(exc: UnsupportedMediaTypeError) -> Response[str]:
    return _json(415, _dumps({"error": "unsupported_media_type", "message": exc.message, "field": exc.location}))


@app.exception_handler(InvalidInputError)
def _invalid(exc: InvalidInputError) -> Response[str]:
    error = {"error": "invalid_request", "message": exc.message, "field": exc.location}
    return _json(400, _dumps(error))


@app.exception_handler(NotFoundError)
def _not_found(exc: NotFoundError) -> Response[str]:
    return _json(404, _dumps({"error": "not_found", "message": str(exc)}))


@app.exception_handler(AuthenticationError)
def _unauthorized(exc: AuthenticationError) -> Response[str]:
    return _json(401, _dumps({"error": "unauthorized", "message": str(exc)}))


@app.exception_handler(RetryableError)
def _unavailable(exc: RetryableError) -> Response[str]:
    logger.exception("ingest dependency failed")
    return _json(503, _dumps({"error": "unavailable", "message": "try again; nothing was lost"}))


def _dumps(value: dict[str, Any]) -> str:
    # `code` too: Segment SDKs read the error as {"code", "message"}
    return json.dumps({"code": value["error"], **value})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
