"""Ports shared across contexts."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from cdp.shared.envelope import Publishable


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        """Publish events; return their bus ids. Raises PublishError when any entry failed."""

    def publish_batches(self, batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[str]:
        """Publish several (events, correlation id) groups; an adapter packs them into as few calls as it can."""
        return [bus_id for events, correlation_id in batches for bus_id in self.publish(events, correlation_id)]


class DeferredPublisher(EventPublisher):
    """Collects what is published while an SQS batch is processed, to publish it all in one go at the end.

    The caller flushes only after every record is processed, and fails the whole batch when the flush fails: the
    records come back, and each is published again on its redelivery (consumers apply each event once).

    What is collected is kept per thread: a handler's module-level collector serves one invocation at a time on
    Lambda, but the local runtime runs a Map's invocations in threads, and each must flush only its own."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def pending(self) -> list[tuple[Sequence[Publishable], str]]:
        found: list[tuple[Sequence[Publishable], str]] | None = getattr(self._local, "pending", None)
        if found is None:
            found = self._local.pending = []
        return found

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        if events:
            self.pending.append((list(events), correlation_id))
        return []

    def flush(
        self,
        target: EventPublisher,
        pack: Callable[[Sequence[tuple[Sequence[Publishable], str]]], Sequence[tuple[Sequence[Publishable], str]]]
        | None = None,
    ) -> int:
        """Publish what was collected through `target` (`pack`ed first: many announcements into fewer entries);
        returns how many were collected."""
        pending = self.pending
        self._local.pending = []
        if pending:
            target.publish_batches(pack(pending) if pack else pending)
        return sum(len(events) for events, _ in pending)


class ObjectStore(ABC):
    """Keys and bytes under one bucket (S3 on AWS)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key under the prefix, sorted."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """An object's bytes; raises NotFoundError when it does not exist."""

    @abstractmethod
    def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        """Write (overwrite) one object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object (no error when it is already gone)."""
