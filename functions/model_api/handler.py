"""HTTP API: the model registry (cdp.app.model_api). Models, their versions and each version's report (models:read),
a rollback of `latest` to another saved version (models:promote), and one person scored now by the promoted version,
stored as the nightly score stores it (models:score)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app.model_api import (
    MAX_VERSIONS,
    ModelApi,
    ModelList,
    ModelVersions,
    PromotionRefusedError,
    RollbackRequest,
    RollbackResult,
    ScoreRequest,
    ScoreResult,
    VersionReport,
)
from cdp.app.tag_engine import tag_engine
from cdp.errors import ConflictError, ModelIntegrityError, PayloadTooLargeError
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.models.store import S3ModelStore
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import ModelApiSettings, get_settings
from cdp.shared.openapi import body, query, responses
from cdp.tags.dynamodb import DynamoTagStore
from functions.api_errors import error_response, json_response, map_common_errors, map_invalid_body
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    api: ModelApi
    keyring: SecretsManagerKeyring


@cache
def dependencies() -> Dependencies:
    s = get_settings(ModelApiSettings)
    org = load_org()
    profiles = DynamoTagStore(s.profiles_table, org=org)  # the person and timeline read; score and tags written
    engine, _ = tag_engine(s, store=profiles)  # the predictive tags that read a score follow it, as in scoring
    api = ModelApi(S3ModelStore(s.data_bucket), profiles, profiles, engine, org, s.default_phone_region)
    return Dependencies(api=api, keyring=SecretsManagerKeyring(s.api_keys_secret_id))


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return json_response(status, model.model_dump_json())


def _docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses(ok, [s for s in errors if s != 422])
    if 404 in out:
        out[404]["description"] = "no such model or version (or person), or the model has no promoted version"
    if 409 in out:
        out[409]["description"] = (
            "the version is promoted already or was rejected at training (send force), its stored bytes fail "
            "their integrity check (model_integrity), or the person kept changing while scored (conflict: retry)"
        )
    if 422 in errors:
        out[422] = {"description": "the body is wrong: `errors` names every problem with its field path"}
    return out


@app.get(
    "/v1/models",
    summary="Every model in the registry: its promoted version and that version's headline",
    tags=["models"],
    responses=_docs({200: (ModelList, "ok")}, (401, 403, 503)),
)
def list_models() -> Response[str]:
    return _ok(dependencies().api.models(_client()))


@app.get(
    "/v1/models/<model_name>",
    summary="A model's versions, newest first, each with its headline and whether it is the promoted one",
    tags=["models"],
    responses=_docs({200: (ModelVersions, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=query(limit=f"1-{MAX_VERSIONS} (default 20): the newest versions shown"),
)
def get_model(model_name: str) -> Response[str]:
    limit = (app.current_event.query_string_parameters or {}).get("limit")
    return _ok(dependencies().api.model(_client(), unquote(model_name), limit))


@app.get(
    "/v1/models/<model_name>/versions/<version>",
    summary="One version's report: metrics, features, label window, rows, library version, SHA-256, why rejected",
    tags=["models"],
    responses=_docs({200: (VersionReport, "ok")}, (400, 401, 403, 404, 409, 503)),
)
def get_version(model_name: str, version: str) -> Response[str]:
    return _ok(dependencies().api.version(_client(), unquote(model_name), unquote(version)))


@app.post(
    "/v1/models/<model_name>/rollback",
    summary="Point the model's latest at another saved version (its bytes verified first); recorded with the client",
    tags=["models"],
    responses=_docs({200: (RollbackResult, "promoted")}, (400, 401, 403, 404, 409, 413, 422, 503)),
    openapi_extensions=body(RollbackRequest, "RollbackRequest"),
)
def rollback(model_name: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().api.rollback(client, unquote(model_name), text_body(app.current_event)))


@app.post(
    "/v1/models/<model_name>/score",
    summary="Score one person now with the promoted version; stored with the predictive tags it moves (write)",
    tags=["models"],
    responses=_docs({200: (ScoreResult, "scored")}, (400, 401, 403, 404, 409, 413, 422, 503)),
    openapi_extensions=body(ScoreRequest, "ScoreRequest"),
)
def score(model_name: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().api.score(client, unquote(model_name), text_body(app.current_event)))


# ---- errors: typed, mapped in one place ---------------------------------------------------------------------------


@app.exception_handler(PayloadTooLargeError)
def _too_large(exc: PayloadTooLargeError) -> Response[str]:
    return error_response(413, "payload_too_large", exc.message, field=exc.location)


@app.exception_handler(PromotionRefusedError)
def _refused(exc: PromotionRefusedError) -> Response[str]:
    return error_response(409, exc.reason, str(exc))


@app.exception_handler(ConflictError)
def _conflict(exc: ConflictError) -> Response[str]:
    return error_response(409, "conflict", f"{exc}; retry the request")  # the person's tags kept moving meanwhile


@app.exception_handler(ModelIntegrityError)
def _integrity(exc: ModelIntegrityError) -> Response[str]:
    logger.error("stored model failed its integrity check", error=str(exc))
    return error_response(409, "model_integrity", str(exc))


map_invalid_body(app)
map_common_errors(app, logger, "model API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
