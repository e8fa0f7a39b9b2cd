"""Port of the campaign's artifact store: JSON documents under `cdp.topology.CAMPAIGNS_PREFIX` (S3 on AWS)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class ArtifactStore(ABC):
    @abstractmethod
    def put_json(self, key: str, document: Any) -> None:
        """Write one JSON document (overwrites: every campaign artifact is a pure function of its inputs)."""

    @abstractmethod
    def get_json(self, key: str) -> Any:
        """Read one JSON document; raises NotFoundError when the key does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a document exists at the key."""
