"""Per-person inbox tokens: how the brand's app reads one person's in-app inbox without holding any server key.

The brand's backend asks for a token with its API key (`POST /v1/inbox/tokens`, scope `inbox:issue`) and hands it
to the app, which sends it as `Authorization: Bearer <token>` to `GET /v1/inbox` and
`POST /v1/inbox/{message_id}/read|dismiss` (`cdp.app.inbox_api`).

A token is a person token of kind "inbox" (`cdp.channels.person_tokens`): {"k": "inbox", "b": brand id, "p": person
id, "x": expiry} signed under a key of the brand's own, derived from the tracked-link secret of the sources document
(`redirect.secret`) with HKDF-SHA256 and the info "cdp/inbox-token/v1/{brand id}". So a token is good for one brand
and one person only: changing the brand in it changes the key its MAC must be made with; a tracked link's, a claim
link's or a preference link's token is not an inbox token (other keys, another `k`). Rotating `redirect.secret` ends
every inbox token (apps ask their backend for a new one on a 401), as it ends tracked links and claim links.
Nothing in a token is personal but the person id, which is opaque.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cdp.channels import person_tokens
from cdp.channels.person_tokens import sources_token_secret
from cdp.errors import AuthenticationError

KIND = "inbox"
KEY_INFO = b"cdp/inbox-token/v1/"
DEFAULT_VALIDITY = timedelta(hours=24)
MAX_VALIDITY = timedelta(days=7)
__all__ = [
    "InboxToken",
    "InboxTokenExpiredError",
    "brand_key",
    "mint_inbox_token",
    "read_inbox_token",
    "sources_token_secret",  # the secret the keys derive from, read when needed
]


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
    return person_tokens.brand_key(secret, KEY_INFO, brand_id)


def mint_inbox_token(token: InboxToken, secret: str) -> str:
    return person_tokens.mint_person_token(KIND, KEY_INFO, secret, token.brand_id, token.person_id, token.expires_at)


def read_inbox_token(token: str, secret: str, now: datetime) -> InboxToken:
    """The brand and person a token minted with `secret` names. AuthenticationError for anything that is not such
    a token (malformed, tampered, another brand's key, another kind of token), InboxTokenExpiredError for one past
    its expiry."""
    found = person_tokens.read_person_token(KIND, KEY_INFO, secret, token, now, InboxTokenExpiredError)
    return InboxToken(brand_id=found.brand_id, person_id=found.person_id, expires_at=found.expires_at)
