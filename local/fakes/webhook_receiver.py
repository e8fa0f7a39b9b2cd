"""A brand's webhook endpoint on the loopback: checks our signature the way a brand should (`verify_webhook`),
drops repeats by `idempotency-key`, and records what it accepted.

- every POST is verified against `secret` (a bad or stale signature answers 401 with the reason);
- a repeated idempotency key answers 200 with the first delivery's id and is not recorded again;
- `gone()` makes every later POST answer 410 (the brand removed the endpoint);
- the base's `fail_next` / `delay_next` script 5xx answers and slow answers (a client timeout).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdp.channels.webhook import IDEMPOTENCY_HEADER, verify_webhook
from cdp.errors import AuthenticationError
from cdp.shared.http import HttpAnswer
from cdp.shared.time import utc_now
from cdp_local.fakes.server import LoopbackFake

DEFAULT_SECRET = "whsec-local-fake-0123456789abcdef0123"  # noqa: S105 - a loopback fake's secret (32+ chars)
DEFAULT_PATH = "/hooks/cdp"
_JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Delivery:
    """One accepted webhook: its parsed JSON body, its headers (lower-case names) and the id we answered."""

    body: dict[str, Any]
    headers: dict[str, str]
    id: str
    path: str


class FakeWebhookReceiver(LoopbackFake):
    name = "fake-webhook-receiver"

    def __init__(
        self,
        secret: str = DEFAULT_SECRET,
        port: int = 0,
        path: str = DEFAULT_PATH,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(port)
        self.secret = secret
        self.path = path
        self._clock = clock
        self._state = threading.Lock()
        self._received: list[Delivery] = []
        self._by_key: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._gone = False
        self._rejected: list[str] = []

    # ---- what a test sets up and reads ----------------------------------------------------------------------

    def account(self, **changes: Any) -> dict[str, Any]:
        """The `sender_accounts.Webhook` account dict pointing at this receiver (validate it with `Webhook`)."""
        return {"provider": "webhook", "url": f"{self.url}{self.path}", "secret": self.secret, **changes}

    def gone(self) -> None:
        """Every later POST answers 410 Gone."""
        with self._state:
            self._gone = True

    @property
    def received(self) -> list[Delivery]:
        with self._state:
            return list(self._received)

    @property
    def rejected(self) -> list[str]:
        """Why each refused request was refused (the 401 and 400 reasons), oldest first."""
        with self._state:
            return list(self._rejected)

    # ---- the endpoint -----------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        if method != "POST":
            return _json(405, {"error": "POST only"})
        with self._state:
            if self._gone:
                return _json(410, {"error": "this endpoint was removed"})
        try:
            verify_webhook(headers, body, self.secret, self._clock())
        except AuthenticationError as exc:
            return self._refuse(401, str(exc))
        key = headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return self._refuse(400, f"missing {IDEMPOTENCY_HEADER} header")
        try:
            document = json.loads(body)
        except ValueError as exc:
            return self._refuse(400, f"body is not JSON: {exc}")
        if not isinstance(document, dict):
            return self._refuse(400, "body must be a JSON object")
        with self._state:
            first = self._by_key.get(key)
            if first is not None:
                return _json(200, {"id": first, "duplicate": True})
            delivery_id = f"wh_{next(self._ids):06d}"
            self._by_key[key] = delivery_id
            self._received.append(Delivery(document, dict(headers), delivery_id, path))
        return _json(200, {"id": delivery_id})

    def _refuse(self, status: int, reason: str) -> HttpAnswer:
        with self._state:
            self._rejected.append(reason)
        return _json(status, {"error": reason})


def _json(status: int, document: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(document).encode(), dict(_JSON))
