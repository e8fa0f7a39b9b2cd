"""Preference links: the signed link in every marketing message to the person's preference centre
(`GET /v1/preferences/{token}`, `cdp.app.preference_centre`), where they see and change their consent per channel and
purpose; an e-mail also names it in List-Unsubscribe for one-click unsubscribe (RFC 8058: `POST` with the body
`List-Unsubscribe=One-Click`).

The token is a person token of kind "prefs" (`cdp.channels.person_tokens`): brand, person, expiry, and the channel
and message the link came in ("c", "m": a one-click unsubscribe withdraws that channel's marketing consent, and the
message it came in ends `unsubscribed`), under a brand key derived with the info "cdp/preferences/v1/{brand id}". A
link lives a year: mailbox providers keep offering the unsubscribe of an old message, and it must still work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cdp.channels import person_tokens
from cdp.errors import AuthenticationError

KIND = "prefs"
KEY_INFO = b"cdp/preferences/v1/"
VALIDITY = timedelta(days=365)
PATH = "/v1/preferences/"
PREFERENCE_CHANNELS = ("email", "sms", "wechat", "push", "inapp")  # what a person is reached on (not webhooks)
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")


@dataclass(frozen=True)
class PreferenceLink:
    brand_id: str
    person_id: str
    expires_at: datetime
    channel: str | None = None  # the channel of the message the link came in
    message_id: str | None = None


class PreferenceLinkExpiredError(AuthenticationError):
    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"the preference link expired at {expired_at.isoformat()}")
        self.expired_at = expired_at


def mint_preference_token(link: PreferenceLink, secret: str) -> str:
    fields: dict[str, str] = {}
    if link.channel is not None:
        if link.channel not in PREFERENCE_CHANNELS:
            raise ValueError(f"a preference link's channel is one of {PREFERENCE_CHANNELS}, not {link.channel!r}")
        fields["c"] = link.channel
    if link.message_id is not None:
        if not _MESSAGE_ID.match(link.message_id):
            raise ValueError("a preference link's message id is 1-128 characters of [A-Za-z0-9_.:@+-]")
        fields["m"] = link.message_id
    return person_tokens.mint_person_token(
        KIND, KEY_INFO, secret, link.brand_id, link.person_id, link.expires_at, fields
    )


def read_preference_token(token: str, secret: str, now: datetime) -> PreferenceLink:
    """The link a token minted with `secret` stands for: AuthenticationError for anything else (an inbox token, a
    claim token, a tampered one), PreferenceLinkExpiredError past its expiry."""
    found = person_tokens.read_person_token(KIND, KEY_INFO, secret, token, now, PreferenceLinkExpiredError)
    channel, message = found.fields.get("c"), found.fields.get("m")
    if (channel is not None and channel not in PREFERENCE_CHANNELS) or (
        message is not None and not (isinstance(message, str) and _MESSAGE_ID.match(message))
    ):
        raise AuthenticationError(f"invalid {KIND} token")
    return PreferenceLink(found.brand_id, found.person_id, found.expires_at, channel, message)


def preference_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}{token}"
