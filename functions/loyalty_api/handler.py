"""HTTP API: the brand's points programmes and members' accounts in those the platform keeps (balance, lots with
their expiry, level and its hold, qualifying spend, benefits), and the operations staff and apps ask for: burn,
adjust, convert between programmes, each once per `op_id` (see cdp.loyalty.service)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app.campaign_api import brand_of, parsed_body
from cdp.errors import ConflictError
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.loyalty.accounts import InsufficientPointsError
from cdp.loyalty.dynamodb import dynamo_loyalty_service
from cdp.loyalty.service import Accounts, LoyaltyService, OperationResult, PointsRequest, ProgramList
from cdp.observability import logger, metrics, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import LoyaltyApiSettings, get_settings
from cdp.shared.openapi import body, query, responses
from functions.api_errors import error_response, json_response, map_common_errors, map_invalid_body
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    service: LoyaltyService
    keyring: SecretsManagerKeyring


@cache
def dependencies() -> Dependencies:
    s = get_settings(LoyaltyApiSettings)
    service = dynamo_loyalty_service(s.offers_table, DynamoProfileStore(s.profiles_table), s.event_bus_name)
    return Dependencies(service=service, keyring=SecretsManagerKeyring(s.api_keys_secret_id))


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _brand(client: ApiClient) -> str:
    brand = brand_of((app.current_event.query_string_parameters or {}).get("brand_id"), client)
    logger.append_keys(brand_id=brand)
    return brand


def _request(client: ApiClient) -> PointsRequest:
    defaults = {"brand_id": client.org_scope.brand_id} if client.org_scope.brand_id else {}
    return parsed_body(PointsRequest, text_body(app.current_event), "points request", defaults)


def _ok(model: BaseModel) -> Response[str]:
    return json_response(200, model.model_dump_json())


def _docs(ok: type[BaseModel], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses({200: (ok, "ok")}, [s for s in errors if s != 422])
    if 409 in out:
        out[409]["description"] = "fewer points than asked"
    if 422 in errors:
        out[422] = {"description": "the body is wrong: `errors` names every problem with its field path"}
    return out


_BRAND = query(brand_id="the brand (default: the brand the key is limited to)")
_OPERATION = body(PointsRequest, "PointsRequest")


@app.get(
    "/v1/loyalty/programs",
    summary="The brand's points programmes: who keeps each one and the rules of those the platform keeps",
    tags=["loyalty"],
    responses=_docs(ProgramList, (400, 401, 403, 503)),
    openapi_extensions=_BRAND,
)
def programs() -> Response[str]:
    client = _client()
    return _ok(dependencies().service.programs(_brand(client), client))


@app.get(
    "/v1/loyalty/accounts/<person_id>",
    summary="A member's accounts: balance, lots with their expiry, level and its hold, qualifying spend, benefits",
    tags=["loyalty"],
    responses=_docs(Accounts, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def accounts(person_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.accounts(_brand(client), unquote(person_id), client))


@app.post(
    "/v1/loyalty/<program>/burn",
    summary="Spend a member's points, oldest first (once per op_id)",
    tags=["loyalty"],
    responses=_docs(OperationResult, (400, 401, 403, 404, 409, 422, 503)),
    openapi_extensions=_OPERATION,
)
def burn(program: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.burn(unquote(program), _request(client), client))


@app.post(
    "/v1/loyalty/<program>/adjust",
    summary="Add (a lot that expires like earned points) or take points, with a note (once per op_id)",
    tags=["loyalty"],
    responses=_docs(OperationResult, (400, 401, 403, 404, 409, 422, 503)),
    openapi_extensions=_OPERATION,
)
def adjust(program: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.adjust(unquote(program), _request(client), client))


@app.post(
    "/v1/loyalty/<program>/convert",
    summary="Convert points into another programme the platform keeps, at the programme's rate (once per op_id)",
    tags=["loyalty"],
    responses=_docs(OperationResult, (400, 401, 403, 404, 409, 422, 503)),
    openapi_extensions=_OPERATION,
)
def convert(program: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.convert(unquote(program), _request(client), client))


@app.exception_handler(InsufficientPointsError)
def _short(exc: InsufficientPointsError) -> Response[str]:
    return error_response(409, "insufficient_points", str(exc))


@app.exception_handler(ConflictError)
def _conflict(exc: ConflictError) -> Response[str]:
    return error_response(409, "conflict", str(exc))


map_invalid_body(app)
map_common_errors(app, logger, "loyalty API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
