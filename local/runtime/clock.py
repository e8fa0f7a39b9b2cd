"""The local runtime's clock: the wall clock plus an offset that only grows. Firing a schedule at a later time
(`cdp campaign tick --at`, the demo's days) moves it there, so everything handlers stamp from then on (messages,
receipts, entries) carries the simulated time, and time never runs backwards for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from cdp.shared.time import install_clock, to_utc, wall_clock


class LocalClock:
    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return wall_clock() + self._offset

    def advance_to(self, at: datetime) -> None:
        """Move now to `at` when it is later (an earlier `at` leaves the clock where it is)."""
        with self._lock:
            gap = to_utc(at) - self()
            if gap > timedelta(0):
                self._offset += gap

    @property
    def ahead_by(self) -> timedelta:
        return self._offset


@contextmanager
def local_clock(clock: LocalClock) -> Iterator[LocalClock]:
    """Every `utc_now()` in the process reads `clock` while the runtime runs."""
    install_clock(clock)
    try:
        yield clock
    finally:
        install_clock(None)
