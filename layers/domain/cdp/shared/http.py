"""One small HTTP port for the outside providers the product calls over HTTPS (message senders, ad platforms).

`HttpTransport(method, url, headers, body)` answers `HttpAnswer` for any status (a 4xx or 5xx carries the provider's
error document) and raises `HttpUnreachable` when no answer came: `sent=False` when the request certainly did not
reach the provider (the connection was refused or could not be made), `sent=None` when it may have (a read timeout).
Tests pass a function that calls a fake in-process; the adapters default to `urllib_transport`.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

MAX_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case


class HttpUnreachable(Exception):
    """No answer: `sent` False when the request certainly never reached the provider, None when it may have."""

    def __init__(self, url: str, reason: str, sent: bool | None) -> None:
        super().__init__(f"{url}: {reason}")
        self.sent = sent


HttpTransport = Callable[[str, str, Mapping[str, str], bytes], HttpAnswer]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A provider's redirect is its answer: following it would turn a POST into a GET without the body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def urllib_transport(timeout_s: float = 5.0) -> HttpTransport:
    """HTTPS to the provider (plain http only for a loopback fake: the adapters' endpoints say which); redirects
    are not followed."""

    def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        request = urllib.request.Request(url, data=body or None, headers=dict(headers), method=method)  # noqa: S310
        try:
            with _OPENER.open(request, timeout=timeout_s) as response:  # https or loopback
                return HttpAnswer(response.status, response.read(MAX_ANSWER_BYTES + 1), lower(response.headers.items()))
        except urllib.error.HTTPError as exc:  # 4xx/5xx carry the provider's error document
            return HttpAnswer(exc.code, exc.read(MAX_ANSWER_BYTES + 1), lower(exc.headers.items()))
        except urllib.error.URLError as exc:
            reached = not isinstance(exc.reason, ConnectionRefusedError | socket.gaierror)
            raise HttpUnreachable(url, str(exc.reason), None if reached else False) from exc
        except (TimeoutError, OSError) as exc:
            raise HttpUnreachable(url, str(exc) or type(exc).__name__, None) from exc

    return send


def lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}
