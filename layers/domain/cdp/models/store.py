"""The model registry in S3: `models/{name}/{version}/{model.joblib,manifest.json}` and `models/{name}/latest.json`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from cdp import topology
from cdp.errors import ModelIntegrityError, NotFoundError, StoreError
from cdp.models.artifact import LatestPointer, ModelManifest, TrainedModel, sha256_hex, unpack
from cdp.models.keys import MANIFEST_FILE, latest_key, manifest_key, model_key
from cdp.models.ports import ModelStore
from cdp.shared import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["ModelStore", "S3ModelStore", "latest_key", "manifest_key", "model_key"]

JsonModelT = TypeVar("JsonModelT", bound=BaseModel)


class S3ModelStore(ModelStore):
    def __init__(self, bucket_name: str, client: S3Client | None = None) -> None:
        self._bucket = bucket_name
        self._s3: S3Client = client or aws.client("s3")

    # ---- raw object access, SDK errors wrapped
    def _get(self, key: str) -> bytes | None:
        return aws.read_object(self._s3, self._bucket, key)

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        aws.write_object(self._s3, self._bucket, key, body, content_type)

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        """(keys, common prefixes) under `prefix`, every page of ListObjectsV2."""
        keys: list[str] = []
        prefixes: list[str] = []
        try:
            paginator = self._s3.get_paginator("list_objects_v2")
            pages = (
                paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter=delimiter)
                if delimiter
                else paginator.paginate(Bucket=self._bucket, Prefix=prefix)
            )
            for page in pages:
                keys += [obj["Key"] for obj in page.get("Contents", [])]
                prefixes += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"list s3://{self._bucket}/{prefix} failed: {exc}") from exc
        return keys, prefixes

    def _get_json(self, key: str, model: type[JsonModelT]) -> JsonModelT | None:
        raw = self._get(key)
        if raw is None:
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise ModelIntegrityError(f"s3://{self._bucket}/{key} is not a valid {model.__name__}: {exc}") from exc

    # ---- the port
    def save(self, blob: bytes, manifest: ModelManifest) -> None:
        if sha256_hex(blob) != manifest.sha256:
            raise ModelIntegrityError(f"refusing to save {manifest.model_name}/{manifest.version}: hash mismatch")
        self._put(model_key(manifest.model_name, manifest.version), blob, "application/octet-stream")
        # the manifest is written last, so a visible manifest always has its bytes beside it
        self._put(
            manifest_key(manifest.model_name, manifest.version),
            manifest.model_dump_json(indent=2).encode(),
            "application/json",
        )

    def manifest(self, model_name: str, version: str) -> ModelManifest:
        found = self._get_json(manifest_key(model_name, version), ModelManifest)
        if found is None:
            raise NotFoundError(f"model {model_name} has no version {version}")
        return found

    def promote(self, model_name: str, version: str, at: datetime, by: str | None = None) -> LatestPointer:
        verified = self.load(model_name, version)  # never point scoring at bytes that do not load
        pointer = LatestPointer(
            model_name=model_name, version=version, sha256=verified.manifest.sha256, promoted_at=at, promoted_by=by
        )
        self._put(latest_key(model_name), pointer.model_dump_json(indent=2).encode(), "application/json")
        return pointer

    def latest(self, model_name: str) -> LatestPointer | None:
        return self._get_json(latest_key(model_name), LatestPointer)

    def load(self, model_name: str, version: str | None = None) -> TrainedModel:
        if version is None:
            pointer = self.latest(model_name)
            if pointer is None:
                raise NotFoundError(f"model {model_name} has no promoted version")
            version = pointer.version
        manifest = self.manifest(model_name, version)
        blob = self._get(model_key(model_name, version))
        if blob is None:
            raise ModelIntegrityError(f"model {model_name}/{version} has a manifest but no model.joblib")
        return unpack(blob, manifest)

    def list_models(self) -> list[str]:
        """The `models/{name}/` prefixes (one ListObjectsV2 walk with a delimiter: names, not their objects)."""
        _, prefixes = self._list(topology.MODELS_PREFIX, delimiter="/")
        return sorted(p[len(topology.MODELS_PREFIX) :].rstrip("/") for p in prefixes)

    def versions(self, model_name: str) -> list[str]:
        """The versions whose manifest is there (a save writes the bytes first, the manifest last)."""
        prefix = f"{topology.MODELS_PREFIX}{model_name}/"
        keys, _ = self._list(prefix)
        found = {
            rest.removesuffix(f"/{MANIFEST_FILE}")
            for rest in (key[len(prefix) :] for key in keys)
            if rest.endswith(f"/{MANIFEST_FILE}") and rest.count("/") == 1
        }
        return sorted(found)
