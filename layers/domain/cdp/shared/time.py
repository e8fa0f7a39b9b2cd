"""Time helpers: everything is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (e.g. 2026-03-01T10:00:00+08:00 or ...Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 and 9999-12-31T23:59-01:00 have no UTC instant
        raise ValueError("timestamp has no UTC equivalent (its offset moves it past year 1 or 9999)") from exc


def iso(value: datetime) -> str:
    """Sortable ISO-8601 UTC with milliseconds and a Z, used in keys."""
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{to_utc(value).microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
