"""Request authentication: an API key, or an HMAC-SHA256 signature with a timestamp (replay window)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from cdp.errors import AuthenticationError
from cdp.ingest.ports import ApiClient, ApiKeyring

SIGNATURE_HEADER = "x-cdp-signature"  # "t=<unix seconds>,v1=<hex hmac_sha256(secret, f'{t}.{body}')>"
KEY_ID_HEADER = "x-cdp-key-id"
API_KEY_HEADER = "x-api-key"
REPLAY_WINDOW_S = 300
WRITE_SCOPE = "events:write"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def authenticate(headers: Mapping[str, str], body: bytes, keyring: ApiKeyring, now: datetime) -> ApiClient:
    """Headers must be lower-cased. Every comparison is constant-time."""
    api_key = headers.get(API_KEY_HEADER) or _bearer(headers.get("authorization", ""))
    if api_key:
        for known, client in keyring.clients().items():
            if hmac.compare_digest(known.encode(), api_key.encode()):
                return _require_scope(client)
        raise AuthenticationError("unknown API key")
    if SIGNATURE_HEADER in headers:
        return _verify_signature(headers, body, keyring, now)
    raise AuthenticationError(f"missing credentials: send {API_KEY_HEADER} or {KEY_ID_HEADER} + {SIGNATURE_HEADER}")


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _require_scope(client: ApiClient) -> ApiClient:
    if WRITE_SCOPE not in client.scopes:
        raise AuthenticationError(f"API key of {client.name} lacks scope {WRITE_SCOPE}")
    return client


def _verify_signature(headers: Mapping[str, str], body: bytes, keyring: ApiKeyring, now: datetime) -> ApiClient:
    key_id = headers.get(KEY_ID_HEADER, "")
    secret = keyring.hmac_secrets().get(key_id)
    if secret is None:
        raise AuthenticationError(f"unknown {KEY_ID_HEADER}")
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as exc:
        raise AuthenticationError(f"malformed {SIGNATURE_HEADER}: expected t=<unix>,v1=<hex>") from exc
    if abs(now.timestamp() - timestamp) > REPLAY_WINDOW_S:
        raise AuthenticationError(f"signature timestamp outside the {REPLAY_WINDOW_S}s replay window")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AuthenticationError("bad signature")
    return ApiClient(name=f"webhook:{key_id}", scopes=frozenset({WRITE_SCOPE}))
