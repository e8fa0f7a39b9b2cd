"""Port of the model registry; the S3 adapter is `cdp.models.store.S3ModelStore`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from cdp.models.artifact import LatestPointer, ModelManifest, TrainedModel


class ModelStore(ABC):
    @abstractmethod
    def save(self, blob: bytes, manifest: ModelManifest) -> None:
        """Store a trained (not yet promoted) version: the bytes first, then its manifest."""

    @abstractmethod
    def manifest(self, model_name: str, version: str) -> ModelManifest:
        """The manifest of one version; NotFoundError when it was never saved."""

    @abstractmethod
    def promote(self, model_name: str, version: str, at: datetime, by: str | None = None) -> LatestPointer:
        """Point `latest` at a saved version (verifies the bytes first); NotFoundError when it does not exist. `by`:
        who did it, recorded in the pointer (None: the train state machine)."""

    @abstractmethod
    def latest(self, model_name: str) -> LatestPointer | None:
        """The promoted version, if any."""

    @abstractmethod
    def load(self, model_name: str, version: str | None = None) -> TrainedModel:
        """A verified model (the promoted one when `version` is None); ModelIntegrityError on a hash mismatch."""

    @abstractmethod
    def list_models(self) -> list[str]:
        """Every model name in the registry (a name with saved versions or a pointer), sorted."""

    @abstractmethod
    def versions(self, model_name: str) -> list[str]:
        """The saved versions of a model (those with a manifest), oldest first; empty for an unknown model."""
