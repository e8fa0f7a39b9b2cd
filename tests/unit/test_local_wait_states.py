"""Local Wait states end when their seconds are up, when ended, or when the local clock moves past them."""

from __future__ import annotations

import threading
import time

from cdp_local.runtime.waits import WaitStates


def _waiting(states: WaitStates, arn: str, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=states.wait, args=(arn, seconds, lambda: True), daemon=True)
    thread.start()
    assert states.wait_entered(arn, lambda: False, timeout=5)
    return thread


def test_moving_the_clock_ends_only_the_waits_that_are_up_by_then() -> None:
    # Given two executions waiting 3 days and 10 days
    states = WaitStates()
    short = _waiting(states, "arn:short", 3 * 86_400)
    long = _waiting(states, "arn:long", 10 * 86_400)
    # When the local clock moves 4 days on
    ended = states.end_due(time.time() + 4 * 86_400)
    # Then the 3-day wait ends and the 10-day one keeps waiting
    short.join(timeout=5)
    assert ended == ["arn:short"] and not short.is_alive()
    assert long.is_alive() and states.waiting("arn:long")
    assert states.end_due(time.time() + 11 * 86_400) == ["arn:long"]
    long.join(timeout=5)
    assert not long.is_alive() and not states.waiting("arn:long")
