"""Request checks every connector shares: body limits (gzip bombs included), HMAC, timestamps, constant-time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Mapping
from datetime import datetime

from cdp.errors import AuthenticationError, InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError

REPLAY_WINDOW_S = 300
JSON_MEDIA_TYPES = ("application/json", "text/plain")  # text/plain: browser SDKs post JSON as a beacon
XML_MEDIA_TYPES = ("text/xml", "application/xml")


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise PayloadTooLargeError(f"body is {len(body)} bytes; the limit is {limit}", "body")


def check_media_type(headers: Mapping[str, str], body: bytes, accepted: tuple[str, ...]) -> None:
    """A body sent as something the route does not read is a 415 (no Content-Type at all is read as the route's
    own format: many webhook senders omit it). `+json` types (application/vnd.x+json) count as JSON."""
    if not body or not accepted:
        return
    declared = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not declared or declared in accepted:
        return
    if declared.endswith("+json") and "application/json" in accepted:
        return
    raise UnsupportedMediaTypeError(
        f"content-type {declared} is not accepted here; send {' or '.join(accepted)}", "content-type"
    )


def decoded_body(body: bytes, headers: Mapping[str, str], limit: int) -> bytes:
    """The body, gunzipped when the client sent Content-Encoding: gzip (never inflating past `limit`)."""
    check_size(body, limit)
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise InvalidInputError(f"unsupported content-encoding {encoding!r}; send gzip or none", "content-encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"body is not valid gzip: {exc}", "body") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"body inflates past the limit of {limit} bytes", "body")
    return out


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two secrets/signatures."""
    return hmac.compare_digest(a.encode() if isinstance(a, str) else a, b.encode() if isinstance(b, str) else b)


def hmac_hex(secret: str, message: bytes, digest: str = "sha256") -> str:
    return hmac.new(secret.encode(), message, getattr(hashlib, digest)).hexdigest()


def hmac_base64(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def check_timestamp(timestamp: str | int | None, now: datetime, window_s: int = REPLAY_WINDOW_S) -> int:
    """A signed unix timestamp inside the replay window, else AuthenticationError."""
    try:
        value = int(str(timestamp))
    except (TypeError, ValueError) as exc:
        raise AuthenticationError("missing or malformed signature timestamp") from exc
    if abs(now.timestamp() - value) > window_s:
        raise AuthenticationError(f"signature timestamp outside the {window_s}s replay window")
    return value


SIGNATURE_HEADER = "x-cdp-signature"  # "t=<unix seconds>,v1=<hex hmac_sha256(secret, f'{t}.{body}')>"


def sign_cdp(secret: str, body: bytes, timestamp: int) -> str:
    """Our webhook signature scheme (the one ad platforms, POS, SMS and push sources are configured with)."""
    return f"t={timestamp},v1={hmac_hex(secret, f'{timestamp}.'.encode() + body)}"


def verify_cdp(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise AuthenticationError(f"missing {SIGNATURE_HEADER} header")
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        raise AuthenticationError(f"malformed {SIGNATURE_HEADER}: expected t=<unix>,v1=<hex>")
    timestamp = check_timestamp(parts["t"], now)
    expected = sign_cdp(secret, body, timestamp).split("v1=", 1)[1]
    if not same(expected, parts["v1"]):
        raise AuthenticationError("bad signature")
