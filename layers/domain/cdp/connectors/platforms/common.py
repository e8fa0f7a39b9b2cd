"""Helpers the platform mappings share: China time, masked values, money, and the per-record mapping loop."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from cdp.connectors.base import MappingError, reject
from cdp.connectors.money import to_minor
from cdp.connectors.platforms.ports import MappedPage

# Both platforms speak Beijing time ("yyyy-MM-dd HH:mm:ss", GMT+8). China has had no DST since 1991, so a fixed
# offset is exact and needs no tz database in the Lambda image.
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
CURRENCY = "CNY"
_LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
_PLAIN_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,19}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")  # what an identifier value may hold


class Skipped(Exception):
    """A record left out on purpose (an unpaid order, a pending refund): counted by reason, never rejected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def local_time(value: datetime) -> str:
    return value.astimezone(CHINA).strftime(_LOCAL_FORMAT)


def parse_local(value: Any, field_path: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise MappingError(field_path, f"{field_path} is required (yyyy-MM-dd HH:mm:ss, Beijing time)")
    try:
        return datetime.strptime(value.strip(), _LOCAL_FORMAT).replace(tzinfo=CHINA)
    except ValueError as exc:
        raise MappingError(field_path, f"{field_path} is not yyyy-MM-dd HH:mm:ss: {value!r}") from exc


def plain_phone(value: Any) -> str | None:
    """The number when it is given in clear; None for a masked (138****1234) or encrypted value, which is no
    identifier of anybody and must never link persons."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text if _PLAIN_PHONE.match(text) else None


def buyer_token(value: Any) -> str | None:
    """A platform buyer id usable as an identifier value (opaque ids with / or = are not)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text if _TOKEN.match(text) else None


def minor(amount: Any, field_path: str) -> int:
    try:
        return to_minor(amount, CURRENCY)
    except ValueError as exc:
        raise MappingError(field_path, str(exc)) from exc


def text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    out = str(value).strip()
    return out[:limit] or None


def as_list(value: Any) -> list[Any]:
    """A list the platforms may wrap ({"order": [...]}) or send as null."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        return inner if isinstance(inner, list) else []
    return []


Mapper = Callable[[dict[str, Any]], list[dict[str, Any]]]


def map_records(records: list[Any], mapper: Mapper, record_id: Callable[[dict[str, Any]], Any]) -> MappedPage:
    """Run `mapper` on each record: a MappingError rejects that record (with its field), `Skipped` counts it."""
    out = MappedPage()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            out.rejected.append(reject(index, None, "record", "each record must be a JSON object"))
            continue
        try:
            events = mapper(record)
        except Skipped as skip:
            out.skipped[skip.reason] += 1
            continue
        except MappingError as exc:
            rid = record_id(record)
            out.rejected.append(reject(index, str(rid) if rid is not None else None, exc.field, exc.message))
            continue
        out.items.extend(events)
        out.origins.extend([index] * len(events))
        for event in events:
            _remember_buyer(event, out.buyers)
    return out


def _remember_buyer(event: dict[str, Any], buyers: dict[str, str]) -> None:
    if event.get("event_type") != "order_placed":
        return
    buyer = next((i["value"] for i in event["identifiers"] if i["type"] == "platform_buyer_id"), None)
    order_id = event["properties"].get("order_id")
    if buyer and order_id:
        buyers[str(order_id)] = str(buyer)
