"""HTTP API for operators (scope operations:replay): dead letters with their reasons, redrive, archive replay, and
the person-item layout migration (unscoped keys only: it moves every brand's items). And the deployment's settings
(scope settings:admin, no org scope; cdp.access): API keys, console users and sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from cdp.access import service as access
from cdp.access.aws import CognitoUserDirectory, SecretsManagerKeyStore
from cdp.access.models import (
    ApiKeyList,
    ApiKeyRequest,
    ConsoleUserInfo,
    ConsoleUserList,
    ConsoleUserRequest,
    CreatedApiKey,
    DisabledConsoleUser,
    RevokedApiKey,
    SettingsConflictError,
    SourceList,
    key_id,
)
from cdp.access.ports import UserDirectory
from cdp.access.users_file import UsersFileDirectory
from cdp.connectors.aws import SecretsManagerSources
from cdp.connectors.platforms.aws import DynamoPullState
from cdp.connectors.registry import connector_for
from cdp.connectors.replay import ReplayRequest, ReplaySummary, replay_archive
from cdp.connectors.service import Ports
from cdp.connectors.sources import SourcesConfig, SourcesConfigError, StaticSources
from cdp.errors import AuthenticationError, ForbiddenError, InvalidInputError, NotFoundError, RetryableError
from cdp.ingest.auth import API_KEY_HEADER, REPLAY_SCOPE, authenticate, authorize
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive, SecretsManagerKeyring
from cdp.ingest.console_tokens import looks_like_token
from cdp.ingest.ports import ApiClient
from cdp.ingest.service import field_errors
from cdp.observability import logger, tracer
from cdp.org import ScopeRef, load_org
from cdp.profile.migration import MigrationPage, MigrationRequest, PersonLayoutMigration
from cdp.settings import ConsoleUserDirectory, OperationsSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.aws import client as aws_client
from cdp.shared.deadletter import RedriveRequest, RedriveSummary, SqsDeadLetterQueue, redrive_all
from cdp.shared.openapi import body, query, responses
from cdp.shared.time import utc_now, wire_now
from functions.request_body import console_tokens, text_body

app = APIGatewayHttpResolver(enable_validation=False)
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Dependencies:
    settings: OperationsSettings
    keyring: SecretsManagerKeyring
    ports: Ports
    pull_state: DynamoPullState  # the buyer of each pulled order, for platform pages
    key_store: SecretsManagerKeyStore  # settings: the API keys, written back to their secret
    sources: SecretsManagerSources  # settings: the sources, listed without their secrets


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
    secret = s.api_keys_secret_id
    keys = SecretsManagerKeyStore(secret, on_change=lambda: SecretsManagerKeyring.forget(secret))
    return Dependencies(
        s,
        SecretsManagerKeyring(secret),
        ports,
        DynamoPullState(s.ledger_table),
        keys,
        SecretsManagerSources(s.sources_secret_id),
    )


def _headers() -> dict[str, str]:
    return {k.lower(): v for k, v in (app.current_event.headers or {}).items()}


def _caller() -> ApiClient:
    client = authenticate(_headers(), b"", dependencies().keyring, wire_now(), require=None, tokens=console_tokens())
    logger.append_keys(client=client.name)
    return client


def _authorize() -> ApiClient:
    return authorize(_caller(), REPLAY_SCOPE)


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


# ---- settings: API keys, console users, sources (cdp.access) -----------------------------------------------------


def _settings() -> ApiClient:
    return access.authorize_settings(_caller())


def _caller_key_id() -> str | None:
    """The fingerprint of the API key the caller sent (None: a console user's token)."""
    headers = _headers()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    sent = headers.get(API_KEY_HEADER) or (token.strip() if scheme.lower() == "bearer" else "")
    return key_id(sent) if sent and not looks_like_token(sent) else None


@cache
def _cognito() -> Any:
    return aws_client("cognito-idp")


def _users() -> UserDirectory:
    """The console's users: the stack's user pool, or the local runtime's users file (read per request: the local
    server may name its file after the start)."""
    where = get_settings(ConsoleUserDirectory)
    if where.console_user_pool_id:
        return CognitoUserDirectory(where.console_user_pool_id, _cognito())
    return UsersFileDirectory(Path(str(where.console_users_file)))


def _settings_docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses(ok, errors)
    if 403 in out:
        out[403]["description"] = "the caller lacks settings:admin, has an org scope, or grants a scope it lacks"
    if 404 in out:
        out[404]["description"] = "no such key or user"
    if 409 in out:
        out[409]["description"] = "the name is taken, or the caller would revoke or disable itself"
    return out


@app.get(
    "/v1/admin/api-keys",
    summary="Every API key by its fingerprint, client and scopes (never the key itself)",
    tags=["settings"],
    responses=_settings_docs({200: (ApiKeyList, "ok")}, (401, 403, 503)),
)
def get_api_keys() -> Response[str]:
    _settings()
    return _json(200, access.list_keys(dependencies().key_store).model_dump_json())


@app.post(
    "/v1/admin/api-keys",
    summary="Create an API key: the answer is the only time the key is shown",
    tags=["settings"],
    responses=_settings_docs({201: (CreatedApiKey, "created")}, (400, 401, 403, 503)),
    openapi_extensions=body(ApiKeyRequest, "ApiKeyRequest"),
)
def post_api_key() -> Response[str]:
    caller = _settings()
    created = access.create_key(dependencies().key_store, _parse(ApiKeyRequest), load_org(), caller, utc_now())
    logger.info("API key created", key_id=created.key_id, for_client=created.client, scopes=created.scopes)
    return _json(201, created.model_dump_json())


@app.delete(
    "/v1/admin/api-keys/<key_id>",
    summary="Revoke an API key (by its fingerprint); a key cannot revoke itself",
    tags=["settings"],
    responses=_settings_docs({200: (RevokedApiKey, "revoked")}, (401, 403, 404, 409, 503)),
)
def delete_api_key(key_id: str) -> Response[str]:
    _settings()
    revoked = access.revoke_key(dependencies().key_store, unquote(key_id), _caller_key_id())
    logger.info("API key revoked", key_id=revoked.key_id, for_client=revoked.client)
    return _json(200, revoked.model_dump_json())


@app.get(
    "/v1/admin/console-users",
    summary="The console's users with their scopes and org scope (the user pool's, or the local users file's)",
    tags=["settings"],
    responses=_settings_docs({200: (ConsoleUserList, "ok")}, (401, 403, 503)),
)
def get_console_users() -> Response[str]:
    _settings()
    return _json(200, access.list_users(_users()).model_dump_json())


@app.post(
    "/v1/admin/console-users",
    summary="Add a console user with a role or scopes, able to sign in at once with the password",
    tags=["settings"],
    responses=_settings_docs({201: (ConsoleUserInfo, "created")}, (400, 401, 403, 409, 503)),
    openapi_extensions=body(ConsoleUserRequest, "ConsoleUserRequest"),
)
def post_console_user() -> Response[str]:
    caller = _settings()
    user = access.add_user(_users(), _parse(ConsoleUserRequest), load_org(), caller)
    logger.info("console user added", username=user.username, scopes=user.scopes)
    return _json(201, user.model_dump_json())


@app.delete(
    "/v1/admin/console-users/<username>",
    summary="Disable a console user (kept in the list; sign-ins already made end within the hour)",
    tags=["settings"],
    responses=_settings_docs({200: (DisabledConsoleUser, "disabled")}, (401, 403, 404, 409, 503)),
)
def delete_console_user(username: str) -> Response[str]:
    caller = _settings()
    disabled = access.disable_user(_users(), unquote(username), caller)
    logger.info("console user disabled", username=disabled.username)
    return _json(200, disabled.model_dump_json())


@app.get(
    "/v1/admin/sources",
    summary="The connector sources: key, kind, brand, store and what each accepts (never their secrets)",
    tags=["settings"],
    responses=_settings_docs({200: (SourceList, "ok")}, (401, 403, 503)),
)
def get_sources() -> Response[str]:
    _settings()
    return _json(200, access.list_sources(dependencies().sources.sources()).model_dump_json())


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


@app.exception_handler(NotFoundError)
def _not_found(exc: NotFoundError) -> Response[str]:
    return _json(404, json.dumps({"error": "not_found", "message": str(exc)}))


@app.exception_handler(SettingsConflictError)
def _conflict(exc: SettingsConflictError) -> Response[str]:
    return _json(409, json.dumps({"error": "conflict", "message": str(exc)}))


@app.exception_handler(SourcesConfigError)
def _sources_broken(exc: SourcesConfigError) -> Response[str]:
    logger.error("the sources secret is invalid", error=str(exc))
    return _json(503, json.dumps({"error": "unavailable", "message": "the sources secret is invalid: see the logs"}))


@app.exception_handler(RetryableError)
def _unavailable(exc: RetryableError) -> Response[str]:
    logger.exception("operations dependency failed")
    return _json(503, json.dumps({"error": "unavailable", "message": "try again"}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
