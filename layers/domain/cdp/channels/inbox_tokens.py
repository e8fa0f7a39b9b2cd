"""Per-person inbox tokens: how the brand's app reads one person's in-app inbox without holding any server key.

The brand's backend asks for a token with its API key (`POST /v1/inbox/tokens`, scope `inbox:issue`) and hands it
to the app, which sends it as `Authorization: Bearer <token>` to `GET /v1/inbox` and
`POST /v1/inbox/{message_id}/read|dismiss` (`cdp.app.inbox_api`).

A token is signed the way tracked links and claim links are (`cdp.connectors.redirect.sign_body`):

    base64url(compact JSON {"k": "inbox", "b": brand id, "p": person id, "x": expiry, unix seconds})
    "." base64url(HMAC-SHA256(brand key, that base64url text) truncated to 128 bits)

under a key of the brand's own, derived from the tracked-link secret of the sources document (`redirect.secret`)
with HKDF-SHA256 and the info "cdp/inbox-token/v1/{brand id}". So a token is good for one brand and one person only:
changing the brand in it changes the key its MAC must be made with; a tracked link's or a claim link's token is not
an inbox token (other keys, another `k`). The MAC is compared in constant time. Rotating `redirect.secret` ends
every inbox token (apps ask their backend for a new one on a 401), as it ends tracked links and claim links.
Nothing in a token is personal but the person id, which is opaque.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cdp.connectors.redirect import sign_body, signed_body
from cdp.connectors.sources import SourceRegistry
from cdp.errors import AuthenticationError, InvalidInputError

KIND = "inbox"
KEY_INFO = b"cdp/inbox-token/v1/"
DEFAULT_VALIDITY = timedelta(hours=24)
MAX_VALIDITY = timedelta(days=7)
MAX_TOKEN_CHARS = 1024
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_ID = re.compile(r"^[A-Za-z0-9_.:@/#+\-]{1,128}$")  # a brand id (`cdp.ingest.events.Token`)
_B64 = re.compile(r"^[A-Za-z0-9_-]{1,1400}$")


@dataclass(frozen=True)
class InboxToken:
    brand_id: str
    person_id: str
    expires_at: datetime


class InboxTokenExpiredError(AuthenticationError):
    """A genuine token past its expiry: the app asks its backend for a new one."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"the inbox token expired at {expired_at.isoformat()}: ask for a new one")
        self.expired_at = expired_at


def brand_key(secret: str, brand_id: str) -> str:
    """The brand's own inbox-token key: HKDF-SHA256(secret, info "cdp/inbox-token/v1/{brand}"), hex."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO + brand_id.encode())
    return derived.derive(secret.encode()).hex()


def mint_inbox_token(token: InboxToken, secret: str) -> str:
    if not _ID.match(token.brand_id) or not 0 < len(token.person_id) <= 128:
        raise ValueError("an inbox token names a brand id and a person id")
    body = {"k": KIND, "b": token.brand_id, "p": token.person_id, "x": int(token.expires_at.timestamp())}
    return sign_body(body, brand_key(secret, token.brand_id))


def read_inbox_token(token: str, secret: str, now: datetime) -> InboxToken:
    """The brand and person a token minted with `secret` names. AuthenticationError for anything that is not such
    a token (malformed, tampered, another brand's key, another kind of token), InboxTokenExpiredError for one past
    its expiry."""
    invalid = AuthenticationError("invalid inbox token")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise invalid
    brand = _claimed_brand(token)
    if brand is None:
        raise invalid
    try:
        body = signed_body(token, brand_key(secret, brand))  # the MAC, in constant time, under that brand's key
    except InvalidInputError:
        raise invalid from None
    person, expires = body.get("p"), body.get("x")
    if (
        body.get("k") != KIND
        or body.get("b") != brand
        or not isinstance(person, str)
        or not 0 < len(person) <= 128
        or not isinstance(expires, int)
        or isinstance(expires, bool)
        or not 0 < expires < _LATEST.timestamp()
    ):
        raise invalid
    found = InboxToken(brand_id=brand, person_id=person, expires_at=datetime.fromtimestamp(expires, UTC))
    if now >= found.expires_at:
        raise InboxTokenExpiredError(found.expires_at)
    return found


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
    """The secret inbox-token keys derive from (the sources document's `redirect.secret`), read when needed: it
    rotates without a deploy."""

    def secret() -> str | None:
        redirect = sources.sources().redirect
        return redirect.secret.get_secret_value() if redirect is not None else None

    return secret
