"""Time helpers: everything is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime


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


def anniversary(born: date, year: int) -> date:
    """A birthday in `year`; 29 February in a common year is the 28th, so a "days before" message is never late."""
    try:
        return born.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def days_to_birthday(born: date, today: date) -> int:
    """Days from `today` to the next birthday (0: today)."""
    this_year = anniversary(born, today.year)
    upcoming = this_year if this_year >= today else anniversary(born, today.year + 1)
    return (upcoming - today).days
