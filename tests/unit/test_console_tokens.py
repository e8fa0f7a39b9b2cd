"""Console sign-in tokens: only an RS256 ID token of the configured issuer and app client, unexpired and signed by one
of its keys, is a caller; its scopes and org scope are the user's. Everything else is a 401 with a reason."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cdp.errors import AuthenticationError
from cdp.ingest.auth import authenticate
from cdp.ingest.console_tokens import ConsoleTokenVerifier, looks_like_token
from cdp.ingest.ports import ApiClient, ApiKeyring
from cdp.org import ScopeRef
from cdp.settings import ConfigurationError, ConsoleTokens, get_settings

ISSUER = "https://cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_demo"
AUDIENCE = "console-client"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(key: rsa.RSAPrivateKey = KEY, kid: str = "k1") -> str:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]})


def _token(key: Any = KEY, kid: str = "k1", algorithm: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "0b1c-user",
        "token_use": "id",
        "cognito:username": "mei",
        "iat": now,
        "exp": now + 600,
        "custom:cdp_scopes": "profiles:read campaigns:read",
        "custom:cdp_scope": '{"brand_id": "demo-outlet", "store_id": "sh01"}',
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


VERIFIER = ConsoleTokenVerifier(ISSUER, AUDIENCE, jwks=_jwks())


def test_a_valid_id_token_is_the_user_with_their_scopes_and_org_scope() -> None:
    client = VERIFIER.verify(_token())
    assert client == ApiClient(
        name="console:mei",
        scopes=frozenset({"profiles:read", "campaigns:read"}),
        org_scope=ScopeRef(brand_id="demo-outlet", store_id="sh01"),
    )
    # no org scope claim: everywhere, as an API key without a scope; no scopes claim: nothing may be done
    bare = VERIFIER.verify(_token(**{"custom:cdp_scope": None, "custom:cdp_scopes": None}))
    assert bare.org_scope == ScopeRef() and bare.scopes == frozenset()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: _token(exp=int(time.time()) - 120), "expired"),
        (lambda: _token(aud="another-app"), "(?i)audience"),
        (lambda: _token(iss="https://evil.example/pool"), "issuer"),
        (lambda: _token(token_use="access"), "ID token is needed"),
        (lambda: _token(key=OTHER_KEY), "not valid"),  # same key id, another key: the signature fails
        (lambda: _token(kid="k9"), "unknown key"),
        (lambda: _token(**{"custom:cdp_scope": "{not json"}), "claims are not usable"),
        (lambda: _token(**{"custom:cdp_scope": '{"brand": "x"}'}), "claims are not usable"),
        (lambda: _token(sub=None), "not valid"),
        (lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x"}, None, algorithm="none"), "unknown key"),
        # the public key used as an HMAC secret (algorithm confusion) is refused: RS256 only
        (lambda: _hs256_with_public_key(), "not valid"),
        (lambda: _token()[:-4] + "AAAA", "not valid"),
        (lambda: "eyJhbGciOi.not-a.token", "malformed"),
    ],
)
def test_anything_but_a_valid_token_is_refused_with_its_reason(token: Any, reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        VERIFIER.verify(token())


def _hs256_with_public_key() -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "token_use": "id", "iat": now, "exp": now + 60}
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    secret = jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()).encode()
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


class _Keys(ApiKeyring):
    def clients(self) -> dict[str, ApiClient]:
        return {"plain-api-key": ApiClient(name="pos", scopes=frozenset({"events:write"}))}

    def hmac_secrets(self) -> dict[str, str]:
        return {}


def test_authenticate_takes_a_token_beside_api_keys_and_only_when_told_who_issues_them() -> None:
    headers = {"authorization": f"Bearer {_token()}"}
    assert authenticate(headers, b"", _Keys(), None, require=None, tokens=VERIFIER).name == "console:mei"  # type: ignore[arg-type]
    assert authenticate({"x-api-key": "plain-api-key"}, b"", _Keys(), None, tokens=VERIFIER).name == "pos"  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="unknown API key"):  # no issuer configured: a token is no key
        authenticate(headers, b"", _Keys(), None, require=None)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="lacks scope events:write"):
        authenticate(headers, b"", _Keys(), None, tokens=VERIFIER)  # type: ignore[arg-type]
    assert looks_like_token(_token()) and not looks_like_token("local-admin-key")


@pytest.fixture
def fresh_settings() -> Any:
    get_settings.cache_clear()
    yield get_settings
    get_settings.cache_clear()


def test_the_settings_need_a_whole_issuer_or_none(monkeypatch: pytest.MonkeyPatch, fresh_settings: Any) -> None:
    for name in ("CONSOLE_TOKEN_ISSUER", "CONSOLE_TOKEN_AUDIENCE", "CONSOLE_JWKS_URL", "CONSOLE_JWKS"):
        monkeypatch.setenv(name, "")
    assert get_settings(ConsoleTokens).issuer is None  # empty values (the local runtime's unused URL) are unset
    monkeypatch.setenv("CONSOLE_TOKEN_ISSUER", ISSUER)
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="needs an audience and a JWKS"):
        get_settings(ConsoleTokens)
    monkeypatch.setenv("CONSOLE_TOKEN_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CONSOLE_JWKS_URL", "ftp://keys")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="CONSOLE_JWKS_URL"):
        get_settings(ConsoleTokens)
    monkeypatch.setenv("CONSOLE_JWKS_URL", f"{ISSUER}/.well-known/jwks.json")
    get_settings.cache_clear()
    assert get_settings(ConsoleTokens).jwks_url
