"""Per-provider sending rates that hold across concurrent Lambda invocations.

A provider's rate (messages per second, from its account in the sources secret) is counted in fixed windows of one
second (or of 1/rate seconds, for rates under one): every sender, in every invocation, takes its places in the
current window from one shared counter with a conditional write, so the window's total never passes the rate. A
sender takes a few places at once (a twentieth of the rate) and spends them within that window: fewer writes, at the
cost of places left unused when the window ends. With no place left, the sender waits for the next window; a
campaign's burst is smoothed into the provider's rate instead of being refused by it.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.errors import StoreError
from cdp.shared import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RATE_SK = "RATE"
_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def window_of(rate: float) -> tuple[float, int]:
    """(window length in seconds, places per window) for a rate in messages per second."""
    length = 1.0 if rate >= 1 else float(math.ceil(1 / rate))
    return length, max(1, math.floor(rate * length))


class RateLimiter(ABC):
    @abstractmethod
    def take(self, key: str, window: int, want: int, capacity: int) -> int:
        """Take up to `want` places in window number `window` of `key` (`capacity` places in all): how many were
        taken (0: the window is full)."""


class DynamoRateLimiter(RateLimiter):
    """One counter item per (key, window) on the LEDGER table: `RATE#{key}#{window}`, expiring after a minute."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")

    def take(self, key: str, window: int, want: int, capacity: int) -> int:
        for n in dict.fromkeys((min(want, capacity), 1)):
            if self._add(key, window, n, capacity):
                return n
        return 0

    def _add(self, key: str, window: int, n: int, capacity: int) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={_PK: {"S": f"RATE#{key}#{window}"}, _SK: {"S": RATE_SK}},
                UpdateExpression="ADD n :n SET #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression="attribute_not_exists(n) OR n <= :room",
                ExpressionAttributeNames={"#ttl": _TTL},
                ExpressionAttributeValues={
                    ":n": {"N": str(n)},
                    ":room": {"N": str(capacity - n)},
                    ":ttl": {"N": str(int(time.time()) + 3600)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"taking a sending place for {key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"taking a sending place for {key} failed: {exc}") from exc
        return True


class RateLimitedChannel(Channel):
    """Waits for a place in the provider's rate before every call."""

    def __init__(
        self,
        inner: Channel,
        limiter: RateLimiter,
        key: str,
        rate: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._key = key
        self._length, self._capacity = window_of(rate)
        self._block = max(1, self._capacity // 20)
        self._sleep = sleep
        self._clock = clock
        self._held: tuple[int, int] = (-1, 0)  # (window, places left in it)
        self._lock = threading.Lock()
        self.name: ChannelName = inner.name

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        try:
            self.wait_for_place()
        except StoreError as exc:  # nothing has left: the send may be tried again
            raise DeliveryRejected(
                f"the sending rate's counter is unavailable: {exc}", code="rate_unavailable"
            ) from exc
        return self._inner.send(message)

    def wait_for_place(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                window = int(now // self._length)
                held_window, left = self._held
                if held_window == window and left > 0:
                    self._held = (window, left - 1)
                    return
                taken = self._limiter.take(self._key, window, self._block, self._capacity)
                if taken:
                    self._held = (window, taken - 1)
                    return
                self._sleep(max(0.001, (window + 1) * self._length - now))
