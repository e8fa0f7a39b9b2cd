"""Tracked links: `GET /r/{token}` answers 302 to the link's target and ingests a message_clicked event.

A token is minted when a message is rendered (`mint_token`, or `wrap_links` over a whole message body):
base64url(compact JSON {m: message id, c: campaign id, ch: channel, u: target url, i: recipient, b: brand id}) "."
base64url(HMAC-SHA256(RedirectConfig.secret, that base64url text) truncated to 128 bits). The HMAC is the
authentication of this unauthenticated GET: it is checked in constant time, and a bad or tampered token is a 400
that never redirects. The target must be https (never http, never with credentials) and, when
`RedirectConfig.allowed_hosts` is set, on one of those hosts exactly: no open redirect, even with a leaked secret.

The recipient: the canonical event needs an identifier, and the platform has no person-id identifier
(`cdp.identifiers.model`), so `i` is the recipient's identifier key (email:x@y.z, phone:+86..., device_id:...,
wechat_openid:{app}:{openid}) encrypted with AES-256-GCM (random 96-bit nonce, the message id as associated data)
under a key derived from the same secret with HKDF-SHA256. Whoever holds a link learns no e-mail or phone. `map` uses
the claims `authenticate` verified (it never sees the secret); a replay of an archived click runs both again (the
token carries no timestamp, so it still verifies).

An SMS carries a short link instead (`cdp.connectors.short_links`): `/r/{9-character code}` resolves to the token it
stands for, which is then verified exactly as above.

The click's event id is click-{message id}-{sha1(url)[:12]}-{minute}: double clicks within a minute count once.
Tokens must fit S3 object metadata (the archive keeps the route key): `mint_token` refuses targets that would not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cdp.connectors.base import Binding, Connector, InboundRequest, Mapped, MappingError, Reply, event_dict, map_items
from cdp.connectors.feedback import digest, stable_id
from cdp.connectors.short_links import SHORT_CODE, ShortLinks
from cdp.connectors.sources import SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError, NotFoundError
from cdp.identifiers.model import Identifier
from cdp.ingest.security import same

MAX_TOKEN_CHARS = 1500  # S3 user metadata is capped at 2 KB and the archive stores the token as the source key
MAX_URL_CHARS = 2048
MAC_BYTES = 16
NONCE_BYTES = 12
# The canonical source of a click per message channel (WeChat messages go out through the official account).
SOURCES = {"email": "email", "sms": "sms", "push": "push", "wechat": "wechat_oa"}
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_LINK = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+", re.IGNORECASE)
_HKDF_INFO = b"cdp/redirect/identifier/v1"


@dataclass(frozen=True)
class LinkClaims:
    message_id: str
    channel: str  # email | sms | push | wechat
    url: str
    identifier_key: str  # the recipient, e.g. "email:x@y.z" (encrypted inside the token)
    brand_id: str
    campaign_id: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64.match(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest()[:MAC_BYTES])


def _aead(secret: str) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode()))


def sign_body(body: dict[str, Any], secret: str) -> str:
    """A signed token of a JSON object: base64url(compact JSON) "." base64url(HMAC-SHA256(secret, that text) truncated
    to 128 bits). Tracked links and offer claim links (`cdp.offers.claims`, under a key derived for them) use it."""
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_mac(secret, payload)}"


def signed_body(token: str, secret: str) -> dict[str, Any]:
    """The JSON object of a token `sign_body` made with `secret` (the MAC checked in constant time);
    InvalidInputError (400, field `token`) for anything else."""
    invalid = InvalidInputError("invalid or tampered link", "token")
    # a messaging app may take the punctuation after a link into it; base64url never ends with these
    payload, dot, mac = token.rstrip(".,;:!?)'\"").partition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS or not _B64.match(payload) or not same(_mac(secret, payload), mac):
        raise invalid
    try:
        body = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not isinstance(body, dict):
        raise invalid
    return body


def mint_token(claims: LinkClaims, secret: str) -> str:
    """A signed token for one link of one message to one recipient. Raises ValueError when the channel is unknown,
    the target could not be followed (see `check_target`) or the token would be too long."""
    if claims.channel not in SOURCES:
        raise ValueError(f"unknown channel {claims.channel!r}")
    try:
        check_target(claims.url)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + _aead(secret).encrypt(nonce, claims.identifier_key.encode(), claims.message_id.encode())
    body = {"m": claims.message_id, "ch": claims.channel, "u": claims.url, "i": _b64(sealed), "b": claims.brand_id}
    if claims.campaign_id:
        body["c"] = claims.campaign_id
    token = sign_body(body, secret)
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"the token would be {len(token)} characters; the limit is {MAX_TOKEN_CHARS}")
    return token


def read_token(token: str, secret: str) -> LinkClaims:
    """The claims of a token minted with `secret`; InvalidInputError (400) for anything else."""
    invalid = InvalidInputError("invalid or tampered link", "token")
    body = signed_body(token, secret)
    try:
        fields: dict[str, Any] = {k: body.get(k) for k in ("m", "ch", "u", "i", "b")}
        if not all(isinstance(v, str) and v for v in fields.values()) or not isinstance(body.get("c", ""), str):
            raise invalid
        sealed = _unb64(fields["i"])
        identifier = _aead(secret).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], fields["m"].encode())
    except (ValueError, InvalidTag, AttributeError) as exc:
        raise invalid from exc
    return LinkClaims(
        message_id=fields["m"],
        channel=fields["ch"],
        url=fields["u"],
        identifier_key=identifier.decode(),
        brand_id=fields["b"],
        campaign_id=body.get("c") or None,
    )


def check_target(url: str, allowed_hosts: Collection[str] = ()) -> None:
    """Only https targets without credentials, on an allowed host when any are configured (no open redirect)."""
    if len(url) > MAX_URL_CHARS or not url.isascii() or any(c <= " " or c in '\\"<>\x7f' for c in url):
        raise InvalidInputError("the link's target is not a valid URL", "token")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username is not None or parts.password is not None:
        raise InvalidInputError("the link's target must be an https URL", "token")
    if allowed_hosts and parts.hostname.lower() not in {h.lower() for h in allowed_hosts}:
        raise InvalidInputError("the link's target host is not allowed", "token")


def wrap_links(
    text: str,
    *,
    base_url: str,
    secret: str,
    message_id: str,
    channel: str,
    identifier_key: str,
    brand_id: str,
    campaign_id: str | None = None,
    allowed_hosts: Collection[str] = (),
    html_text: bool = False,
    shorten: Callable[[str, str], str] | None = None,
    untracked: tuple[str, ...] = (),
) -> str:
    """Rewrite the http(s) links of a rendered message into `{base_url}/r/{token}` links. Links a click could not
    follow (http, a host outside `allowed_hosts`, too long), links already tracked and links starting with one of
    `untracked` (the preference centre's) are left as they are. `html_text`: the body is HTML, so `&amp;` in a link
    is an escaped `&`. `shorten(target, token)`: the token becomes the short code it returns (an SMS:
    `cdp.connectors.short_links`)."""
    prefix = f"{base_url.rstrip('/')}/r/"

    def wrap(found: re.Match[str]) -> str:
        link = found.group(0)
        trail = ""
        while link and (link[-1] in ".,;:!?'" or (link[-1] == ")" and link.count(")") > link.count("("))):
            link, trail = link[:-1], link[-1] + trail
        target = html.unescape(link) if html_text else link
        if target.startswith(prefix) or target.startswith(untracked):
            return found.group(0)
        try:
            check_target(target, allowed_hosts)
            claims = LinkClaims(message_id, channel, target, identifier_key, brand_id, campaign_id)
            token = mint_token(claims, secret)
            return prefix + (shorten(target, token) if shorten is not None else token) + trail
        except (InvalidInputError, ValueError):  # not followable: leave the link as it is
            return found.group(0)

    return _LINK.sub(wrap, text)


def click_event_id(claims: LinkClaims, at: datetime) -> str:
    return stable_id("click", claims.message_id, digest(claims.url, size=12), str(int(at.timestamp()) // 60))


@dataclass
class _Defaults:
    short_links: ShortLinks | None = None


_DEFAULTS = _Defaults()


def set_short_links(store: ShortLinks | None) -> ShortLinks | None:
    """The store short SMS links resolve through (the ingest handler sets it); returns the previous one."""
    previous, _DEFAULTS.short_links = _DEFAULTS.short_links, store
    return previous


class RedirectConnector(Connector):
    name = "redirect"
    max_body_bytes = 1024  # a GET: the token in the path is the whole request

    def __init__(self, short_links: ShortLinks | None = None) -> None:
        self._claims: LinkClaims | None = None
        self._short_links = short_links

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        config = secrets.redirect
        if config is None:
            raise AuthenticationError("tracked links are not configured")
        token = request.key or ""
        trimmed = token.rstrip(".,;:!?)'")  # what a messaging app took into the link from the text after it
        if SHORT_CODE.match(trimmed):  # an SMS's short link: the token it stands for, verified the same way
            token = trimmed
            store = self._short_links or _DEFAULTS.short_links
            resolved = store.resolve(token, request.received_at) if store is not None else None
            if resolved is None:
                raise NotFoundError("no such link (or it has expired)")
            token = resolved
        claims = read_token(token, config.secret.get_secret_value())
        check_target(claims.url, config.allowed_hosts)
        if claims.channel not in SOURCES:
            raise InvalidInputError("invalid or tampered link", "token")
        self._claims = claims
        return Binding(brand_id=claims.brand_id, label="redirect", channel=SOURCES[claims.channel])

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        claims = self._claims
        if claims is None:
            raise InvalidInputError("the link was not verified", "token")
        mapped = map_items([claims], lambda c: [_click(c, binding, request)], prefix="", batch=False)
        # The click is recorded (or rejected) either way: the person still lands on the page.
        reply = Reply(status=302, headers={"Location": claims.url, "Cache-Control": "no-store"})
        return mapped.model_copy(update={"reply": reply})


def _click(claims: LinkClaims, binding: Binding, request: InboundRequest) -> dict[str, Any]:
    try:
        recipient = Identifier.from_key(claims.identifier_key)
    except ValueError as exc:
        raise MappingError("i", f"the link's recipient is not an identifier key: {exc}") from exc
    identifier = {"type": recipient.type.value, "value": recipient.value}
    if recipient.scope:
        identifier["scope"] = recipient.scope
    properties = {"message_id": claims.message_id, "channel": claims.channel, "url": claims.url}
    if claims.campaign_id:
        properties["campaign_id"] = claims.campaign_id
    user_agent = request.headers.get("user-agent")
    return event_dict(
        event_type="message_clicked",
        event_id=click_event_id(claims, request.received_at),
        source=binding.channel or SOURCES[claims.channel],
        binding=binding,
        occurred_at=request.received_at,
        identifiers=[identifier],
        properties=properties,
        context={"user_agent": user_agent[:512]} if user_agent else None,
    )
