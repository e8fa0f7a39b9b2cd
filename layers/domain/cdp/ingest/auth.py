"""Request authentication (an API key, or an HMAC-SHA256 signature with a timestamp and replay window) and
authorization (permission scopes per key; the key's place in the org hierarchy is on `ApiClient.org_scope`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cdp.errors import AuthenticationError, ForbiddenError
from cdp.ingest.console_tokens import ConsoleTokenVerifier, looks_like_token
from cdp.ingest.ports import ApiClient, ApiKeyring
from cdp.ingest.security import SIGNATURE_HEADER, sign_cdp, verify_cdp
from cdp.org import ScopeRef

KEY_ID_HEADER = "x-cdp-key-id"
API_KEY_HEADER = "x-api-key"
WRITE_SCOPE = "events:write"
READ_PROFILES_SCOPE = "profiles:read"
EDIT_PROFILES_SCOPE = "profiles:write"
MERGE_SCOPE = "identity:merge"
ERASE_SCOPE = "privacy:erase"
REPLAY_SCOPE = "operations:replay"
AUDIENCES_READ_SCOPE = "audiences:read"
AUDIENCES_WRITE_SCOPE = "audiences:write"
CAMPAIGNS_READ_SCOPE = "campaigns:read"
CAMPAIGNS_WRITE_SCOPE = "campaigns:write"
CAMPAIGNS_APPROVE_SCOPE = "campaigns:approve"  # approvals above the brand's limits, and the brand's stop switch
SIGNALS_WRITE_SCOPE = "signals:write"  # external signals for journeys: weather readings, location
OFFERS_READ_SCOPE = "offers:read"
OFFERS_WRITE_SCOPE = "offers:write"  # the offer catalog, imported codes and budget pools
OFFERS_ISSUE_SCOPE = "offers:issue"  # issue an offer to a person's wallet
LOYALTY_READ_SCOPE = "loyalty:read"  # programmes and members' accounts
LOYALTY_WRITE_SCOPE = "loyalty:write"  # burn, adjust and convert members' points
INBOX_ISSUE_SCOPE = "inbox:issue"  # per-person tokens the brand's app reads that person's in-app inbox with
MODELS_READ_SCOPE = "models:read"  # the model registry: models, versions and their reports
MODELS_PROMOTE_SCOPE = "models:promote"  # point a model's `latest` at another saved version (rollback)
MODELS_SCORE_SCOPE = "models:score"  # score one person now with the promoted version (and store the score)
ANALYTICS_READ_SCOPE = "analytics:read"  # the customer-analytics reports of a whole brand (cohorts, lifecycle, ...)
# API keys, console users and sources of the whole deployment (cdp.access): held with no org scope, it can grant any
# scope it holds itself, so it is an administrator's alone
SETTINGS_ADMIN_SCOPE = "settings:admin"
SCOPES = (
    WRITE_SCOPE,
    READ_PROFILES_SCOPE,
    EDIT_PROFILES_SCOPE,
    MERGE_SCOPE,
    ERASE_SCOPE,
    REPLAY_SCOPE,
    AUDIENCES_READ_SCOPE,
    AUDIENCES_WRITE_SCOPE,
    CAMPAIGNS_READ_SCOPE,
    CAMPAIGNS_WRITE_SCOPE,
    CAMPAIGNS_APPROVE_SCOPE,
    SIGNALS_WRITE_SCOPE,
    OFFERS_READ_SCOPE,
    OFFERS_WRITE_SCOPE,
    OFFERS_ISSUE_SCOPE,
    LOYALTY_READ_SCOPE,
    LOYALTY_WRITE_SCOPE,
    INBOX_ISSUE_SCOPE,
    MODELS_READ_SCOPE,
    MODELS_PROMOTE_SCOPE,
    MODELS_SCORE_SCOPE,
    ANALYTICS_READ_SCOPE,
    SETTINGS_ADMIN_SCOPE,
)


sign = sign_cdp  # the one x-cdp-signature scheme, shared with the channel connectors


class Grant(BaseModel):
    """What a key or a console user may do (`scopes`) and where in the org (`scope`), as files declare them: a
    scope name not in SCOPES is an error, not a grant that silently cannot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scopes: list[str] = Field(min_length=1)
    scope: ScopeRef = Field(default_factory=ScopeRef)

    @field_validator("scopes")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
        return value


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    keyring: ApiKeyring,
    now: datetime,
    require: str | None = WRITE_SCOPE,
    tokens: ConsoleTokenVerifier | None = None,
) -> ApiClient:
    """Headers must be lower-cased. Every comparison is constant-time.

    `require`: a scope the key must hold, else AuthenticationError (the ingest API's contract: 401). Pass None to
    only identify the caller and check scopes with `authorize` (403 for a known key without the scope).
    `tokens`: the console's sign-in tokens (`Authorization: Bearer <ID token>`) are accepted too, with the scopes
    they carry; without it a token is refused as an unknown key.
    """
    api_key = headers.get(API_KEY_HEADER) or _bearer(headers.get("authorization", ""))
    if api_key and tokens is not None and looks_like_token(api_key):
        signed_in = tokens.verify(api_key)
        return _require_scope(signed_in, require) if require else signed_in
    if api_key:
        for known, client in keyring.clients().items():
            if hmac.compare_digest(known.encode(), api_key.encode()):
                return _require_scope(client, require) if require else client
        raise AuthenticationError("unknown API key")
    if SIGNATURE_HEADER in headers:
        signed = _verify_signature(headers, body, keyring, now)
        return _require_scope(signed, require) if require else signed
    raise AuthenticationError(f"missing credentials: send {API_KEY_HEADER} or {KEY_ID_HEADER} + {SIGNATURE_HEADER}")


def authorize(client: ApiClient, scope: str) -> ApiClient:
    """The client, if its key holds `scope`; else ForbiddenError naming the missing scope."""
    if scope not in client.scopes:
        held = ", ".join(sorted(client.scopes)) or "none"
        raise ForbiddenError(f"the API key of {client.name} lacks scope {scope} (it holds: {held})")
    return client


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _require_scope(client: ApiClient, scope: str) -> ApiClient:
    if scope not in client.scopes:
        raise AuthenticationError(f"API key of {client.name} lacks scope {scope}")
    return client


def _verify_signature(headers: Mapping[str, str], body: bytes, keyring: ApiKeyring, now: datetime) -> ApiClient:
    key_id = headers.get(KEY_ID_HEADER, "")
    secret = keyring.hmac_secrets().get(key_id)
    if secret is None:
        raise AuthenticationError(f"unknown {KEY_ID_HEADER}")
    verify_cdp(headers, body, secret, now)
    return ApiClient(name=f"webhook:{key_id}", scopes=frozenset({WRITE_SCOPE}))
