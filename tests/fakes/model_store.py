"""In-memory fake of the model registry port (`cdp.models.ports.ModelStore`), with counters for tests. The S3 adapter
runs the same contract against moto in tests/integration/models."""

from __future__ import annotations

from datetime import datetime

from cdp.errors import NotFoundError
from cdp.models.artifact import LatestPointer, ModelManifest, TrainedModel, unpack
from cdp.models.ports import ModelStore


class InMemoryModelStore(ModelStore):
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
            raise NotFoundError(f"model {model_name} has no version {version}") from None

    def promote(self, model_name: str, version: str, at: datetime, by: str | None = None) -> LatestPointer:
        verified = self.load(model_name, version)
        self.pointers[model_name] = LatestPointer(
            model_name=model_name, version=version, sha256=verified.manifest.sha256, promoted_at=at, promoted_by=by
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

    def list_models(self) -> list[str]:
        return sorted({name for name, _ in self.manifests} | set(self.pointers))

    def versions(self, model_name: str) -> list[str]:
        return sorted(version for name, version in self.manifests if name == model_name)
