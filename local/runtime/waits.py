"""Step Functions Wait states on a clock the local runtime can move, and execution status without an API round trip.

moto's Wait state sleeps its seconds for real (`WaitFunction._wait_interval`). Here a Wait state waits on
`WaitStates` instead: its seconds pass as before, unless the caller ends the wait first with `end` (time moved on:
what the wait was for has happened, e.g. the synthetic world has answered a campaign's first touch and every reply
has been processed). The state is still entered and exited, and the execution's history records both, exactly as
when its seconds run out. `wait_entered` blocks until an execution sits in a Wait state (or has ended), so a caller
waits on that condition instead of polling the execution history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cdp_local.runtime.moto_guard import Reliance, check

WAITS_RELY_ON = (
    # replaced: it sleeps on env.program_state_event (set by a stop or an error) for the state's seconds
    Reliance(
        "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function:WaitFunction._wait_interval",
        "ac8c4ccf48cd779b",
    ),
    Reliance("moto.stepfunctions.parser.asl.eval.environment:Environment.is_running", "98f2c65fee06a1d9"),
)
STATUS_RELIES_ON = (
    # read, not replaced: the backend that DescribeExecution answers from, and the status it answers
    Reliance("moto.stepfunctions.responses:get_backend", "06e739c26cb65ad7"),
    Reliance("moto.stepfunctions.models:StepFunctionBackend.describe_execution", "ecc3084f26d7e05b"),
    Reliance("moto.stepfunctions.parser.backend.execution:Execution.status", "cdc796c7b87f39bb"),
)
SLICE_S = 0.05  # how soon a waiting state notices a stop (moto's own wait wakes on it at once)


class WaitStates:
    """The Wait states running now, by execution ARN; `end` finishes them before their seconds are up. Their
    seconds pass on `clock` (injectable: a test moves it by hand)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._waiting: dict[str, int] = {}  # execution ARN -> Wait states in progress (a Map may run several)
        self._ended: dict[str, int] = {}  # execution ARN -> generation: bumped by `end`
        self._due: dict[str, list[float]] = {}  # execution ARN -> when (epoch seconds) each of its waits is up

    def wait(self, execution_arn: str, seconds: float, running: Callable[[], bool]) -> None:
        """Wait `seconds`, or until `end(execution_arn)`, or until the execution stops running."""
        deadline = self.clock() + seconds
        due = time.time() + seconds
        with self._cond:
            generation = self._ended.get(execution_arn, 0)
            self._waiting[execution_arn] = self._waiting.get(execution_arn, 0) + 1
            self._due.setdefault(execution_arn, []).append(due)
            self._cond.notify_all()
            try:
                while running() and self._ended.get(execution_arn, 0) == generation:
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        return
                    self._cond.wait(min(remaining, SLICE_S))
            finally:
                self._waiting[execution_arn] -= 1
                self._due[execution_arn].remove(due)
                if not self._waiting[execution_arn]:
                    del self._waiting[execution_arn]
                    del self._due[execution_arn]
                self._cond.notify_all()

    def waiting(self, execution_arn: str) -> bool:
        with self._cond:
            return execution_arn in self._waiting

    def wait_entered(self, execution_arn: str, ended: Callable[[], bool], timeout: float) -> bool:
        """True once the execution sits in a Wait state; False when it ended first or `timeout` ran out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while execution_arn not in self._waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or ended():
                    return False
                self._cond.wait(min(remaining, SLICE_S))
            return True

    def end_due(self, until: float) -> list[str]:
        """End the waits that are up by `until` (epoch seconds): the local clock moved there. Returns their ARNs."""
        with self._cond:
            due = [arn for arn, times in self._due.items() if min(times) <= until]
        for arn in due:
            self.end(arn)
        return due

    def end(self, execution_arn: str) -> bool:
        """Finish the execution's Wait states now (True: there was one). A later Wait state waits as usual."""
        with self._cond:
            found = execution_arn in self._waiting
            self._ended[execution_arn] = self._ended.get(execution_arn, 0) + 1
            self._cond.notify_all()
            return found


def execution_status(execution_arn: str) -> str:
    """The status DescribeExecution would answer, read from moto's backend (the ARN names its region and account):
    no request is signed, dispatched and serialized for it, so a caller can check often (polling through the API
    took the interpreter from the execution's own thread: ~4 ms a call, 20 calls a second)."""
    from moto.stepfunctions.responses import get_backend

    _, _, _, region, account_id, *_ = execution_arn.split(":")
    return str(get_backend(account_id, region).describe_execution(execution_arn).status)


@contextmanager
def wait_states_on(registry: WaitStates) -> Iterator[None]:
    """Route moto's Wait states to `registry` while the context is open."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    check("wait_states", WAITS_RELY_ON + STATUS_RELIES_ON)
    original = WaitFunction._wait_interval

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds <= 0:
            return
        arn = str(env.states.context_object.context_object_data["Execution"]["Id"])
        registry.wait(arn, wait_seconds, env.is_running)

    WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign]
    try:
        yield
    finally:
        WaitFunction._wait_interval = original  # type: ignore[method-assign]
