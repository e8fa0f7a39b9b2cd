"""The small interface every pulled e-commerce platform implements, and the state a pull run keeps.

A `PlatformClient` fetches one page of one kind of record (member bindings, orders, refunds, reviews) updated in a
time window and maps a fetched page to canonical event dicts (pure). Clients take an injected HTTP `Transport`, so
tests and the local runtime serve recorded responses (there is no sandbox account behind this code).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cdp.connectors.base import Binding
from cdp.connectors.sources import PlatformShop
from cdp.errors import RetryableError
from cdp.ingest.service import RejectedEvent

Transport = Callable[[str, dict[str, str]], dict[str, Any]]
"""POST form `params` to the gateway `url` and return the decoded JSON response."""

BuyerLookup = Callable[[str], str | None]
"""An order id -> the platform buyer id of that order, when an earlier pull saw the order."""


class Kind(StrEnum):
    MEMBERS = "members"  # bind/unbind of a shop member to the brand's member (phone, member card)
    ORDERS = "orders"
    REFUNDS = "refunds"
    REVIEWS = "reviews"


KINDS: tuple[Kind, ...] = (Kind.MEMBERS, Kind.ORDERS, Kind.REFUNDS, Kind.REVIEWS)
"""Pull order: bindings first, orders before the refunds and reviews that name them (their buyer comes from it)."""


class PlatformApiError(RetryableError):
    """The platform answered with an error (or not at all): the run stops and the shop's cursor stays put."""


@dataclass(frozen=True)
class Page:
    """One response of one API call: archived verbatim, then mapped."""

    kind: Kind
    method: str  # the API method called, e.g. taobao.trades.sold.increment.get
    response: dict[str, Any]
    records: list[dict[str, Any]]
    next_cursor: str | None  # None: the last page of this kind in this window
    ack: tuple[str, ...] = ()  # message ids to confirm once the page is published (queue-based kinds)

    def body(self) -> bytes:
        """What is archived: the decoded answer as compact JSON (the transport hands over JSON, not bytes)."""
        return json.dumps(self.response, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class MapContext:
    shop_id: str
    shop: PlatformShop
    buyer_of: BuyerLookup

    @property
    def platform(self) -> str:
        """The canonical source channel and the platform_buyer_id scope (tmall, taobao, jd)."""
        return self.shop.platform

    def binding(self) -> Binding:
        return Binding(brand_id=self.shop.brand_id, label=f"shop:{self.shop_id}", channel=self.platform)


@dataclass
class MappedPage:
    """A page as canonical event dicts, what could not be mapped (with the field) and what was skipped on purpose."""

    items: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)  # each item's record index in the page
    rejected: list[RejectedEvent] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> records (unpaid order, pending refund, ...)
    buyers: dict[str, str] = field(default_factory=dict)  # order id -> buyer id of the orders mapped here


class PlatformClient(ABC):
    platform: str
    max_window: timedelta = timedelta(days=1)  # the widest [start, end) one call may ask for

    @abstractmethod
    def fetch(self, kind: Kind, start: datetime, end: datetime, cursor: str | None) -> Page:
        """One page of `kind` updated in [start, end); `cursor` is the previous page's `next_cursor` (None: first)."""

    @abstractmethod
    def map_page(self, page: Page, context: MapContext) -> MappedPage:
        """Pure: the page's records as canonical event dicts."""

    def windowed(self, kind: Kind) -> bool:
        """False for a kind read from a message queue (no time window: each run takes what is queued)."""
        return True

    def acknowledge(self, page: Page) -> None:  # noqa: B027 - an optional hook: only queue-based kinds confirm
        """Confirm a queue page once its events are published (unconfirmed messages are delivered again)."""


class PullState(ABC):
    """Per shop: the end of the last fully pulled window, and which buyer placed which order."""

    @abstractmethod
    def cursor(self, shop_id: str) -> datetime | None:
        """The end of the last window whose events were all published (None: never pulled)."""

    @abstractmethod
    def advance(self, shop_id: str, end: datetime) -> None:
        """Record `end` as the shop's cursor (never moves it backwards)."""

    @abstractmethod
    def remember_buyers(self, shop_id: str, buyers: dict[str, str]) -> None:
        """Order id -> buyer id, for the refunds and reviews that name only the order."""

    @abstractmethod
    def buyer_of(self, shop_id: str, order_id: str) -> str | None: ...


class RejectsSink(ABC):
    @abstractmethod
    def write(self, key: str, body: bytes) -> None:
        """Store (or replace) one rejects object."""
