"""Fixtures of the models unit suite: synthetic histories (built once per session) and an in-memory model store."""

from __future__ import annotations

from datetime import datetime

import pytest

from cdp.errors import NotFoundError
from cdp.models.artifact import LatestPointer, ModelManifest, TrainedModel, unpack
from cdp.models.ports import ModelStore
from tests.fakes.model_histories import Synthetic, synthetic_histories


class InMemoryModelStore(ModelStore):
    """Same contract as S3ModelStore (which the integration suite runs against moto), with counters for tests."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.manifests: dict[tuple[str, str], ModelManifest] = {}
        self.pointers: dict[str, LatestPointer] = {}
        self.loads = 0

    def save(self, blob: bytes, manifest: ModelManifest) -> None:
        self.blobs[(manifest.model_name, manifest.version)] = blob
        self.manifests[(manifest.model_name, manifest.version)] = manifest

    def manifest(self, model_name: str, version: str) -> ModelManifest:
        try:
            return self.manifests[(model_name, version)]
        except KeyError:
            raise NotFoundError(f"{model_name}/{version}") from None

    def promote(self, model_name: str, version: str, at: datetime) -> LatestPointer:
        verified = self.load(model_name, version)
        self.pointers[model_name] = LatestPointer(
            model_name=model_name, version=version, sha256=verified.manifest.sha256, promoted_at=at
        )
        return self.pointers[model_name]

    def latest(self, model_name: str) -> LatestPointer | None:
        return self.pointers.get(model_name)

    def load(self, model_name: str, version: str | None = None) -> TrainedModel:
        self.loads += 1
        if version is None:
            pointer = self.latest(model_name)
            if pointer is None:
                raise NotFoundError(model_name)
            version = pointer.version
        return unpack(self.blobs[(model_name, version)], self.manifest(model_name, version))


@pytest.fixture(scope="session")
def with_signal() -> Synthetic:
    return synthetic_histories(600, seed=11, signal=True)


@pytest.fixture(scope="session")
def without_signal() -> Synthetic:
    return synthetic_histories(600, seed=12, signal=False)


@pytest.fixture
def model_store() -> InMemoryModelStore:
    return InMemoryModelStore()
