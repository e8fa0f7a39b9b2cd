"""Ports shared across contexts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from cdp.shared.envelope import Publishable


class EventPublisher(ABC):
    @abstractmethod
    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        """Publish events; return their bus ids. Raises PublishError when any entry failed."""
