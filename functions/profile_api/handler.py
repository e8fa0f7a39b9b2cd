"""HTTP API: the 360-degree profile, its timeline and edits, identity operations and privacy (cdp.app.profile_api)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app.profile_api import (
    EditResponse,
    IdentityOperationResponse,
    MergeRequest,
    PrivacyStores,
    ProfileApi,
    ProfileEditRequest,
    QuarantineRequest,
    ReviewQueue,
    UnmergeRequest,
    parse_body,
)
from cdp.app.profile_views import ProfileView, TimelineView
from cdp.app.tag_history_api import TagsAsOfView, tags_as_of_view
from cdp.channels.messages import DynamoMessageLog
from cdp.errors import (
    ConflictError,
)
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.org import BrandList, OrgDirectory, load_org, visible_brands
from cdp.privacy.aws import privacy_ports
from cdp.privacy.models import ErasureReceipt, PersonExport
from cdp.profile.edits import DynamoEditLog
from cdp.settings import ProfileApiSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.openapi import body, query, responses
from cdp.tags.dynamodb import DynamoTagStore
from functions.api_errors import error_response, json_response, map_common_errors
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    api: ProfileApi
    keyring: SecretsManagerKeyring
    tags: DynamoTagStore  # as-of reads of the tag history
    org: OrgDirectory


@cache
def dependencies() -> Dependencies:
    s = get_settings(ProfileApiSettings)
    org = load_org()
    store = DynamoIdentityStore(s.profiles_table, org=org)  # the person, its identifiers and their lineage
    privacy = privacy_ports(s.profiles_table, s.ledger_table, s.data_bucket, s.event_bus_name, s.offers_table, org=org)
    api = ProfileApi(
        store,
        store,
        DynamoEditLog(s.profiles_table),
        EventBridgePublisher(s.event_bus_name),
        org,
        default_phone_region=s.default_phone_region,
        privacy=PrivacyStores(privacy.records, privacy.archive, privacy.ledger, privacy.offers),
        wallets=DynamoOfferStore(s.offers_table),
        message_log=DynamoMessageLog(s.ledger_table),  # each message's status as its receipts left it
    )
    return Dependencies(
        api=api,
        keyring=SecretsManagerKeyring(s.api_keys_secret_id),
        tags=DynamoTagStore(s.profiles_table, org=org),
        org=org,
    )


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _query(name: str) -> str | None:
    return (app.current_event.query_string_parameters or {}).get(name)


def _body() -> str | None:
    return text_body(app.current_event) or None


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return json_response(status, model.model_dump_json())


@app.get(
    "/v1/profiles/<person_id>",
    summary="The 360-degree profile of a person",
    tags=["profiles"],
    responses=responses({200: (ProfileView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=query(scope="narrow the view within the key's scope, e.g. store:sh01"),
)
def get_profile(person_id: str) -> Response[str]:
    return _ok(dependencies().api.profile(_client(), unquote(person_id), scope=_query("scope")))


@app.get(
    "/v1/profiles/by-identifier/<kind>/<value>",
    summary="The profile of the person holding an identifier",
    tags=["profiles"],
    responses=responses({200: (ProfileView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=query(
        brand_id="the brand (else the key's brand)",
        identifier_scope="WeChat app id or platform",
        scope="narrow the view",
    ),
)
def get_by_identifier(kind: str, value: str) -> Response[str]:
    view = dependencies().api.by_identifier(
        _client(),
        unquote(kind),
        unquote(value),
        brand_id=_query("brand_id"),
        identifier_scope=_query("identifier_scope"),
        scope=_query("scope"),
    )
    return _ok(view)


@app.get(
    "/v1/profiles/<person_id>/timeline",
    summary="A page of the person's events, newest first",
    tags=["profiles"],
    responses=responses({200: (TimelineView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=query(cursor="from next_cursor", limit="1-200", scope="narrow the view"),
)
def get_timeline(person_id: str) -> Response[str]:
    view = dependencies().api.timeline(
        _client(), unquote(person_id), cursor=_query("cursor"), limit=_query("limit"), scope=_query("scope")
    )
    return _ok(view)


@app.get(
    "/v1/profiles/<person_id>/tags",
    summary="The person's tags as of a past time, from the tag history",
    tags=["profiles"],
    responses=responses({200: (TagsAsOfView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=query(
        as_of="ISO 8601 time, required (a date means its start, UTC)",
        tag="only these tags, comma-separated (tag names or audience:<id>)",
    ),
)
def get_tags_as_of(person_id: str) -> Response[str]:
    deps, client = dependencies(), _client()
    person = unquote(person_id)
    return _ok(tags_as_of_view(client, person, _query("as_of"), _query("tag"), deps.tags, deps.tags, deps.org))


@app.patch(
    "/v1/profiles/<person_id>",
    summary="Edit traits, consent or identifiers (recorded with the actor)",
    tags=["profiles"],
    responses=responses({200: (EditResponse, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=query(scope="narrow the view") | body(ProfileEditRequest, "ProfileEditRequest"),
)
def patch_profile(person_id: str) -> Response[str]:
    client = _client()
    request = parse_body(ProfileEditRequest, _body())
    return _ok(dependencies().api.edit(client, unquote(person_id), request, scope=_query("scope")))


@app.post(
    "/v1/identity/merge",
    summary="Merge persons (dry_run previews)",
    tags=["profiles"],
    responses=responses({200: (IdentityOperationResponse, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(MergeRequest, "MergeRequest"),
)
def post_merge() -> Response[str]:
    client = _client()
    return _ok(dependencies().api.merge(client, parse_body(MergeRequest, _body())))


@app.post(
    "/v1/profiles/<person_id>/unmerge",
    summary="Undo a merge (dry_run previews the split)",
    tags=["profiles"],
    responses=responses({200: (IdentityOperationResponse, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(UnmergeRequest, "UnmergeRequest"),
)
def post_unmerge(person_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().api.unmerge(client, unquote(person_id), parse_body(UnmergeRequest, _body())))


@app.delete(
    "/v1/profiles/<person_id>/identifiers/<kind>/<value>",
    summary="Unbind an identifier from a person",
    tags=["profiles"],
    responses=responses({200: (IdentityOperationResponse, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=query(reason="why (kept in the lineage)", identifier_scope="WeChat app id or platform"),
)
def delete_identifier(person_id: str, kind: str, value: str) -> Response[str]:
    result = dependencies().api.unbind(
        _client(),
        unquote(person_id),
        unquote(kind),
        unquote(value),
        reason=_query("reason"),
        identifier_scope=_query("identifier_scope"),
    )
    return _ok(result)


@app.delete(
    "/v1/profiles/<person_id>",
    summary="Erase a person (privacy): suppression first, then every copy",
    tags=["profiles"],
    responses=responses({200: (ErasureReceipt, "ok")}, (400, 401, 403, 404, 503)),
)
def delete_profile(person_id: str) -> Response[str]:
    return _ok(dependencies().api.erase(_client(), unquote(person_id)))


@app.get(
    "/v1/org/brands",
    summary="The brands (with their dealers and stores) the caller's org scope covers: what a brand picker offers "
    "(any valid key or signed-in user; no customer data)",
    tags=["profiles"],
    responses=responses({200: (BrandList, "ok")}, (401, 503)),
)
def get_brands() -> Response[str]:
    return _ok(visible_brands(dependencies().org, _client().org_scope))


@app.get(
    "/v1/profiles/<person_id>/export",
    summary="Export everything held about a person (privacy)",
    tags=["profiles"],
    responses=responses({200: (PersonExport, "ok")}, (400, 401, 403, 404, 503)),
)
def get_export(person_id: str) -> Response[str]:
    return _ok(dependencies().api.export(_client(), unquote(person_id)))


@app.get(
    "/v1/identity/review",
    summary="The identity review queue (quarantined identifiers)",
    tags=["profiles"],
    responses=responses({200: (ReviewQueue, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=query(brand_id="the brand (else the key's brand)"),
)
def get_review() -> Response[str]:
    return _ok(dependencies().api.review(_client(), _query("brand_id")))


@app.post(
    "/v1/identity/quarantine",
    summary="Quarantine a shared identifier",
    tags=["profiles"],
    responses=responses({200: (IdentityOperationResponse, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(QuarantineRequest, "QuarantineRequest"),
)
def post_quarantine() -> Response[str]:
    client = _client()
    return _ok(dependencies().api.quarantine(client, parse_body(QuarantineRequest, _body())))


# ---- errors: typed, mapped in one place ---------------------------------------------------------------------------


@app.exception_handler(ConflictError)
def _conflict(exc: ConflictError) -> Response[str]:
    return error_response(409, "conflict", f"{exc}; retry the request")


map_common_errors(app, logger, "profile API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
