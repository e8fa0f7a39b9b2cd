"""The request body as the client sent it, and who sent it, shared by the HTTP functions (Powertools' `decoded_body`
assumes UTF-8 and raises on anything else, which must be a 400, never a 500)."""

from __future__ import annotations

import base64
import binascii
from functools import cache

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from cdp.errors import InvalidInputError
from cdp.ingest.auth import authenticate
from cdp.ingest.console_tokens import ConsoleTokenVerifier
from cdp.ingest.ports import ApiClient, ApiKeyring
from cdp.observability import logger
from cdp.settings import ConsoleTokens, get_settings
from cdp.shared.time import wire_now


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    raw = event.get("body") or ""
    if not event.is_base64_encoded:
        return raw.encode()
    try:
        return base64.b64decode(raw)
    except binascii.Error as exc:
        raise InvalidInputError("body is not valid base64", "body") from exc


def text_body(event: APIGatewayProxyEventV2) -> str:
    try:
        return raw_body(event).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"body is not UTF-8 text: {exc.reason} at byte {exc.start}", "body") from exc


@cache
def console_tokens() -> ConsoleTokenVerifier | None:
    """The console's sign-in tokens, when the function is told who issues them (validated once)."""
    s = get_settings(ConsoleTokens)
    if not s.issuer or not s.audience:
        return None
    return ConsoleTokenVerifier(s.issuer, s.audience, jwks_url=s.jwks_url, jwks=s.jwks)


def api_client(event: APIGatewayProxyEventV2, keyring: ApiKeyring) -> ApiClient:
    """Who is calling (an API key, a console user's sign-in token, or a signed request), identified only: each route
    checks its own scope."""
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    client = authenticate(headers, raw_body(event), keyring, wire_now(), require=None, tokens=console_tokens())
    logger.append_keys(client=client.name)
    return client
