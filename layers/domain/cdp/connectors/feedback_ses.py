"""SES event publishing through SNS: `POST /v1/feedback/ses` is the HTTPS subscription of the topic the SES
configuration set publishes to (raw message delivery off: the SNS envelope and its signature are what we verify).

Authentication is SNS's own message signature, as the AWS docs describe it: SignatureVersion 1 is SHA1withRSA and 2
SHA256withRSA over the canonical string of the message's fields; the certificate comes from SigningCertURL, which must
be https on an `sns.<region>.amazonaws.com(.cn)` host; the TopicArn must be one of `SesSource.topic_arns`; and the
Timestamp must be within an hour (SNS retries a delivery with the same message). A SubscriptionConfirmation is
confirmed by fetching its SubscribeURL (same host rule) during authentication, so an archived one replayed later
never confirms twice; it ingests nothing.

A Notification's Message is the SES event: Delivery -> message_delivered (delivered), Bounce -> message_delivered
(Permanent: bounced, else failed), Reject -> message_delivered (failed), Complaint -> consent_changed email false (a
complaint is an opt-out; it names the message, which ends `complained`), Open -> message_opened, Click ->
message_clicked (click.link), Subscription with unsubscribeAll -> consent_changed email false (the message ends
`unsubscribed`); Send, DeliveryDelay and anything else ingest nothing. The recipient e-mail is the identifier; our
message and campaign ids come from the message tags the send path sets (`cdp.channels.adapters.SesEmailChannel`:
"message_id", "campaign_id"; SES's own message id when untagged).
Event ids: ses-{SES message id}-{event type}-{fingerprint of the recipient (+ link for clicks, + time for opens)}.

Ports: a `CertificateFetcher` (HTTPS with an in-memory cache) and a `SubscriptionConfirmer` (HTTPS GET). The ingest
handler builds connectors with `route.factory()` and no arguments, so a connector built without ports uses the
module defaults, which `set_certificate_fetcher` / `set_subscription_confirmer` replace (the local runtime runs the
handler in-process: tests install a fetcher serving their self-signed test certificate, then restore the old one).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cdp.connectors.base import (
    Binding,
    Connector,
    InboundRequest,
    Mapped,
    MappingError,
    event_dict,
    ident,
    map_items,
    obj,
    present,
    require,
)
from cdp.connectors.feedback import stable_id
from cdp.connectors.sources import SourcesConfig
from cdp.errors import AuthenticationError, InvalidInputError, RetryableError
from cdp.ingest.security import check_timestamp
from cdp.observability import logger
from cdp.shared.safe_json import loads as safe_loads
from cdp.shared.time import parse_iso

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_REPLAY_WINDOW_S = 3600
FETCH_TIMEOUT_S = 5
MAX_CERT_BYTES = 16 * 1024
# The tags `SesEmailChannel` sets on every message (they come back in mail.tags as lists of strings).
MESSAGE_ID_TAG = "message_id"
CAMPAIGN_ID_TAG = "campaign_id"

_SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_REQUIRED = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL")
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


# ---- ports ----------------------------------------------------------------------------------------------------


class CertificateFetcher(ABC):
    @abstractmethod
    def fetch(self, url: str) -> bytes:
        """The PEM certificate at an SNS SigningCertURL (already host-checked). Raises RetryableError."""


class SubscriptionConfirmer(ABC):
    @abstractmethod
    def confirm(self, url: str) -> None:
        """Visit an SNS SubscribeURL (already host-checked). Raises RetryableError."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect could leave the checked SNS host: fail instead


def https_get(url: str, limit: int, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    if urlsplit(url).scheme != "https":
        raise ValueError(f"refusing a non-https URL {url}")
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=timeout_s) as response:  # https only (checked above)
            body: bytes = response.read(limit + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RetryableError(f"GET {url} failed: {exc}") from exc
    if len(body) > limit:
        raise RetryableError(f"GET {url} answered more than {limit} bytes")
    return body


class HttpsCertificateFetcher(CertificateFetcher):
    """Fetches over HTTPS (TLS proves the certificate comes from the SNS host) and keeps it in memory: SNS signs
    with few certificates, so a warm function fetches each once."""

    def __init__(self, max_cached: int = 16) -> None:
        self._cache: dict[str, bytes] = {}
        self._max = max_cached

    def fetch(self, url: str) -> bytes:
        cached = self._cache.get(url)
        if cached is None:
            cached = https_get(url, MAX_CERT_BYTES)
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[url] = cached
        return cached


class StaticCertificateFetcher(CertificateFetcher):
    """Certificates given up front (tests and the local runtime, where no SNS host is reachable)."""

    def __init__(self, certificates: Mapping[str, bytes]) -> None:
        self._certificates = dict(certificates)

    def fetch(self, url: str) -> bytes:
        if url not in self._certificates:
            raise RetryableError(f"no certificate for {url}")
        return self._certificates[url]


class HttpsSubscriptionConfirmer(SubscriptionConfirmer):
    def confirm(self, url: str) -> None:
        https_get(url, 64 * 1024)


@dataclass
class _Defaults:
    fetcher: CertificateFetcher
    confirmer: SubscriptionConfirmer


_DEFAULTS = _Defaults(HttpsCertificateFetcher(), HttpsSubscriptionConfirmer())


def set_certificate_fetcher(fetcher: CertificateFetcher) -> CertificateFetcher:
    """Replace the fetcher of connectors built without one (the handler's); returns the previous one to restore."""
    previous, _DEFAULTS.fetcher = _DEFAULTS.fetcher, fetcher
    return previous


def set_subscription_confirmer(confirmer: SubscriptionConfirmer) -> SubscriptionConfirmer:
    """Replace the confirmer of connectors built without one; returns the previous one to restore."""
    previous, _DEFAULTS.confirmer = _DEFAULTS.confirmer, confirmer
    return previous


# ---- the SNS envelope -----------------------------------------------------------------------------------------


def parse_envelope(body: bytes) -> dict[str, Any]:
    envelope = safe_loads(body)
    if not isinstance(envelope, dict):
        raise InvalidInputError("body must be an SNS message object", "body")
    for name in _REQUIRED:
        if not isinstance(envelope.get(name), str) or not envelope[name]:
            raise InvalidInputError(f"SNS message field {name} is missing", name)
    if envelope["Type"] not in _SIGNED_FIELDS:
        raise InvalidInputError(f"unknown SNS message type {envelope['Type']!r}", "Type")
    return envelope


def check_sns_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not SNS_HOST.match(parts.hostname or "") or parts.username or parts.port:
        raise AuthenticationError(f"{field} must be an https URL on an sns.<region>.amazonaws.com host")


def canonical_string(envelope: Mapping[str, Any]) -> bytes:
    """`Name\\nvalue\\n` for each signed field of the message type, in order (Subject only when present)."""
    fields = _SIGNED_FIELDS[envelope["Type"]]
    return "".join(f"{n}\n{envelope[n]}\n" for n in fields if envelope.get(n) is not None).encode()


def verify_sns(envelope: Mapping[str, Any], fetcher: CertificateFetcher, now: datetime) -> None:
    """The AWS-documented verification; cheap checks first, so a forged message costs no certificate fetch."""
    algorithm = _HASHES.get(envelope["SignatureVersion"])
    if algorithm is None:
        raise AuthenticationError(f"unsupported SignatureVersion {envelope['SignatureVersion']!r}")
    check_sns_url(envelope["SigningCertURL"], "SigningCertURL")
    try:
        sent = parse_iso(envelope["Timestamp"])
    except ValueError as exc:
        raise AuthenticationError(f"malformed SNS Timestamp: {exc}") from exc
    check_timestamp(int(sent.timestamp()), now, SNS_REPLAY_WINDOW_S)
    try:
        signature = base64.b64decode(envelope["Signature"], validate=True)
    except binascii.Error as exc:
        raise AuthenticationError("SNS Signature is not base64") from exc
    try:
        certificate = x509.load_pem_x509_certificate(fetcher.fetch(envelope["SigningCertURL"]))
    except ValueError as exc:
        raise AuthenticationError("SigningCertURL does not hold a PEM certificate") from exc
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise AuthenticationError("the SNS signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise AuthenticationError("the SNS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, canonical_string(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise AuthenticationError("bad SNS signature") from exc


# ---- the connector --------------------------------------------------------------------------------------------


def sns_status(accepted: int, duplicates: int, rejected: int) -> int:
    """SNS retries anything but 2xx: a notification we understood but could not map is logged, not retried."""
    return 400 if rejected and not (accepted or duplicates) else 200


class SesConnector(Connector):
    name = "ses"

    def __init__(
        self, fetcher: CertificateFetcher | None = None, confirmer: SubscriptionConfirmer | None = None
    ) -> None:
        self._fetcher = fetcher
        self._confirmer = confirmer

    def authenticate(self, request: InboundRequest, secrets: SourcesConfig) -> Binding:
        ses = secrets.ses
        if ses is None:
            raise AuthenticationError("SES feedback is not configured")
        envelope = parse_envelope(request.body)
        if envelope["TopicArn"] not in ses.topic_arns:
            raise AuthenticationError("notifications of this SNS topic are not accepted")
        verify_sns(envelope, self._fetcher or _DEFAULTS.fetcher, request.signed_window_at)
        if envelope["Type"] == "SubscriptionConfirmation":
            check_sns_url(str(envelope.get("SubscribeURL") or ""), "SubscribeURL")
            (self._confirmer or _DEFAULTS.confirmer).confirm(envelope["SubscribeURL"])
            logger.info("SNS subscription confirmed", topic_arn=envelope["TopicArn"])
        return Binding(brand_id=ses.brand_id, label=f"sns:{envelope['TopicArn'].rsplit(':', 1)[-1]}", channel="email")

    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        envelope = parse_envelope(request.body)
        if envelope["Type"] != "Notification":
            return Mapped(batch=False)  # a (un)subscription confirmation: nothing to ingest
        event = safe_loads(envelope["Message"], "Message")
        if not isinstance(event, dict):
            raise InvalidInputError("Message must be an SES event object", "Message")
        return map_items([event], lambda e: _prefixed(e, binding), prefix="", batch=False)


def _prefixed(event: dict[str, Any], binding: Binding) -> list[dict[str, Any]]:
    try:
        return ses_events(event, binding)
    except MappingError as exc:
        raise MappingError(f"Message.{exc.field}".rstrip("."), exc.message) from exc


def _tag(tags: dict[str, Any], name: str) -> str | None:
    values = tags.get(name)
    value = values[0] if isinstance(values, list) and values else values
    return value if isinstance(value, str) and value else None


def _address(value: Any) -> str:
    return parseaddr(value)[1] if isinstance(value, str) else ""


def _recipients(values: Any, field: str, key: str | None = None) -> list[str]:
    items = values if isinstance(values, list) else []
    found = [_address(v.get(key) if key and isinstance(v, dict) else v) for v in items]
    if not found or not all(found):
        raise MappingError(field, f"{field} must list the recipients' e-mail addresses")
    return list(dict.fromkeys(found))


def _when(detail: dict[str, Any], mail: dict[str, Any], field: str) -> datetime:
    value = detail.get("timestamp") or mail.get("timestamp")
    try:
        return parse_iso(str(value))
    except ValueError as exc:
        raise MappingError(f"{field}.timestamp", f"not an ISO-8601 timestamp: {exc}") from exc


def ses_events(event: dict[str, Any], binding: Binding) -> list[dict[str, Any]]:
    """One SES event (event publishing's eventType, or an identity notification's notificationType)."""
    kind = event.get("eventType") or event.get("notificationType")
    if not isinstance(kind, str) or not kind:
        raise MappingError("eventType", "eventType is required")
    mail = obj(event, "mail")
    if not mail:
        raise MappingError("mail", "mail is required")
    ses_id = require(mail, "messageId")
    tags = obj(mail, "tags")
    ids = {"message_id": _tag(tags, MESSAGE_ID_TAG) or ses_id, "channel": "email"}
    if campaign := _tag(tags, CAMPAIGN_ID_TAG):
        ids["campaign_id"] = campaign
    field = kind[0].lower() + kind[1:]  # "Delivery" -> "delivery", "DeliveryDelay" -> "deliveryDelay"
    detail = obj(event, field)
    occurred_at = _when(detail, mail, field)
    extra = ""
    match kind:
        case "Delivery":
            recipients = _recipients(detail.get("recipients") or mail.get("destination"), f"{field}.recipients")
            event_type, properties = "message_delivered", {**ids, "status": "delivered"}
        case "Bounce":
            recipients = _recipients(detail.get("bouncedRecipients"), "bounce.bouncedRecipients", "emailAddress")
            status = "bounced" if detail.get("bounceType") == "Permanent" else "failed"
            event_type, properties = "message_delivered", {**ids, "status": status}
        case "Reject":
            recipients = _recipients(mail.get("destination"), "mail.destination")
            event_type, properties = "message_delivered", {**ids, "status": "failed"}
        case "Complaint":
            complained = detail.get("complainedRecipients")
            recipients = _recipients(complained, "complaint.complainedRecipients", "emailAddress")
            event_type, properties = "consent_changed", {**ids, "granted": False, "complaint": True}
        case "Open":
            recipients = _single(mail)
            event_type, properties, extra = "message_opened", ids, str(detail.get("timestamp") or "")
        case "Click":
            recipients = _single(mail)
            link = _link(detail)
            event_type, properties, extra = "message_clicked", {**ids, "url": link}, link
        case "Subscription" if obj(detail, "newTopicPreferences").get("unsubscribeAll") is True:
            recipients = _recipients(mail.get("destination"), "mail.destination")
            event_type, properties = "consent_changed", {**ids, "granted": False}
        case _:
            return []  # Send, DeliveryDelay, Rendering Failure, topic preferences: no canonical event
    context = {"user_agent": str(detail["userAgent"])[:512]} if detail.get("userAgent") else None
    return [
        event_dict(
            event_type=event_type,
            event_id=stable_id("ses", ses_id, kind.lower(), hashed=(r, extra) if extra else (r,)),
            source="email",
            binding=binding,
            occurred_at=occurred_at,
            identifiers=present(ident("email", r)),
            properties=properties,
            context=context,
        )
        for r in recipients
    ]


def _link(click: dict[str, Any]) -> str:
    link = click.get("link")
    if not isinstance(link, str) or not link:
        raise MappingError("click.link", "click.link is required")
    return link


def _single(mail: dict[str, Any]) -> list[str]:
    """Opens and clicks name no recipient: only a message sent to one address (as ours are) can be attributed."""
    recipients = _recipients(mail.get("destination"), "mail.destination")
    if len(recipients) != 1:
        raise MappingError("mail.destination", "an open or click of a message to several recipients has no owner")
    return recipients
