"""Transient refusals retried inside one send, permanent ones and unknown outcomes never.

Each provider adapter makes one attempt and says how it ended: accepted (a receipt), refused for good
(`DeliveryRejected(permanent=True)`), refused for now (`DeliveryRejected`: throttled, a 5xx, not reachable: certainly
not sent) or unknown (`ChannelError`: a read timeout, the provider may have sent it). Only "refused for now" is tried
again here, after a short backoff; an unknown outcome is left to the send ledger's lease, so no message is sent
twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected


@dataclass(frozen=True)
class Backoff:
    """`attempts` calls in all, waiting `waits_s[i]` after the i-th (the last value repeats)."""

    attempts: int = 3
    waits_s: tuple[float, ...] = (0.2, 1.0)

    def wait(self, attempt: int) -> float:
        return self.waits_s[min(attempt - 1, len(self.waits_s) - 1)] if self.waits_s else 0.0


class RetryingChannel(Channel):
    def __init__(self, inner: Channel, backoff: Backoff = Backoff(), sleep: Callable[[float], None] = time.sleep):
        self._inner = inner
        self._backoff = backoff
        self._sleep = sleep
        self.name: ChannelName = inner.name

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        for attempt in range(1, self._backoff.attempts + 1):
            try:
                return self._inner.send(message)
            except DeliveryRejected as exc:
                if exc.permanent or attempt == self._backoff.attempts:
                    raise
                self._sleep(self._backoff.wait(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover
