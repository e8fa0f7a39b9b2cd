"""Ports shared across contexts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from cdp.shared.envelope import Publishable


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        """Publish events; return their bus ids. Raises PublishError when any entry failed."""


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
