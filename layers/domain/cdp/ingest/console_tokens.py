"""Console sign-in tokens: the OpenID Connect ID tokens a signed-in console user sends as `Authorization: Bearer`,
accepted by every route that accepts an API key, with the same permission scopes and org scope.

On AWS the issuer is the stack's Cognito user pool (a user's scopes and org scope are its custom attributes
`custom:cdp_scopes` and `custom:cdp_scope`); locally it is `cdp serve`'s own issuer, which signs users of the local
users file in (`cdp_local.console_users`). Both are checked the same way: an RS256 signature by a key of the
issuer's JWKS, the issuer, the audience (the console's app client), `token_use` = `id`, and expiry (a minute of clock
skew allowed). A token that fails any check is a 401; the scopes it carries are then checked by each route (403).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.errors import AuthenticationError
from cdp.ingest.ports import ApiClient
from cdp.org import ScopeRef

SCOPES_CLAIM = "custom:cdp_scopes"  # space-separated permission scopes, as an API key's `scopes`
ORG_SCOPE_CLAIM = "custom:cdp_scope"  # JSON of the org scope, as an API key's `scope` ({} or absent: everywhere)
LEEWAY_SECONDS = 60
ALGORITHMS = ["RS256"]  # Cognito signs ID tokens with RS256; nothing else is accepted (no `none`, no HMAC)


def looks_like_token(value: str) -> bool:
    """A JWT (three base64url parts), as opposed to an API key."""
    return value.count(".") == 2 and value.startswith("eyJ")


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    subject: str = Field(alias="sub", min_length=1)
    token_use: str
    username: str | None = Field(default=None, alias="cognito:username")
    email: str | None = None
    scopes: str = Field(default="", alias=SCOPES_CLAIM)
    org_scope: str = Field(default="", alias=ORG_SCOPE_CLAIM)

    @field_validator("token_use")
    @classmethod
    def _id_token(cls, value: str) -> str:
        if value != "id":
            raise ValueError(f"an ID token is needed, this is an {value} token")
        return value


def client_from_claims(claims: Mapping[str, Any]) -> ApiClient:
    """The caller a verified token names: its user, scopes and org scope."""
    try:
        parsed = _Claims.model_validate(dict(claims))
        scope = ScopeRef.model_validate(json.loads(parsed.org_scope)) if parsed.org_scope else ScopeRef()
    except (ValidationError, ValueError) as exc:
        raise AuthenticationError(f"the sign-in token's claims are not usable: {_first(exc)}") from exc
    name = parsed.username or parsed.email or parsed.subject
    return ApiClient(name=f"console:{name}", scopes=frozenset(parsed.scopes.split()), org_scope=scope)


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    return str(exc)


class ConsoleTokenVerifier:
    """Verifies ID tokens of one issuer and app client. `jwks`: the issuer's keys (inline, locally); else they are
    fetched from `jwks_url` at the first token and cached (Cognito rotates them rarely; an unknown key id refetches)."""

    def __init__(self, issuer: str, audience: str, jwks_url: str | None = None, jwks: str | None = None) -> None:
        if not jwks_url and not jwks:
            raise ValueError("a JWKS URL or an inline JWKS is needed")
        self.issuer, self.audience = issuer, audience
        self._keys = jwt.PyJWKSet.from_json(jwks) if jwks else None
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600) if jwks_url and not jwks else None

    def _key(self, token: str) -> Any:
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            kid = jwt.get_unverified_header(token).get("kid")
            assert self._keys is not None
            return next(k.key for k in self._keys.keys if k.key_id == kid)
        except StopIteration as exc:
            raise AuthenticationError("the sign-in token is signed by an unknown key") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationError(f"the sign-in token's key could not be found: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"the sign-in token is malformed: {exc}") from exc

    def verify(self, token: str) -> ApiClient:
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the sign-in token has expired: sign in again") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"the sign-in token is not valid: {exc}") from exc
        return client_from_claims(claims)
