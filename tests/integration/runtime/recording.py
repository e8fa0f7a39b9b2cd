"""A recording fake Lambda handler for the runtime tests."""

from __future__ import annotations

from typing import Any


class Recorder:
    """A handler that records (event, context) and answers with `reply(event)`; raises what `reply` raises."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._reply = reply

    def __call__(self, event: Any, context: Any) -> Any:
        self.calls.append((event, context))
        return self._reply(event) if callable(self._reply) else self._reply

    @property
    def events(self) -> list[Any]:
        return [event for event, _ in self.calls]
