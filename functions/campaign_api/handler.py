"""HTTP API: campaigns as data — define (versions), validate, list, show, approve, start, activate, pause, resume,
stop, runs with their results, and the brand's stop switch (see cdp.campaigns.lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app.campaign_api import (
    ApproveRequest,
    CampaignErrorBody,
    PreviewRequest,
    SignalAccepted,
    SignalRequest,
    StartRequest,
    TestSendRequest,
    brand_of,
    campaign_id,
    json_object,
    options,
    parsed_body,
    person_of_signal,
    run_id,
    seed_persons,
    signal_of,
    version_number,
)
from cdp.audiences.store import AudienceStore
from cdp.campaigns.catalog import BrandSwitch
from cdp.campaigns.definition import CampaignDefinition
from cdp.campaigns.dry_run import DryRunReport
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.campaigns.journey_dry_run import JourneyDryRun
from cdp.campaigns.journeys import JourneyResults, PublishedSendOrders
from cdp.campaigns.journeys_dynamodb import DynamoJourneyStore
from cdp.campaigns.lifecycle import (
    APPROVE_SCOPE,
    READ_SCOPE,
    WRITE_SCOPE,
    CampaignInvalidError,
    CampaignList,
    CampaignPreview,
    CampaignResults,
    CampaignService,
    CampaignView,
    RunList,
    RunView,
    Selection,
    SwitchRequest,
    TestSendReport,
    ValidationReport,
    authorize_campaigns,
    parse_definition,
)
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.campaigns.stepfunctions import StepFunctionsRunner
from cdp.campaigns.sweeps import LocationSignal, SignalReceived
from cdp.campaigns.targeting import ManifestValidations
from cdp.channels.ledger import DynamoContactLedger
from cdp.channels.messages import DynamoMessageLog
from cdp.errors import ConflictError
from cdp.ingest.auth import READ_PROFILES_SCOPE, SIGNALS_WRITE_SCOPE, authorize
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.observability import logger, metrics, tracer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.service import RunPlans
from cdp.org import load_org
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import CampaignApiSettings, get_settings
from cdp.shared.aws import EventBridgePublisher, S3ObjectStore
from cdp.shared.openapi import body, query, responses
from cdp.shared.time import utc_now
from functions.api_errors import error_response, json_response, map_common_errors
from functions.budget_watch import count_low_pool
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)


@dataclass(frozen=True)
class Dependencies:
    service: CampaignService
    keyring: SecretsManagerKeyring
    profiles: DynamoProfileStore
    bus: EventBridgePublisher


@cache
def dependencies() -> Dependencies:
    s = get_settings(CampaignApiSettings)
    profiles = DynamoProfileStore(s.profiles_table)
    offers = DynamoOfferStore(s.offers_table, watch=count_low_pool)  # test sends issue offers too
    service = CampaignService(
        DynamoCampaignCatalog(s.campaigns_table),
        StepFunctionsRunner(s.campaign_state_machine_arn),
        S3ArtifactStore(s.data_bucket),
        load_org(),
        journeys=DynamoJourneyStore(s.campaigns_table),
        test_orders=PublishedSendOrders(EventBridgePublisher(s.event_bus_name), "test-send"),
        plans=RunPlans(offers, offers.budgets),
        selection=Selection(
            profiles,
            AudienceStore(S3ObjectStore(s.data_bucket)),
            DynamoContactLedger(s.ledger_table),
            ManifestValidations(S3ObjectStore(s.data_bucket)),
        ),
        messages=DynamoMessageLog(s.ledger_table),
        link_base=s.tracked_link_base_url or None,
    )
    return Dependencies(
        service=service,
        keyring=SecretsManagerKeyring(s.api_keys_secret_id),
        profiles=profiles,
        bus=EventBridgePublisher(s.event_bus_name),
    )


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _caller(scope: str) -> tuple[ApiClient, str]:
    """The authenticated client allowed `scope` on the brand (`?brand_id=`, or the key's own brand)."""
    client = _client()
    brand = brand_of((app.current_event.query_string_parameters or {}).get("brand_id"), client)
    return _allowed(client, brand, scope), brand


def _allowed(client: ApiClient, brand: str, scope: str) -> ApiClient:
    authorize_campaigns(client, load_org(), brand, scope)
    logger.append_keys(brand_id=brand)
    return client


def _id(value: str) -> str:
    found = campaign_id(unquote(value))
    logger.append_keys(campaign_id=found)
    return found


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return json_response(status, model.model_dump_json())


def _docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses(ok, [s for s in errors if s != 422])
    if 404 in out:
        out[404]["description"] = "no such campaign (or version, or run) in the brand"
    if 409 in out:
        out[409]["description"] = "the campaign's status does not allow it, or it changed meanwhile (read it again)"
    if 422 in errors:
        out[422] = {
            "description": "the definition is wrong: `errors` names every problem with its field path",
            "content": {"application/json": {"model": CampaignErrorBody}},
        }
    return out


_BRAND = query(brand_id="the campaign's brand (default: the brand the key is limited to)")


@app.post(
    "/v1/campaigns",
    summary="Define a campaign, or its next version (a scheduled campaign runs the new version from its next run)",
    tags=["campaigns"],
    responses=_docs(
        {200: (CampaignView, "a new version"), 201: (CampaignView, "created")}, (400, 401, 403, 409, 422, 503)
    ),
    openapi_extensions=body(CampaignDefinition, "CampaignDefinition"),
)
def define() -> Response[str]:
    client = _client()
    definition = parse_definition(json_object(text_body(app.current_event), "the campaign definition"))
    view = dependencies().service.define(definition, _allowed(client, definition.brand_id, WRITE_SCOPE))
    return _ok(view, 201 if view.version.version == 1 else 200)


@app.get(
    "/v1/campaigns",
    summary="The brand's campaigns with their status, and the brand's stop switch",
    tags=["campaigns"],
    responses=_docs({200: (CampaignList, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=_BRAND,
)
def list_campaigns() -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.list_brand(brand))


@app.post(
    "/v1/campaigns/validate",
    summary="Check a definition (planned sends, approval, next runs) without saving it",
    tags=["campaigns"],
    responses=_docs({200: (ValidationReport, "valid, or every error with its field path")}, (400, 401, 403, 503)),
    openapi_extensions=body(CampaignDefinition, "CampaignDefinition"),
)
def validate() -> Response[str]:
    client = _client()
    raw = json_object(text_body(app.current_event), "the campaign definition")
    named = raw.get("brand_id")
    query_brand = (app.current_event.query_string_parameters or {}).get("brand_id")
    _allowed(client, brand_of(named if isinstance(named, str) and named else query_brand, client), READ_SCOPE)
    return _ok(dependencies().service.validate(raw))


@app.post(
    "/v1/campaigns/switch",
    summary="The brand's stop switch: while on, no run starts, scheduled runs are skipped, runs in flight send nothing",
    tags=["campaigns"],
    responses=_docs({200: (BrandSwitch, "the switch as set")}, (400, 401, 403, 503)),
    openapi_extensions=body(SwitchRequest, "SwitchRequest"),
)
def switch() -> Response[str]:
    client = _client()
    request = options(SwitchRequest, text_body(app.current_event))
    return _ok(dependencies().service.set_switch(request, _allowed(client, request.brand_id, APPROVE_SCOPE)))


@app.get(
    "/v1/campaigns/<cid>",
    summary="A campaign: its status, latest version, approval, planned sends and next runs",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def get_campaign(cid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.get(brand, _id(cid)))


@app.get(
    "/v1/campaigns/<cid>/versions/<version>",
    summary="One version of a campaign's definition",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def get_version(cid: str, version: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.get(brand, _id(cid), version_number(unquote(version))))


@app.post(
    "/v1/campaigns/<cid>/start",
    summary="Run a version now (the latest by default), whatever its schedule",
    tags=["campaigns"],
    responses=_docs({202: (RunView, "the run started")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(StartRequest, "StartRequest", description="optional") | _BRAND,
)
def start(cid: str) -> Response[str]:
    client, brand = _caller(WRITE_SCOPE)
    request = options(StartRequest, text_body(app.current_event))
    return _ok(dependencies().service.start(brand, _id(cid), client, request.version), 202)


def _transition(cid: str, action: str) -> Response[str]:
    client, brand = _caller(WRITE_SCOPE)
    service = dependencies().service
    change = {"activate": service.activate, "pause": service.pause, "resume": service.resume, "stop": service.stop}
    return _ok(change[action](brand, _id(cid), client))


@app.post(
    "/v1/campaigns/<cid>/activate",
    summary="Schedule a draft: its schedule starts runs of the latest version",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "scheduled")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def activate(cid: str) -> Response[str]:
    return _transition(cid, "activate")


@app.post(
    "/v1/campaigns/<cid>/pause",
    summary="Pause a scheduled campaign (its occurrences are skipped until it resumes)",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "paused")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def pause(cid: str) -> Response[str]:
    return _transition(cid, "pause")


@app.post(
    "/v1/campaigns/<cid>/resume",
    summary="Resume a paused campaign from its next occurrence",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "scheduled")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def resume(cid: str) -> Response[str]:
    return _transition(cid, "resume")


@app.post(
    "/v1/campaigns/<cid>/stop",
    summary="Stop a campaign: no further runs, and its runs in flight are stopped",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "stopped")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def stop(cid: str) -> Response[str]:
    return _transition(cid, "stop")


@app.post(
    "/v1/campaigns/<cid>/approve",
    summary="Approve a version above the brand's limits (campaigns:approve; not by the client that defined it)",
    tags=["campaigns"],
    responses=_docs({200: (CampaignView, "approved")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(ApproveRequest, "ApproveRequest") | _BRAND,
)
def approve(cid: str) -> Response[str]:
    client, brand = _caller(APPROVE_SCOPE)
    request = options(ApproveRequest, text_body(app.current_event))
    return _ok(dependencies().service.approve(brand, _id(cid), request.version, client))


@app.get(
    "/v1/campaigns/<cid>/runs",
    summary="A campaign's runs (and skipped occurrences), newest first, with each execution's status",
    tags=["campaigns"],
    responses=_docs({200: (RunList, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def runs(cid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.runs(brand, _id(cid)))


@app.post(
    "/v1/campaigns/<cid>/dry-run",
    summary="A scheduled campaign's next runs on today's profiles, or a journey's entries replayed on the last 14 "
    "days of events (forecast from persons' dates for a date trigger): selection, cost, days, capped, overlaps",
    tags=["campaigns"],
    responses=_docs({200: (DryRunReport | JourneyDryRun, "nothing was sent")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(StartRequest, "DryRunRequest", description="optional: a version") | _BRAND,
)
def dry_run(cid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    request = options(StartRequest, text_body(app.current_event))
    return _ok(dependencies().service.dry_run(brand, _id(cid), request.version))


@app.post(
    "/v1/campaigns/<cid>/preview",
    summary="Every message of a version as one person would get it: text, SMS variables and WeChat fields, an SMS's "
    "length and segments (its links as the short links it will carry), and what would fail; nothing is sent "
    "(campaigns:read and profiles:read: it shows the person's address and profile)",
    tags=["campaigns"],
    responses=_docs({200: (CampaignPreview, "nothing was sent")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=body(PreviewRequest, "PreviewRequest") | _BRAND,
)
def preview(cid: str) -> Response[str]:
    client, brand = _caller(READ_SCOPE)
    authorize(client, READ_PROFILES_SCOPE)  # it shows a person's address and what their profile renders
    request = parsed_body(PreviewRequest, text_body(app.current_event), "preview")
    return _ok(dependencies().service.preview(brand, _id(cid), request.person_id, request.version))


@app.get(
    "/v1/campaigns/<cid>/journey",
    summary="A triggered journey's persons by group (treatment, holdout): where they are, conversions, spend",
    tags=["campaigns"],
    responses=_docs({200: (JourneyResults, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def journey(cid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.journey(brand, _id(cid)))


@app.get(
    "/v1/campaigns/<cid>/runs/<rid>",
    summary="One run with its results (treatment vs holdout, cost, ROI) once it has finished",
    tags=["campaigns"],
    responses=_docs({200: (RunView, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def get_run(cid: str, rid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    return _ok(dependencies().service.run(brand, _id(cid), run_id(unquote(rid))))


@app.get(
    "/v1/campaigns/<cid>/results",
    summary="What a campaign achieved: a scheduled campaign's latest run with results (or `?run_id=`): funnel from "
    "the audience to credited orders, conversion and revenue per person against the holdout with 95% intervals, "
    "ROI with its definition, money formatted; a journey's entries by group; messages by receipt status (live)",
    tags=["campaigns"],
    responses=_docs({200: (CampaignResults, "ok")}, (400, 401, 403, 404, 409, 503)),
    openapi_extensions=_BRAND,
)
def results(cid: str) -> Response[str]:
    _, brand = _caller(READ_SCOPE)
    asked = (app.current_event.query_string_parameters or {}).get("run_id")
    return _ok(dependencies().service.results(brand, _id(cid), run_id(asked) if asked else None))


# ---- errors: typed, mapped in one place ---------------------------------------------------------------------------


@app.post(
    "/v1/campaigns/<cid>/test-send",
    summary="Send every message of a version to the seed list now (staff phones), to see it as a customer will",
    description="202: ordered through the real send path (consent, address, rendering, channel), past caps, quiet "
    "hours and the control group (not the suppression lists), counted in no result or budget. Seeds: the brand's "
    "campaigns.seed_list, or the body's (which needs campaigns:approve); `unknown_seeds` lists those that name no "
    "person of the brand.",
    responses=_docs({202: (TestSendReport, "ordered")}, (400, 401, 403, 404, 409)),
    openapi_extensions=body(TestSendRequest, "TestSendRequest", description="optional") | _BRAND,
)
def test_send(cid: str) -> Response[str]:
    client, brand = _caller(WRITE_SCOPE)
    request = options(TestSendRequest, text_body(app.current_event))
    if request.seeds:  # any customer of the brand named in the body: as much as an approval
        _allowed(client, brand, APPROVE_SCOPE)
    deps, config = dependencies(), load_org().brand(brand)
    persons, unknown = seed_persons(request, config.campaigns.seed_list, brand, deps.profiles, config.phone_region)
    report = deps.service.test_send(brand, _id(cid), persons, request.version)
    return _ok(report.model_copy(update={"unknown_seeds": unknown}), 202)


@app.post(
    "/v1/signals",
    summary="An external signal for journeys: a weather reading for a city, or a device entering a place",
    description="202: handed to the journey function. A weather reading that crosses a live journey's threshold "
    "opens a sweep of the city's persons (run by the schedule's tick); a location enters the person into the live "
    "journeys whose location trigger covers the place and their local time.",
    responses=responses({202: (SignalAccepted, "handed to the journey function")}, [400, 401, 403, 404]),
    openapi_extensions=body(SignalRequest, "SignalRequest") | _BRAND,
)
def signal() -> Response[str]:
    client, brand = _caller(SIGNALS_WRITE_SCOPE)
    deps = dependencies()
    region = load_org().brand(brand).phone_region
    found = signal_of(
        text_body(app.current_event),
        brand,
        partial(person_of_signal, brand_id=brand, profiles=deps.profiles, phone_region=region),
        utc_now(),
    )
    deps.bus.publish([SignalReceived(brand_id=brand, signal=found)], correlation_id=client.name)
    person = found.person_id if isinstance(found, LocationSignal) else None
    return _ok(SignalAccepted(kind=found.kind, person_id=person), 202)


@app.exception_handler(CampaignInvalidError)
def _invalid_campaign(exc: CampaignInvalidError) -> Response[str]:
    errors = [e.model_dump() for e in exc.errors]
    return error_response(422, "invalid_campaign", exc.message, field=exc.location, errors=errors)


@app.exception_handler(ConflictError)
def _conflict(exc: ConflictError) -> Response[str]:
    return error_response(409, "conflict", str(exc))


map_common_errors(app, logger, "campaign API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
