"""HTTP API: the in-app inbox (cdp.app.inbox_api). The brand's backend gets a per-person token with its API key
(`POST /v1/inbox/tokens`, scope inbox:issue); the app reads that person's inbox with it (`Authorization: Bearer`),
and marks messages read or dismissed, which publishes their `message_opened` receipts like any channel's."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app.campaign_api import parsed_body
from cdp.app.inbox_api import (
    InboxApi,
    InboxEntry,
    InboxNotConfiguredError,
    InboxView,
    IssuedToken,
    TokenRequest,
)
from cdp.app.person_events import IngestedEvents
from cdp.channels.inbox import DynamoInbox
from cdp.channels.inbox_tokens import InboxToken, sources_token_secret
from cdp.connectors.aws import SecretsManagerSources
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive, SecretsManagerKeyring
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import InboxApiSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.openapi import body, query, responses
from functions.api_errors import error_response, map_common_errors, map_invalid_body
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)
NO_STORE = {"Cache-Control": "no-store"}  # a token, a person's messages: never kept by a cache on the way


@dataclass(frozen=True)
class Dependencies:
    api: InboxApi
    keyring: SecretsManagerKeyring


@cache
def dependencies() -> Dependencies:
    s = get_settings(InboxApiSettings)
    org = load_org()
    receipts = IngestedEvents(
        S3RawArchive(s.data_bucket),
        DynamoDedupeLedger(s.ledger_table),
        EventBridgePublisher(s.event_bus_name),
        org,
        client="inbox",
    )
    api = InboxApi(
        DynamoInbox(s.ledger_table),
        DynamoIdentityStore(s.profiles_table, org=org),  # persons (merges followed) and the identifier index
        org,
        sources_token_secret(SecretsManagerSources(s.sources_secret_id)),
        receipts,
    )
    return Dependencies(api=api, keyring=SecretsManagerKeyring(s.api_keys_secret_id))


def _token() -> InboxToken:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    token = dependencies().api.authenticate(headers.get("authorization"))
    logger.append_keys(brand_id=token.brand_id)
    return token


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump_json(), headers=NO_STORE
    )


def _docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses(ok, [s for s in errors if s != 422])
    if 422 in errors:
        out[422] = {"description": "the body is wrong: `errors` names every problem with its field path"}
    return out


@app.post(
    "/v1/inbox/tokens",
    summary="A person's inbox token, for the brand's app (the brand's backend asks, with inbox:issue)",
    tags=["inbox"],
    responses=_docs({201: (IssuedToken, "issued")}, (400, 401, 403, 404, 422, 503)),
    openapi_extensions=body(TokenRequest, "TokenRequest"),
)
def issue_token() -> Response[str]:
    client = api_client(app.current_event, dependencies().keyring)
    request = parsed_body(TokenRequest, text_body(app.current_event), "inbox token request")
    return _ok(dependencies().api.issue(client, request), 201)


@app.get(
    "/v1/inbox",
    summary="The person's in-app messages, newest first, with the unread count (Authorization: Bearer <token>)",
    tags=["inbox"],
    responses=_docs({200: (InboxView, "ok")}, (400, 401, 404, 503)),
    openapi_extensions=query(limit="1-100 (default 50)"),
)
def inbox() -> Response[str]:
    token = _token()
    return _ok(dependencies().api.messages(token, (app.current_event.query_string_parameters or {}).get("limit")))


@app.post(
    "/v1/inbox/<message_id>/read",
    summary="Mark a message read: its message_opened receipt is published (once)",
    tags=["inbox"],
    responses=_docs({200: (InboxEntry, "read")}, (401, 404, 503)),
)
def read(message_id: str) -> Response[str]:
    token = _token()
    return _ok(dependencies().api.read(token, unquote(message_id)))


@app.post(
    "/v1/inbox/<message_id>/dismiss",
    summary="Dismiss a message: read (its receipt published once) and left out of the inbox from now on",
    tags=["inbox"],
    responses=_docs({200: (InboxEntry, "dismissed")}, (401, 404, 503)),
)
def dismiss(message_id: str) -> Response[str]:
    token = _token()
    return _ok(dependencies().api.dismiss(token, unquote(message_id)))


@app.exception_handler(InboxNotConfiguredError)
def _not_configured(exc: InboxNotConfiguredError) -> Response[str]:
    logger.error("inbox tokens are not configured", error=str(exc))
    return error_response(503, "not_configured", str(exc))


map_invalid_body(app)
map_common_errors(app, logger, "inbox API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
