"""Signed per-person tokens under a key of the brand's own: the credential of the routes an end customer reaches with
no account of ours (the in-app inbox, `cdp.channels.inbox_tokens`; the preference centre,
`cdp.channels.preference_links`).

    base64url(compact JSON {"k": kind, "b": brand id, "p": person id, "x": expiry in unix seconds, ...fields})
    "." base64url(HMAC-SHA256(brand key, that base64url text) truncated to 128 bits)

signed as tracked links are (`cdp.connectors.redirect.sign_body`, the MAC compared in constant time). The brand key is
HKDF-SHA256 of the tracked-link secret of the sources document (`redirect.secret`) with the info "{purpose info}{brand
id}": a token is good for one brand only (changing the brand changes the key its MAC must be made with), and a token
of one kind is never one of another (another key, another `k`). Rotating `redirect.secret` ends every such token.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cdp.connectors.redirect import sign_body, signed_body
from cdp.connectors.sources import SourceRegistry
from cdp.errors import AuthenticationError, InvalidInputError

MAX_TOKEN_CHARS = 1024
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_ID = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")  # a brand id (`cdp.ingest.events.Token`)
_B64 = re.compile(r"^[A-Za-z0-9_-]{1,1400}$")
_RESERVED = frozenset({"k", "b", "p", "x"})


@dataclass(frozen=True)
class PersonToken:
    brand_id: str
    person_id: str
    expires_at: datetime
    fields: dict[str, Any]  # the kind's own claims, unverified in type: the kind's reader checks them


def brand_key(secret: str, info: bytes, brand_id: str) -> str:
    """The brand's own key for one kind of token: HKDF-SHA256(secret, info + brand id), hex."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info + brand_id.encode())
    return derived.derive(secret.encode()).hex()


def mint_person_token(
    kind: str,
    info: bytes,
    secret: str,
    brand_id: str,
    person_id: str,
    expires_at: datetime,
    fields: dict[str, Any] | None = None,
) -> str:
    if not _ID.match(brand_id) or not 0 < len(person_id) <= 128:
        raise ValueError(f"a {kind} token names a brand id and a person id")
    extra = fields or {}
    if _RESERVED & extra.keys():
        raise ValueError(f"a {kind} token's own fields cannot be named {sorted(_RESERVED)}")
    body = {"k": kind, "b": brand_id, "p": person_id, "x": int(expires_at.timestamp()), **extra}
    token = sign_body(body, brand_key(secret, info, brand_id))
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"a {kind} token would be {len(token)} characters (at most {MAX_TOKEN_CHARS})")
    return token


def read_person_token(
    kind: str,
    info: bytes,
    secret: str,
    token: str,
    now: datetime,
    expired: Callable[[datetime], AuthenticationError],
) -> PersonToken:
    """The brand, person and fields of a token minted with `secret` for `kind`. AuthenticationError("invalid {kind}
    token") for anything that is not one (malformed, tampered, another brand's key, another kind), `expired(at)` for
    one past its expiry."""
    invalid = AuthenticationError(f"invalid {kind} token")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise invalid
    brand = _claimed_brand(token)
    if brand is None:
        raise invalid
    try:
        body = signed_body(token, brand_key(secret, info, brand))  # the MAC, in constant time, under that brand's key
    except InvalidInputError:
        raise invalid from None
    person, expires = body.get("p"), body.get("x")
    if (
        body.get("k") != kind
        or body.get("b") != brand
        or not isinstance(person, str)
        or not 0 < len(person) <= 128
        or not isinstance(expires, int)
        or isinstance(expires, bool)
        or not 0 < expires < _LATEST.timestamp()
    ):
        raise invalid
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise expired(expires_at)
    fields = {name: value for name, value in body.items() if name not in _RESERVED}
    return PersonToken(brand_id=brand, person_id=person, expires_at=expires_at, fields=fields)


def _claimed_brand(token: str) -> str | None:
    """The brand the (not yet verified) payload names: whose key the MAC must be made with."""
    payload = token.partition(".")[0]
    if not _B64.match(payload):
        return None
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    brand = decoded.get("b") if isinstance(decoded, dict) else None
    return brand if isinstance(brand, str) and _ID.match(brand) else None


def sources_token_secret(sources: SourceRegistry) -> Callable[[], str | None]:
    """The secret the brand keys derive from (the sources document's `redirect.secret`), read when needed: it
    rotates without a deploy."""

    def secret() -> str | None:
        redirect = sources.sources().redirect
        return redirect.secret.get_secret_value() if redirect is not None else None

    return secret
