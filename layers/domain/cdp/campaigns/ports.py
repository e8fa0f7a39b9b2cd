"""Port of the campaign's artifact store: JSON documents under `cdp.topology.CAMPAIGNS_PREFIX` (S3 on AWS)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from cdp.offers.service import OfferSpend


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
    """A run's catalog offers, and its messages when its budget names a pool, reserved whole at selection and released
    at its end (cdp.offers.service.RunPlans)."""

    def reserve(self, brand_id: str, run_id: str, offer_ids: Sequence[str], persons: int, now: datetime) -> int: ...

    def reserve_messages(self, brand_id: str, run_id: str, pool_id: str, amount_minor: int, now: datetime) -> int: ...

    def pool_problem(self, brand_id: str, pool_id: str, currency: str) -> str | None: ...

    def release(self, brand_id: str, run_id: str, offer_ids: Sequence[str], now: datetime) -> None: ...

    def spent(self, brand_id: str, run_id: str, offer_ids: Sequence[str]) -> list[OfferSpend]: ...
