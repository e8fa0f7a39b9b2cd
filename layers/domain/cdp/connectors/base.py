"""What every connector is: authenticate a request against its source's secret, then map the payload (pure)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cdp.ingest.ports import DedupeLedger
from cdp.ingest.security import JSON_MEDIA_TYPES
from cdp.ingest.service import FieldError, RejectedEvent
from cdp.observability import logger
from cdp.shared.time import iso


@dataclass(frozen=True)
class InboundRequest:
    """One HTTP request as a connector sees it. Header names are lower-case; `key` is the route's source key
    (a WeChat app id, a Shopify shop, an ad platform, a POS vendor) when the route has one."""

    connector: str
    method: str
    body: bytes
    received_at: datetime
    request_id: str
    key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    source_ip: str | None = None
    arrived_at: datetime | None = None  # the wire's time (`wire_now`), for replay windows; default received_at

    @property
    def signed_window_at(self) -> datetime:
        """What a signature's timestamp is checked against."""
        return self.arrived_at or self.received_at


@dataclass(frozen=True)
class Binding:
    """Who the authenticated source is: the brand (and store) its data belongs to, and a label for logs/archive."""

    brand_id: str
    label: str
    store_id: str | None = None
    channel: str | None = None  # the canonical source channel, when the source config fixes it


class Reply(BaseModel):
    """A channel-specific answer (WeChat wants "success" as text; a redirect answers 302); None: the JSON result."""

    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    body: str = ""
    headers: dict[str, str] = Field(default_factory=dict)


class Mapped(BaseModel):
    """A payload mapped to canonical event dicts (validated later, one by one) plus what could not be mapped."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    origins: list[int] | None = Field(default=None, description="each item's index in the native payload")
    rejected: list[RejectedEvent] = Field(default_factory=list)
    reply: Reply | None = None
    batch: bool = True  # field paths of rejects are reported as "batch.{i}...." for batches
    kept_as_custom: int = 0  # valid calls the mapping could not type, kept as `custom` events (counted, never refused)


class Connector(ABC):
    name: str
    max_body_bytes: int = 512 * 1024
    media_types: tuple[str, ...] = JSON_MEDIA_TYPES  # a body sent as anything else is a 415
    json_body: bool = True  # the body's JSON nesting is bounded before authentication reads it

    @abstractmethod
    def authenticate(self, request: InboundRequest, secrets: Any) -> Binding:
        """Check the request against the source's configured secret; raise AuthenticationError."""

    @abstractmethod
    def map(self, request: InboundRequest, binding: Binding) -> Mapped:
        """Pure: the request's payload as canonical event dicts. Raises InvalidInputError for a malformed body."""

    def archive_meta(self, request: InboundRequest) -> dict[str, str]:
        """What replay needs besides the body to map the payload again (small: S3 metadata is capped at 2 KB)."""
        return {}

    def check_replay(self, request: InboundRequest, binding: Binding, secrets: Any, ledger: DedupeLedger) -> None:
        """After authentication: refuse a signed request already used with another body (for a source whose
        signature does not cover the body); raise AuthenticationError. Most signatures bind the body: no-op."""
        return None

    def unseal(self, request: InboundRequest, secrets: Any) -> bytes | None:
        """After authentication: the payload inside an encrypted envelope, which is then archived and mapped in its
        place (replay never needs the key, and a rotated key cannot strand the archive); None: the body is it."""
        return None


def reject(index: int, event_id: str | None, field_path: str, message: str) -> RejectedEvent:
    return RejectedEvent(index=index, event_id=event_id, errors=[FieldError(field=field_path, message=message)])


def event_dict(
    *,
    event_type: str,
    event_id: str,
    source: str,
    binding: Binding,
    occurred_at: datetime | str,
    identifiers: list[dict[str, Any]],
    properties: dict[str, Any] | None = None,
    context: dict[str, str] | None = None,
    store_id: str | None = None,
) -> dict[str, Any]:
    """A canonical event as a plain dict (the ingest path validates it and names any bad field)."""
    out: dict[str, Any] = {
        "schema_version": "1",
        "event_id": event_id,
        "event_type": event_type,
        "source": source,
        "brand_id": binding.brand_id,
        "occurred_at": iso(occurred_at) if isinstance(occurred_at, datetime) else occurred_at,
        "identifiers": identifiers,
        "properties": properties or {},
    }
    store = store_id or binding.store_id
    if store:
        out["store_id"] = store
    if context:
        out["context"] = {k: v for k, v in context.items() if v}
    return out


def ident(kind: str, value: Any, scope: str | None = None) -> dict[str, Any] | None:
    """An identifier dict, or None when the channel gave no value (callers drop the Nones)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    out: dict[str, Any] = {"type": kind, "value": str(value).strip()}
    if scope:
        out["scope"] = scope
    return out


def present(*identifiers: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [i for i in identifiers if i is not None]


class MappingError(Exception):
    """One item of a payload cannot become a canonical event: `field` is its path inside the item."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(message)
        self.field = field_path
        self.message = message


def map_items(
    raw_items: list[Any], mapper: Any, *, prefix: str = "batch", id_field: str | None = None, batch: bool = True
) -> Mapped:
    """Run `mapper(item) -> list[event dict]` over every item; a MappingError rejects that item only."""
    items: list[dict[str, Any]] = []
    origins: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(raw_items):
        try:
            mapped = mapper(raw)
            items.extend(mapped)
            origins.extend([index] * len(mapped))
        except MappingError as exc:
            event_id = raw.get(id_field) if id_field and isinstance(raw, dict) else None
            path = ".".join(p for p in (prefix, str(index) if prefix else "", exc.field) if p)
            rejected.append(reject(index, str(event_id) if event_id else None, path or "body", exc.message))
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, OSError) as exc:
            # OSError: datetime.fromtimestamp of a unix time past the platform's range (a 19-digit CreateTime)
            # a payload shape the mapping did not foresee: this item is rejected (and the gap logged), the rest go on
            logger.exception("connector mapping failed on an unforeseen payload shape", item=index)
            event_id = raw.get(id_field) if id_field and isinstance(raw, dict) else None
            path = f"{prefix}.{index}" if prefix else "body"
            rejected.append(reject(index, str(event_id) if event_id else None, path, f"cannot be mapped: {exc}"))
    return Mapped(items=items, origins=origins, rejected=rejected, batch=batch)


def require(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise MappingError(name, f"{name} is required")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MappingError(name, f"{name} must be a {expected}")
    return value


def obj(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A nested object of a channel payload, or {} when absent or not an object."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}
