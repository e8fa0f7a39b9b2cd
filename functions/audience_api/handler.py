"""HTTP API: audience packages — define, validate, size, preview, export and list snapshots (see cdp.audiences);
activate a snapshot to a brand's ad account and list the activations (see cdp.activation)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.activation.models import Activation, ActivationList, ActivationRequest
from cdp.activation.platforms import SourceAdPlatforms
from cdp.activation.service import ActivationFailed, ActivationService, ActivationStateError
from cdp.activation.store import ActivationStore
from cdp.app.audience_api import ActivationErrorBody, AudienceErrorBody, audience_id, int_query, json_body, options
from cdp.app.audience_api import activation_id as parse_activation_id
from cdp.audiences.models import (
    DEFAULT_SEGMENTS,
    AudienceDefinition,
    AudienceEstimate,
    AudienceList,
    EstimateRequest,
    ExportRequest,
    Preview,
    SizeEstimate,
    SizeRequest,
    SnapshotList,
    SnapshotManifest,
    StoredAudience,
    ValidationReport,
)
from cdp.audiences.service import (
    MAX_PREVIEW,
    AudienceAccess,
    AudienceInUseError,
    AudienceService,
    authorize_audiences,
)
from cdp.audiences.store import AudienceStore
from cdp.audiences.validation import AudienceInvalidError
from cdp.connectors.aws import SecretsManagerSources
from cdp.errors import ConflictError
from cdp.ingest.auth import AUDIENCES_READ_SCOPE, authorize
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.observability import logger, metrics, tracer
from cdp.org import OrgDirectory, load_org
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import AudienceApiSettings, get_settings
from cdp.shared.aws import S3ObjectStore
from cdp.shared.openapi import body, query, responses
from cdp.tags.catalog_source import CatalogSource
from cdp.tags.catalog_view import TagCatalogView, catalog_view
from functions.api_errors import error_response, json_response, map_common_errors
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    service: AudienceService
    keyring: SecretsManagerKeyring
    activations: ActivationService
    catalog: CatalogSource
    org: OrgDirectory


@cache
def dependencies() -> Dependencies:
    s = get_settings(AudienceApiSettings)
    objects = S3ObjectStore(s.data_bucket)
    org = load_org()
    audiences = AudienceStore(objects)
    profiles = DynamoProfileStore(s.profiles_table, org=org)
    catalog = CatalogSource(objects)
    service = AudienceService(audiences, profiles, catalog)
    platforms = SourceAdPlatforms(SecretsManagerSources(s.sources_secret_id))
    activations = ActivationService(audiences, profiles, org, ActivationStore(objects), platforms)
    keyring = SecretsManagerKeyring(s.api_keys_secret_id)
    return Dependencies(service=service, keyring=keyring, activations=activations, catalog=catalog, org=org)


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _access(*, write: bool = False) -> AudienceAccess:
    """The caller's view of the audiences: every one (no org scope) or those of the brands its key holds."""
    return authorize_audiences(_client(), write=write, org=dependencies().org)


def _query(name: str) -> str | None:
    return (app.current_event.query_string_parameters or {}).get(name)


def _id(value: str) -> str:
    found = audience_id(unquote(value))
    logger.append_keys(audience_id=found)
    return found


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return json_response(status, model.model_dump_json())


def _docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    """`responses(...)` with the audience meanings of 404/409 and the 422 that lists every problem."""
    out = responses(ok, [s for s in errors if s not in (422, 502)])
    if 404 in out:
        out[404]["description"] = "no such audience (or snapshot)"
    if 409 in out:
        out[409]["description"] = "other audiences reference this one, or another brand's audience holds the id"
    if 502 in errors:  # activation: the platform refused for good (502) or for now (503); the record is in the body
        failed = {"application/json": {"model": ActivationErrorBody}}
        out[502] = {"description": "the ad platform refused (our account, token or request)", "content": failed}
        if 409 in out:
            out[409]["description"] = "the activation is complete, or a request is uploading it now"
        out[503] = {
            "description": "the ad platform is unavailable after the retries (or a dependency failed): "
            "continue it later",
            "content": failed,
        }
    if 422 in errors:
        out[422] = {
            "description": "the definition is wrong: `errors` names every problem with its field path",
            "content": {"application/json": {"model": AudienceErrorBody}},
        }
    return out


@app.post(
    "/v1/audiences",
    summary="Define an audience, or update it (the version goes up by one)",
    tags=["audiences"],
    responses=_docs(
        {200: (StoredAudience, "updated"), 201: (StoredAudience, "created")}, (400, 401, 403, 409, 422, 503)
    ),
    openapi_extensions=body(AudienceDefinition, "AudienceDefinition"),
)
def define() -> Response[str]:
    access = _access(write=True)
    stored = dependencies().service.define(json_body(text_body(app.current_event)), access)
    return _ok(stored, 201 if stored.created_at == stored.updated_at else 200)


@app.get(
    "/v1/audiences",
    summary="Every audience (latest versions)",
    tags=["audiences"],
    responses=_docs({200: (AudienceList, "ok")}, (400, 401, 403, 503)),
)
def list_audiences() -> Response[str]:
    return _ok(dependencies().service.list(_access()))


@app.post(
    "/v1/audiences/validate",
    summary="Check a definition against the tag catalog and the other audiences, without saving it",
    tags=["audiences"],
    responses=_docs(
        {200: (ValidationReport, "the report: valid, or every error with its field path")}, (400, 401, 403, 503)
    ),
    openapi_extensions=body(AudienceDefinition, "AudienceDefinition"),
)
def validate() -> Response[str]:
    access = _access()
    return _ok(dependencies().service.validate(json_body(text_body(app.current_event)), access))


@app.post(
    "/v1/audiences/estimate",
    summary="Size a definition as it stands (saved or not), with its members' portrait against all customers and the "
    "first members, from one sampled scan: what an audience builder shows while it is edited",
    tags=["audiences"],
    responses=_docs({200: (AudienceEstimate, "nothing was saved")}, (400, 401, 403, 409, 422, 503)),
    openapi_extensions=body(EstimateRequest, "EstimateRequest"),
)
def estimate() -> Response[str]:
    access = _access()
    return _ok(dependencies().service.estimate(options(EstimateRequest, text_body(app.current_event)), access))


@app.get(
    "/v1/tags",
    summary="The tag catalog: every tag with its category, type and possible values, and the attributes, event types, "
    "fields and tests a condition may name (any key with audiences:read: the catalog holds no customer data)",
    tags=["audiences"],
    responses=_docs({200: (TagCatalogView, "ok")}, (401, 403, 503)),
)
def tag_catalog() -> Response[str]:
    authorize(_client(), AUDIENCES_READ_SCOPE)
    return _ok(catalog_view(dependencies().catalog()))


@app.get(
    "/v1/audiences/<audience_id>",
    summary="An audience's definition with its version and times",
    tags=["audiences"],
    responses=_docs({200: (StoredAudience, "ok")}, (400, 401, 403, 404, 503)),
)
def get_audience(audience_id: str) -> Response[str]:
    access = _access()
    return _ok(dependencies().service.get(_id(audience_id), access))


@app.delete(
    "/v1/audiences/<audience_id>",
    summary="Delete an audience (its snapshots stay; defining it again continues its versions)",
    tags=["audiences"],
    responses=_docs({200: (StoredAudience, "the tombstone")}, (400, 401, 403, 404, 409, 503)),
)
def delete_audience(audience_id: str) -> Response[str]:
    access = _access(write=True)
    return _ok(dependencies().service.delete(_id(audience_id), access))


@app.post(
    "/v1/audiences/<audience_id>/size",
    summary="Estimate the size: exact when the table is small, else a segment sample with a 95% interval",
    tags=["audiences"],
    responses=_docs({200: (SizeEstimate, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=body(SizeRequest, "SizeRequest", description="optional: an empty body takes the defaults"),
)
def size(audience_id: str) -> Response[str]:
    access = _access()
    request = options(SizeRequest, text_body(app.current_event))
    return _ok(dependencies().service.size(_id(audience_id), request, access))


@app.get(
    "/v1/audiences/<audience_id>/preview",
    summary="Up to `limit` members with key traits (PII masked) and the values the condition reads",
    tags=["audiences"],
    responses=_docs({200: (Preview, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=query(limit=f"1-{MAX_PREVIEW} (default 10)", segments="parallel scan segments, 1-1000"),
)
def preview(audience_id: str) -> Response[str]:
    access = _access()
    limit = int_query("limit", _query("limit"), 10, 1, MAX_PREVIEW)
    segments = int_query("segments", _query("segments"), DEFAULT_SEGMENTS, 1, 1000)
    return _ok(dependencies().service.preview(_id(audience_id), limit, segments, access))


@app.post(
    "/v1/audiences/<audience_id>/export",
    summary="Freeze the current members into a snapshot (members files, then the manifest)",
    tags=["audiences"],
    responses=_docs({201: (SnapshotManifest, "the snapshot's manifest")}, (400, 401, 403, 404, 503)),
    openapi_extensions=body(ExportRequest, "ExportRequest", description="optional: an empty body takes the defaults"),
)
def export(audience_id: str) -> Response[str]:
    access = _access(write=True)
    request = options(ExportRequest, text_body(app.current_event))
    return _ok(dependencies().service.export(_id(audience_id), request, access), 201)


@app.get(
    "/v1/audiences/<audience_id>/snapshots",
    summary="An audience's snapshots, newest first",
    tags=["audiences"],
    responses=_docs({200: (SnapshotList, "ok")}, (400, 401, 403, 404, 503)),
)
def snapshots(audience_id: str) -> Response[str]:
    access = _access()
    return _ok(dependencies().service.snapshots(_id(audience_id), access))


@app.post(
    "/v1/audiences/<audience_id>/activations",
    summary="Upload a snapshot's members (hashed) to the brand's ad account: a custom audience at the platform",
    tags=["audiences"],
    responses=_docs(
        {201: (Activation, "complete, or in_progress (continue it) when in parts")}, (400, 401, 403, 404, 502, 503)
    ),
    openapi_extensions=body(ActivationRequest, "ActivationRequest"),
)
def activate(audience_id: str) -> Response[str]:
    client = _client()
    request = options(ActivationRequest, text_body(app.current_event))
    return _ok(dependencies().activations.activate(client, _id(audience_id), request), 201)


@app.post(
    "/v1/audiences/<audience_id>/activations/<activation_id>/continue",
    summary="Upload the next part of an activation in parts (or run a failed part again)",
    tags=["audiences"],
    responses=_docs({200: (Activation, "complete, or in_progress")}, (400, 401, 403, 404, 409, 502, 503)),
)
def continue_activation(audience_id: str, activation_id: str) -> Response[str]:
    client = _client()
    found = _id(audience_id)
    return _ok(dependencies().activations.resume(client, found, parse_activation_id(unquote(activation_id))))


@app.get(
    "/v1/audiences/<audience_id>/activations",
    summary="An audience's activations (those of the brands the key sees), newest first",
    tags=["audiences"],
    responses=_docs({200: (ActivationList, "ok")}, (400, 401, 403, 404, 503)),
)
def activations(audience_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().activations.activations(client, _id(audience_id)))


# ---- errors: typed, mapped in one place ---------------------------------------------------------------------------


@app.exception_handler(AudienceInvalidError)
def _invalid_audience(exc: AudienceInvalidError) -> Response[str]:
    errors = [e.model_dump() for e in exc.errors]
    return error_response(422, "invalid_audience", exc.message, field=exc.location, errors=errors)


@app.exception_handler(AudienceInUseError)
def _in_use(exc: AudienceInUseError) -> Response[str]:
    return error_response(409, "audience_in_use", str(exc))


@app.exception_handler(ConflictError)
def _id_taken(exc: ConflictError) -> Response[str]:
    return error_response(409, "conflict", str(exc), field="id")


@app.exception_handler(ActivationStateError)
def _activation_state(exc: ActivationStateError) -> Response[str]:
    return error_response(409, "activation_state", str(exc))


@app.exception_handler(ActivationFailed)
def _activation_failed(exc: ActivationFailed) -> Response[str]:
    """Refused for good: 502 (our account, token or request; retrying will not help); else 503 (continue it)."""
    status, code = (502, "ad_platform_refused") if exc.permanent else (503, "ad_platform_unavailable")
    activation = exc.activation.model_dump(mode="json")
    return error_response(status, code, str(exc), platform_code=exc.code, activation=activation)


map_common_errors(app, logger, "audience API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
