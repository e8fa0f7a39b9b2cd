"""HTTP pages: the preference centre (cdp.app.preference_centre, cdp.app.preference_page). A person opens the signed
link of a marketing message and sees and changes their consent per channel and purpose; an e-mail client posts its
one-click unsubscribe to the same link. Public routes: the token is the only credential."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.app import preference_page
from cdp.app.person_events import IngestedEvents
from cdp.app.preference_centre import PreferenceCentre
from cdp.channels.person_tokens import sources_token_secret
from cdp.connectors.aws import SecretsManagerSources
from cdp.errors import InvalidInputError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import PreferenceCentreSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from functions.request_body import raw_body

app = APIGatewayHttpResolver(enable_validation=False)


@cache
def centre() -> PreferenceCentre:
    s = get_settings(PreferenceCentreSettings)
    org = load_org()
    events = IngestedEvents(
        S3RawArchive(s.data_bucket),
        DynamoDedupeLedger(s.ledger_table),
        EventBridgePublisher(s.event_bus_name),
        org,
        client="preference-centre",
    )
    profiles = DynamoIdentityStore(s.profiles_table, org=org)  # persons as they are now (merges followed)
    return PreferenceCentre(profiles, sources_token_secret(SecretsManagerSources(s.sources_secret_id)), events)


@app.get(
    "/v1/preferences/<token>",
    summary="A person's preference centre: consent per channel and purpose (HTML; public: the token is the authority)",
    tags=["preferences"],
)
def show(token: str) -> Response[str]:
    return _html(preference_page.show(centre(), unquote(token)))


@app.post(
    "/v1/preferences/<token>",
    summary="Save the preference form, or an e-mail client's one-click unsubscribe (RFC 8058) (HTML; public)",
    tags=["preferences"],
)
def submit(token: str) -> Response[str]:
    try:
        body = raw_body(app.current_event)
    except InvalidInputError:
        body = b"\xff"  # not url-encoded UTF-8: the page says the form could not be saved
    return _html(preference_page.submit(centre(), unquote(token), body))


def _html(page: preference_page.Page) -> Response[str]:
    return Response(
        status_code=page.status,
        content_type=preference_page.CONTENT_TYPE,
        body=page.html,
        headers=dict(preference_page.HEADERS),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
