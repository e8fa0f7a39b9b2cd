"""Port of the campaign's artifact store: JSON documents under `cdp.topology.CAMPAIGNS_PREFIX` (S3 on AWS)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


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


class OfferPlans(Protocol):
    """A run's catalog offers reserved whole at selection and released at its end (cdp.offers.service.RunPlans)."""

    def reserve(self, brand_id: str, run_id: str, offer_ids: Sequence[str], persons: int, now: datetime) -> int: ...

    def release(self, brand_id: str, run_id: str, offer_ids: Sequence[str], now: datetime) -> None: ...
