"""The webhook channel: one signed JSON POST per message to the brand's endpoint (`sender_accounts.Webhook`).

The signature is our own scheme, the one brands already sign their webhooks to us with (`cdp.ingest.security`):
`x-cdp-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>`. A brand verifies it with
`verify_webhook` (or the same few lines in its own language): recompute the HMAC over the raw bytes, compare in
constant time, refuse a timestamp more than five minutes away. `idempotency-key` (the message id, stable across
retries) lets the brand drop a repeat: a send whose answer was lost (a read timeout) may arrive again later.

One attempt per `send` (`RetryingChannel` retries the transient refusals):
- 2xx: accepted; the receipt's provider id is the answer's JSON "id" when it has a string one, else the message id;
- 408, 425, 429, 5xx, or the endpoint could not be reached: a transient `DeliveryRejected`;
- 410 Gone: the endpoint is gone for good (`invalid_address`);
- any other status: a permanent `DeliveryRejected` with code `http_<status>` (the brand's endpoint refuses it);
- no answer after the request may have left (a read timeout): `ChannelError`, the outcome is unknown.

The secret never appears in a request, an error or a log line; errors name the endpoint's host only (a brand's URL
may carry a token in its query).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.connectors.sender_accounts import Webhook
from cdp.errors import AuthenticationError, ChannelError
from cdp.ingest.security import REPLAY_WINDOW_S, SIGNATURE_HEADER, check_timestamp, same, sign_cdp
from cdp.shared.http import HttpAnswer, HttpTransport, HttpUnreachable, urllib_transport
from cdp.shared.time import iso, utc_now

MESSAGE_ID_HEADER = "x-cdp-message-id"
IDEMPOTENCY_HEADER = "idempotency-key"
USER_AGENT = "cdp-webhooks/1"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_PROVIDER_ID = 256
_SNIPPET = 200


def sign_webhook(secret: str, body: bytes, at: datetime) -> str:
    """The `x-cdp-signature` value for `body` sent at `at`: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    return sign_cdp(secret, body, int(at.timestamp()))


def verify_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, now: datetime, tolerance_s: int = REPLAY_WINDOW_S
) -> None:
    """Check a webhook we sent: the raw body as received, its headers (any case), the brand's copy of the secret.

    Raises AuthenticationError saying what is wrong (missing or malformed header, a timestamp outside
    `tolerance_s`, a signature that does not match). Several `v1=` values are accepted (one per secret while a
    secret is being rotated): any one matching is enough."""
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
    if not header:
        raise AuthenticationError(f"missing {SIGNATURE_HEADER} header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = value.strip()
        elif name == "v1" and value.strip():
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise AuthenticationError(f"malformed {SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex>")
    at = check_timestamp(timestamp, now, tolerance_s)
    expected = sign_cdp(secret, body, at).split("v1=", 1)[1]
    if not any(same(expected, candidate) for candidate in signatures):  # no short cut: every candidate is compared
        raise AuthenticationError("bad signature: the body or the secret differs from what was signed")


def webhook_body(message: OutboundMessage, sent_at: datetime) -> bytes:
    """The JSON document the brand receives (compact UTF-8: these exact bytes are signed)."""
    document = {
        "message_id": message.message_id,
        "campaign_id": message.campaign_id,
        "step": message.step,
        "person_id": message.person_id,
        "brand_id": message.brand_id,
        "subject": message.subject,
        "body": message.body,
        "fields": message.fields,
        "link": message.link,
        "coupon_id": message.coupon_id,
        "sent_at": iso(sent_at),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookChannel(Channel):
    name: ChannelName = "webhook"

    def __init__(
        self, account: Webhook, transport: HttpTransport | None = None, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._url = account.url
        self._host = urlsplit(account.url).netloc.rpartition("@")[2]  # never the userinfo of a URL
        self._secret = account.secret  # a SecretStr: its repr and str hide the value
        self._transport = transport or urllib_transport(account.timeout_s)
        self._clock = clock

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        sent_at = self._clock()
        body = webhook_body(message, sent_at)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            SIGNATURE_HEADER: sign_webhook(self._secret.get_secret_value(), body, sent_at),
            MESSAGE_ID_HEADER: message.message_id,
            IDEMPOTENCY_HEADER: message.message_id,
        }
        what = f"webhook POST to {self._host} for message {message.message_id}"
        try:
            answer = self._transport("POST", self._url, headers, body)
        except HttpUnreachable as exc:
            reason = str(exc).removeprefix(f"{self._url}: ")
            if exc.sent is False:
                raise DeliveryRejected(f"{what} failed, not sent: {reason}", code="unreachable") from None
            raise ChannelError(f"{what}: no answer (outcome unknown): {reason}") from None
        if 200 <= answer.status < 300:
            return DeliveryReceipt(
                message_id=message.message_id,
                channel=self.name,
                provider="webhook",
                provider_id=_answer_id(answer) or message.message_id,
                accepted_at=sent_at,
            )
        raise _refusal(what, answer)


def _refusal(what: str, answer: HttpAnswer) -> DeliveryRejected:
    status = answer.status
    text = f"{what} answered {status}{_snippet(answer.body)}"
    code = f"http_{status}"
    if status in TRANSIENT_STATUSES or status >= 500:
        return DeliveryRejected(text, code=code)
    if status == 410:
        return DeliveryRejected(f"{text}: the endpoint is gone", code=code, invalid_address=True)
    return DeliveryRejected(text, code=code, permanent=True)


def _answer_id(answer: HttpAnswer) -> str | None:
    try:
        document: Any = json.loads(answer.body) if answer.body.strip() else None
    except (ValueError, RecursionError):
        return None
    value = document.get("id") if isinstance(document, dict) else None
    if isinstance(value, str) and 0 < len(value) <= MAX_PROVIDER_ID and value.isprintable():
        return value
    return None


def _snippet(body: bytes) -> str:
    text = " ".join(body[: _SNIPPET * 4].decode("utf-8", "replace").split())[:_SNIPPET]
    return f": {text}" if text else ""
