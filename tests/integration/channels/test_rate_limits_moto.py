"""Per-provider rates that hold across concurrent senders (cdp.channels.rate_limits on moto's DynamoDB): a burst from
several "invocations" at once never puts more than the rate's places in any one-second window, and all of it is
sent (smoothed, not refused)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel
from cdp.channels.rate_limits import DynamoRateLimiter, RateLimitedChannel, RateLimiter, window_of
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class Provider(Channel):
    """Records when each message reached it (the wall clock, as the provider counts its rate)."""

    name: ChannelName = "sms"

    def __init__(self) -> None:
        self.at: list[float] = []
        self.lock = threading.Lock()

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        with self.lock:
            self.at.append(time.time())
        return DeliveryReceipt(message_id=message.message_id, channel="sms", provider_id="x", accepted_at=T0)


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        message_id=f"m{n}", campaign_id="c", run_id="r", step="s", channel="sms", person_id=f"p{n}",
        address="+8613900000000", body="hi", created_at=T0,
    )  # fmt: skip


@pytest.fixture
def limiter() -> Any:
    with mock_aws(), atomic_dynamodb():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db, topology.LEDGER_TABLE)
        yield DynamoRateLimiter(topology.LEDGER_TABLE.local_name, client=db)


class Recording(RateLimiter):
    """The places the shared counter gave, by window (what the limiter guarantees)."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.given: Counter[int] = Counter()
        self.lock = threading.Lock()

    def take(self, key: str, window: int, want: int, capacity: int) -> int:
        taken = self.inner.take(key, window, want, capacity)
        with self.lock:
            self.given[window] += taken
        return taken


def test_a_burst_from_concurrent_senders_never_passes_the_rate(limiter: DynamoRateLimiter) -> None:
    # Given four concurrent senders (four Lambda invocations) sharing one provider account's 25 messages a second
    rate, provider, shared = 25.0, Provider(), Recording(limiter)
    senders = [RateLimitedChannel(provider, shared, "sms:bakery:default", rate) for _ in range(4)]
    # When each sends 15 messages at once (a burst of 60: 2.4 s at the rate)
    threads = [
        threading.Thread(target=lambda s=s, i=i: [s.send(message(i * 1000 + n)) for n in range(15)])
        for i, s in enumerate(senders)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then everything was sent, the shared counter never gave more than 25 places in a second, and the burst was
    # spread over 3 seconds or more
    assert len(provider.at) == 60
    assert max(shared.given.values()) <= 25 and sum(shared.given.values()) >= 60
    per_second = Counter(int(at) for at in provider.at)
    assert len(per_second) >= 3
    # And no message reached the provider ahead of its place: by the end of each second, no more had arrived than
    # places were given up to it (a message may arrive late on a loaded machine, never early; a count per wall second
    # would judge the scheduler, not the limiter)
    for second in per_second:
        arrived = sum(n for s, n in per_second.items() if s <= second)
        assert arrived <= sum(n for window, n in shared.given.items() if window <= second), second


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("rate", "length", "capacity"), [(0.5, 2.0, 1), (0.3, 4.0, 1), (3.0, 1.0, 3)])
def test_a_slow_rate_gets_a_window_long_enough_for_one_place(
    limiter: DynamoRateLimiter, rate: float, length: float, capacity: int
) -> None:
    assert window_of(rate) == (length, capacity)
    clock, provider = FakeClock(), Provider()
    sender = RateLimitedChannel(provider, limiter, f"push:bakery:{rate}", rate, sleep=clock.sleep, clock=clock.time)
    sent_at = []
    for n in range(6):
        sender.send(message(n))
        sent_at.append(clock.time())
    per_window = Counter(int(at // length) for at in sent_at)
    assert max(per_window.values()) <= capacity
    assert sent_at[-1] - sent_at[0] >= (6 / capacity - 1) * length - 1e-9  # six messages took their windows
