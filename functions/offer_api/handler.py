"""HTTP API: the offer catalog (coupons, red packets, points, gifts), imported codes, issuing to a person's wallet
(red packets paid out and WeChat Pay cash coupons issued through the brand's merchant), the wallet, budget pools
(see cdp.offers.service and cdp.budgets), and claim links: minted with a key, claimed on a public page whose token is
the authority (cdp.offers.claims, cdp.app.claim_page)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cdp.app import claim_page
from cdp.app.campaign_api import brand_of, parsed_body
from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool, HoldError, PoolBalance
from cdp.connectors.aws import SecretsManagerSources
from cdp.errors import ConflictError
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.ports import ApiClient
from cdp.observability import logger, metrics, tracer
from cdp.offers.catalog import Offer
from cdp.offers.claims import (
    ClaimLink,
    ClaimLinkRequest,
    ClaimLinks,
    ClaimLinksNotConfiguredError,
    sources_link_secret,
)
from cdp.offers.dynamodb import dynamo_offer_service
from cdp.offers.promotions import Cart, Evaluation, Promotion
from cdp.offers.service import (
    CodesRequest,
    IssueRequest,
    IssueResult,
    OfferList,
    OfferService,
    PayoutPendingError,
    PoolList,
    PromotionList,
    ProviderRefusedError,
    TopUpRequest,
    Wallet,
)
from cdp.offers.wallet import OfferUnavailableError, RedemptionError, StoredOffer
from cdp.offers.wechat_pay_accounts import WeChatPayProviders
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import OfferApiSettings, get_settings
from cdp.shared.openapi import body, query, responses
from functions.api_errors import error_response, json_response, map_common_errors, map_invalid_body
from functions.budget_watch import count_low_pool
from functions.request_body import api_client, text_body

app = APIGatewayHttpResolver(enable_validation=False)
Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class Dependencies:
    service: OfferService
    keyring: SecretsManagerKeyring
    claims: ClaimLinks


@cache
def dependencies() -> Dependencies:
    s = get_settings(OfferApiSettings)
    sources = SecretsManagerSources(s.sources_secret_id)
    profiles = DynamoProfileStore(s.profiles_table)
    wechat_pay = WeChatPayProviders(sources)  # pays red packets, issues WeChat Pay cash coupons
    service = dynamo_offer_service(
        s.offers_table, profiles, s.event_bus_name, wechat_pay, coupons=wechat_pay, watch=count_low_pool
    )
    claims = ClaimLinks(service, sources_link_secret(sources), s.public_base_url)
    return Dependencies(service=service, keyring=SecretsManagerKeyring(s.api_keys_secret_id), claims=claims)


def _client() -> ApiClient:
    return api_client(app.current_event, dependencies().keyring)


def _brand(client: ApiClient) -> str:
    brand = brand_of((app.current_event.query_string_parameters or {}).get("brand_id"), client)
    logger.append_keys(brand_id=brand)
    return brand


def _parse(model: type[Body], what: str, defaults: dict[str, Any] | None = None) -> Body:
    return parsed_body(model, text_body(app.current_event), what, defaults)


def _default_brand(client: ApiClient) -> dict[str, Any]:
    """A body's brand_id, when it names none: the key's own brand (else the body must name it)."""
    return {"brand_id": client.org_scope.brand_id} if client.org_scope.brand_id else {}


def _ok(model: BaseModel, status: int = 200) -> Response[str]:
    return json_response(status, model.model_dump_json())


def _docs(ok: dict[int, tuple[Any, str]], errors: tuple[int, ...]) -> dict[int, Any]:
    out = responses(ok, [s for s in errors if s != 422])
    if 409 in out:
        out[409]["description"] = (
            "exists, out of stock, the person's limit reached, a budget pool short, a red packet not paid out "
            "(red_packet_not_paid) or an external coupon not granted (coupon_not_granted), with the provider's reason"
        )
    if 422 in errors:
        out[422] = {"description": "the body is wrong: `errors` names every problem with its field path"}
    return out


_BRAND = query(brand_id="the brand (default: the brand the key is limited to)")


@app.post(
    "/v1/offers",
    summary="Define an offer: a coupon, red packet, points grant or gift, with validity, stock, limits and cost",
    tags=["offers"],
    responses=_docs({201: (StoredOffer, "defined")}, (400, 401, 403, 409, 422, 503)),
    openapi_extensions=body(Offer, "Offer"),
)
def define() -> Response[str]:
    client = _client()
    offer = _parse(Offer, "offer", _default_brand(client))
    return _ok(dependencies().service.define(offer, client), 201)


@app.get(
    "/v1/offers",
    summary="The brand's offers with how many were issued",
    tags=["offers"],
    responses=_docs({200: (OfferList, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=_BRAND,
)
def list_offers() -> Response[str]:
    client = _client()
    return _ok(dependencies().service.offers(_brand(client), client))


@app.get(
    "/v1/offers/<offer_id>",
    summary="One offer",
    tags=["offers"],
    responses=_docs({200: (StoredOffer, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def get_offer(offer_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.get(_brand(client), unquote(offer_id), client))


@app.post(
    "/v1/offers/<offer_id>/retire",
    summary="Issue no more of an offer (issued ones stay valid)",
    tags=["offers"],
    responses=_docs({200: (StoredOffer, "retired")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def retire(offer_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.retire(_brand(client), unquote(offer_id), client))


@app.post(
    "/v1/offers/<offer_id>/codes",
    summary="Import codes for an offer whose codes come from another system (each issue takes the next)",
    tags=["offers"],
    responses=_docs({200: (StoredOffer, "imported")}, (400, 401, 403, 404, 409, 422, 503)),
    openapi_extensions={**body(CodesRequest, "CodesRequest"), **_BRAND},
)
def import_codes(offer_id: str) -> Response[str]:
    client = _client()
    request = _parse(CodesRequest, "code list")
    return _ok(dependencies().service.import_codes(_brand(client), unquote(offer_id), request, client))


@app.post(
    "/v1/offers/<offer_id>/issue",
    summary="Issue an offer to a person's wallet (once per issue_id): code, budget hold, an event on the timeline",
    tags=["offers"],
    responses=_docs(
        {200: (IssueResult, "issued before under this issue_id"), 201: (IssueResult, "issued")},
        (400, 401, 403, 404, 409, 422, 503),
    ),
    openapi_extensions={**body(IssueRequest, "IssueRequest"), **_BRAND},
)
def issue(offer_id: str) -> Response[str]:
    client = _client()
    request = _parse(IssueRequest, "issue request")
    result = dependencies().service.issue(_brand(client), unquote(offer_id), request, client)
    return _ok(result, 201 if result.new else 200)


@app.post(
    "/v1/offers/<offer_id>/claim-links",
    summary="A link a person claims the offer from (signed, expiring; claimed twice, the same wallet entry)",
    tags=["offers"],
    responses=_docs({201: (ClaimLink, "made")}, (400, 401, 403, 404, 409, 422, 503)),
    openapi_extensions={**body(ClaimLinkRequest, "ClaimLinkRequest"), **_BRAND},
)
def claim_link(offer_id: str) -> Response[str]:
    client = _client()
    request = _parse(ClaimLinkRequest, "claim link request")
    return _ok(dependencies().claims.create(_brand(client), unquote(offer_id), request, client), 201)


@app.get(
    "/v1/claim/<token>",
    summary="The claim page of a claim link (HTML; public: the signed token is the authority)",
    tags=["offers"],
)
def claim_page_view(token: str) -> Response[str]:
    return _html(claim_page.show(dependencies().claims, unquote(token)))


@app.post(
    "/v1/claim/<token>",
    summary="Claim the link's offer: issued once to the link's person (HTML; public: the token is the authority)",
    tags=["offers"],
)
def claim(token: str) -> Response[str]:
    return _html(claim_page.claim(dependencies().claims, unquote(token)))


def _html(page: claim_page.Page) -> Response[str]:
    return Response(
        status_code=page.status, content_type=claim_page.CONTENT_TYPE, body=page.html, headers=dict(claim_page.HEADERS)
    )


@app.get(
    "/v1/wallets/<person_id>",
    summary="A person's wallet: every offer issued to them, with its state (issued, redeemed, expired)",
    tags=["offers"],
    responses=_docs({200: (Wallet, "ok")}, (400, 401, 403, 404, 503)),
    openapi_extensions=_BRAND,
)
def wallet(person_id: str) -> Response[str]:
    client = _client()
    return _ok(dependencies().service.wallet(_brand(client), unquote(person_id), client))


@app.post(
    "/v1/budgets",
    summary="Define a budget pool (per campaign, form of offer, store or dealer); never overspent",
    tags=["budgets"],
    responses=_docs({201: (PoolBalance, "defined")}, (400, 401, 403, 409, 422, 503)),
    openapi_extensions=body(BudgetPool, "BudgetPool"),
)
def define_pool() -> Response[str]:
    client = _client()
    pool = _parse(BudgetPool, "budget pool", _default_brand(client))
    return _ok(dependencies().service.define_pool(pool, client), 201)


@app.get(
    "/v1/budgets",
    summary="The brand's budget pools: available, reserved and committed",
    tags=["budgets"],
    responses=_docs({200: (PoolList, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=_BRAND,
)
def list_pools() -> Response[str]:
    client = _client()
    return _ok(dependencies().service.pools(_brand(client), client))


@app.post(
    "/v1/budgets/<pool_id>/top-up",
    summary="Add to a pool (once per op_id)",
    tags=["budgets"],
    responses=_docs({200: (PoolBalance, "topped up")}, (400, 401, 403, 404, 422, 503)),
    openapi_extensions={**body(TopUpRequest, "TopUpRequest"), **_BRAND},
)
def top_up(pool_id: str) -> Response[str]:
    client = _client()
    request = _parse(TopUpRequest, "top-up")
    return _ok(dependencies().service.top_up(_brand(client), unquote(pool_id), request, client))


@app.post(
    "/v1/promotions",
    summary="Define a checkout promotion, or replace its rules (conditions, benefit, stacking, member days)",
    tags=["promotions"],
    responses=_docs({200: (Promotion, "replaced"), 201: (Promotion, "defined")}, (400, 401, 403, 422, 503)),
    openapi_extensions=body(Promotion, "Promotion"),
)
def define_promotion() -> Response[str]:
    client = _client()
    promotion = _parse(Promotion, "promotion", _default_brand(client))
    new = dependencies().service.define_promotion(promotion, client)
    return _ok(promotion, 201 if new else 200)


@app.get(
    "/v1/promotions",
    summary="The brand's checkout promotions",
    tags=["promotions"],
    responses=_docs({200: (PromotionList, "ok")}, (400, 401, 403, 503)),
    openapi_extensions=_BRAND,
)
def list_promotions() -> Response[str]:
    client = _client()
    return _ok(dependencies().service.promotions(_brand(client), client))


@app.post(
    "/v1/promotions/evaluate",
    summary="The promotions a cart earns, the combination it gets (largest benefit; ties: lower cost, priority) "
    "and why each other one does not apply",
    tags=["promotions"],
    responses=_docs({200: (Evaluation, "ok")}, (400, 401, 403, 404, 422, 503)),
    openapi_extensions=body(Cart, "Cart"),
)
def evaluate_cart() -> Response[str]:
    client = _client()
    cart = _parse(Cart, "cart", _default_brand(client))
    return _ok(dependencies().service.evaluate(cart, client))


@app.exception_handler(BudgetExhaustedError)
def _short(exc: BudgetExhaustedError) -> Response[str]:
    return error_response(409, "budget_exhausted", str(exc), pool_id=exc.pool_id)


@app.exception_handler(OfferUnavailableError)
def _unavailable(exc: OfferUnavailableError) -> Response[str]:
    return error_response(409, exc.reason, str(exc))


@app.exception_handler(ProviderRefusedError)
def _not_done(exc: ProviderRefusedError) -> Response[str]:
    entry = exc.entry.model_dump(mode="json") if exc.entry is not None else None
    return error_response(409, exc.error_code, str(exc), reason=exc.reason, entry=entry)


@app.exception_handler(PayoutPendingError)
def _pending(exc: PayoutPendingError) -> Response[str]:
    return error_response(503, "payout_pending", str(exc), issue_id=exc.entry.issue_id)


@app.exception_handler(ClaimLinksNotConfiguredError)
def _no_claim_links(exc: ClaimLinksNotConfiguredError) -> Response[str]:
    logger.error("claim links are not configured", error=str(exc))
    return error_response(503, "not_configured", str(exc))


@app.exception_handler([ConflictError, HoldError, RedemptionError])
def _conflict(exc: Exception) -> Response[str]:
    return error_response(409, "conflict", str(exc))


map_invalid_body(app)
map_common_errors(app, logger, "offer API")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
