"""Time helpers: everything is timezone-aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


_clock: Clock = wall_clock


def utc_now() -> datetime:
    """Now, as every handler and default reads it: the wall clock on AWS; in the local runtime, its clock (one that
    `tick --at` moves ahead, so a 30-day journey runs in seconds and what handlers stamp agrees with it)."""
    return _clock()


def wire_now() -> datetime:
    """The wall clock, for what is checked against a sender's clock (signature replay windows): the same as
    `utc_now()` on AWS; in the local runtime it does not move with the simulated time, so a client signing with
    real time is still let in after `tick --at` moved the business clock ahead."""
    return wall_clock()


def install_clock(clock: Clock | None) -> None:
    """Make `clock` the process's (None: the wall clock again). Only the local runtime and tests call this."""
    global _clock
    _clock = clock or wall_clock


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
