"""HTTP API for operators (scope operations:replay): dead letters with their reasons, redrive, archive replay, and
the person-item layout migration (unscoped keys only: it moves every brand's items)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from cdp.connectors.platforms.aws import DynamoPullState
from cdp.connectors.registry import connector_for
from cdp.connectors.replay import ReplayRequest, ReplaySummary, replay_archive
from cdp.connectors.service import Ports
from cdp.connectors.sources import SourcesConfig, StaticSources
from cdp.errors import AuthenticationError, ForbiddenError, InvalidInputError, RetryableError
from cdp.ingest.auth import REPLAY_SCOPE, authenticate, authorize
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive, SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.ingest.service import field_errors
from cdp.observability import logger, tracer
from cdp.org import ScopeRef, load_org
from cdp.profile.migration import MigrationPage, MigrationRequest, PersonLayoutMigration
from cdp.settings import OperationsSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.aws import client as aws_client
from cdp.shared.deadletter import RedriveRequest, RedriveSummary, SqsDeadLetterQueue, redrive_all
from cdp.shared.openapi import body, query, responses
from cdp.shared.time import wire_now
from functions.request_body import console_tokens, text_body

app = APIGatewayHttpResolver(enable_validation=False)
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Dependencies:
    settings: OperationsSettings
    keyring: SecretsManagerKeyring
    ports: Ports
    pull_state: DynamoPullState  # the buyer of each pulled order, for platform pages


@cache
def dependencies() -> Dependencies:
    s = get_settings(OperationsSettings)
    org = load_org()

    def region_of(brand_id: str | None) -> str:
        brand = org.brands.get(brand_id or "")
        return brand.phone_region if brand else s.default_phone_region

    ports = Ports(
        StaticSources(SourcesConfig()),  # replay maps with the binding recorded at receipt: no secrets needed
        S3RawArchive(s.data_bucket),
        DynamoDedupeLedger(s.ledger_table),
        EventBridgePublisher(s.event_bus_name),
        region_of,
    )
    return Dependencies(s, SecretsManagerKeyring(s.api_keys_secret_id), ports, DynamoPullState(s.ledger_table))


def _authorize() -> ApiClient:
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    client = authenticate(headers, b"", dependencies().keyring, wire_now(), require=None, tokens=console_tokens())
    logger.append_keys(client=client.name)
    return authorize(client, REPLAY_SCOPE)


def _brand_filter(client: ApiClient) -> Callable[[str | None], bool] | None:
    """Dead letters of every brand share a queue: a key with an org scope sees its brands' letters only (and none
    whose brand is unknown); a key without one sees all."""
    scope = client.org_scope
    if scope == ScopeRef():
        return None
    org = load_org()
    return lambda brand: brand is not None and scope.covers_brand(org, brand)


def _queue(name: str) -> SqsDeadLetterQueue:
    pairs = dependencies().settings.pairs()
    if name not in pairs:
        raise InvalidInputError(f"unknown queue {name!r}; expected one of {', '.join(sorted(pairs))}", "queue")
    source, dlq = pairs[name]
    return SqsDeadLetterQueue(dlq, source)


@app.get(
    "/v1/admin/dead-letters",
    summary="A queue's dead letters with the reason each one failed",
    tags=["operations"],
    responses=responses({200: (RedriveSummary, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=query(
        queue="identity-merge, tag-update, journey, send, offer-events or loyalty (default identity-merge)",
        limit="1-1000",
    ),
)
def list_dead_letters() -> Response[str]:
    client = _authorize()
    query = app.current_event.query_string_parameters or {}
    name = query.get("queue", "identity-merge")
    summary = redrive_all(
        _queue(name), name, limit=_limit(query.get("limit")), dry_run=True, visible=_brand_filter(client)
    )
    return _json(200, summary.model_dump_json())


@app.post(
    "/v1/admin/dead-letters/redrive",
    summary="Send a queue's dead letters back to it (after fixing the cause)",
    tags=["operations"],
    responses=responses({200: (RedriveSummary, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=body(RedriveRequest, "RedriveRequest"),
)
def redrive() -> Response[str]:
    client = _authorize()
    request = _parse(RedriveRequest)
    summary = redrive_all(_queue(request.queue), request.queue, limit=request.limit, visible=_brand_filter(client))
    logger.info("dead letters redriven", queue=request.queue, redriven=summary.redriven)
    return _json(200, summary.model_dump_json())


@app.post(
    "/v1/admin/replay",
    summary="Map and republish a source's archived raw requests for a time range (one page per call)",
    tags=["operations"],
    responses=responses({200: (ReplaySummary, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=body(ReplayRequest, "ReplayRequest"),
)
def replay() -> Response[str]:
    client = _authorize()
    r = _parse(ReplayRequest)
    deps = dependencies()
    summary = replay_archive(
        r.source,
        r.start,
        r.end,
        deps.ports,
        connector_for,
        r.after,
        r.limit,
        buyer_of=deps.pull_state.buyer_of,
        operator=client.org_scope,
        org=load_org(),
    )
    logger.info("archive replayed", source=r.source, objects=summary.objects, accepted=summary.accepted)
    return _json(200, summary.model_dump_json())


@app.post(
    "/v1/admin/migrations/person-layout",
    summary="Move one page of person items to the current item layout (idempotent; call until done)",
    tags=["operations"],
    responses=responses({200: (MigrationPage, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=body(MigrationRequest, "MigrationRequest"),
)
def migrate_person_layout() -> Response[str]:
    client = _authorize()
    if client.org_scope != ScopeRef():
        raise ForbiddenError("the layout migration moves every brand's items: it needs a key with no org scope")
    request = _parse(MigrationRequest)
    migration = PersonLayoutMigration(aws_client("dynamodb"), dependencies().settings.profiles_table)
    page = migration.run_page(request)
    logger.info("person layout migration page", migrated=page.migrated, done=page.done)
    return _json(200, page.model_dump_json())


def _limit(value: str | None) -> int:
    try:
        limit = int(value or 100)
    except ValueError as exc:
        raise InvalidInputError("limit must be an integer", "limit") from exc
    if not 1 <= limit <= 1000:
        raise InvalidInputError("limit must be between 1 and 1000", "limit")
    return limit


def _parse(model: type[ModelT]) -> ModelT:
    body = text_body(app.current_event)
    try:
        return model.model_validate_json(body or "{}")
    except ValidationError as exc:
        first = field_errors(exc)[0]
        raise InvalidInputError(first.message, first.field) from exc


def _json(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(InvalidInputError)
def _invalid(exc: InvalidInputError) -> Response[str]:
    return _json(400, json.dumps({"error": "invalid_request", "message": exc.message, "field": exc.location}))


@app.exception_handler(AuthenticationError)
def _unauthorized(exc: AuthenticationError) -> Response[str]:
    return _json(401, json.dumps({"error": "unauthorized", "message": str(exc)}))


@app.exception_handler(ForbiddenError)
def _forbidden(exc: ForbiddenError) -> Response[str]:
    return _json(403, json.dumps({"error": "forbidden", "message": str(exc)}))


@app.exception_handler(RetryableError)
def _unavailable(exc: RetryableError) -> Response[str]:
    logger.exception("operations dependency failed")
    return _json(503, json.dumps({"error": "unavailable", "message": "try again"}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
