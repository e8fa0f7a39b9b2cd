"""A trained model as bytes plus a manifest, and the integrity checks done before those bytes are unpickled.

The SHA-256 in the manifest guards against truncated or swapped objects, not against an attacker who can write
both files: a version's bytes and manifest must stay writable by the train function only (see
`infra/components/access.py`; the model API writes `latest.json` alone, which names a hash the bytes must match).
"""

from __future__ import annotations

import hashlib
import io
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import joblib
import numpy
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from cdp.errors import ModelIntegrityError
from cdp.models.features import FEATURE_NAMES
from cdp.models.kinds import FEATURE_KINDS, Algorithm, ModelKind, ModelName
from cdp.models.labels import LabelDefinition, PersonHistory
from cdp.models.summaries import ModelMetrics

__all__ = ["Algorithm", "ModelName", "PersonModel", "Prediction", "TrainedModel", "package", "unpack"]


class ModelManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    kind: ModelKind = "response"
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    feature_names: list[str] = Field(description="the inputs, in order (the feature set is versioned with the model)")
    sklearn_version: str
    library_versions: dict[str, str] = Field(
        default_factory=dict, description="numpy, scipy, joblib and Python as trained (scikit-learn above)"
    )
    trained_at: datetime
    label: LabelDefinition
    metrics: ModelMetrics
    accepted: bool
    rejected_because: list[str] = Field(default_factory=list, description="why it was not accepted (plain language)")
    outputs: list[str] = Field(default_factory=list, description="names rules read besides the main score")


class LatestPointer(BaseModel):
    """`models/{name}/latest.json`: the promoted version that scoring loads (readers ignore fields they do not know,
    so `promoted_by` reads alike before and after it was added)."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    sha256: str
    promoted_at: datetime
    promoted_by: str | None = Field(
        default=None, description="the API client that pointed it here (a rollback); None: the train state machine"
    )


@dataclass(frozen=True)
class Prediction:
    """One person's output: the main score, further named numbers, ranked items (see `ModelScore`)."""

    score: float
    outputs: dict[str, float] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)


class PersonModel(Protocol):
    """What every kind's fitted object offers the scorer: predictions for persons as of an instant."""

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]: ...


@dataclass(frozen=True)
class TrainedModel:
    estimator: PersonModel
    manifest: ModelManifest

    def predict_people(self, people: Sequence[PersonHistory], now: datetime) -> list[Prediction]:
        if not people:
            return []
        with threadpool_limits(limits=1):  # Map runs shards side by side: no nested OpenMP pools
            return self.estimator.predict_people(people, now)


def sha256_hex(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def package(
    estimator: PersonModel,
    *,
    model_name: str,
    kind: ModelKind,
    trained_at: datetime,
    label: LabelDefinition,
    metrics: ModelMetrics,
    rejected_because: Sequence[str] = (),
    feature_names: Sequence[str] = FEATURE_NAMES,
    outputs: Sequence[str] = (),
) -> tuple[bytes, ModelManifest]:
    """Serialize a fitted model and describe it; the version is the training time plus a hash prefix. A version is
    accepted when nothing rejected it."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    blob = buffer.getvalue()
    digest = sha256_hex(blob)
    manifest = ModelManifest(
        model_name=model_name,
        kind=kind,
        version=f"{trained_at:%Y%m%dT%H%M%SZ}-{digest[:8]}",
        sha256=digest,
        size_bytes=len(blob),
        feature_names=list(feature_names),
        sklearn_version=sklearn.__version__,
        library_versions=library_versions(),
        trained_at=trained_at,
        label=label,
        metrics=metrics,
        accepted=not rejected_because,
        rejected_because=list(rejected_because),
        outputs=list(outputs),
    )
    return blob, manifest


def library_versions() -> dict[str, str]:
    """What the pickle and the numbers depend on besides scikit-learn (recorded; scikit-learn's is enforced)."""
    return {
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "python": platform.python_version(),
    }


def unpack(blob: bytes, manifest: ModelManifest) -> TrainedModel:
    """Verify the bytes and the runtime against the manifest, then load; raises ModelIntegrityError on any mismatch."""
    actual = sha256_hex(blob)
    if actual != manifest.sha256:
        raise ModelIntegrityError(
            f"model {manifest.model_name}/{manifest.version}: sha256 {actual} does not match manifest {manifest.sha256}"
        )
    if manifest.kind in FEATURE_KINDS and tuple(manifest.feature_names) != FEATURE_NAMES:
        raise ModelIntegrityError(f"model {manifest.model_name}/{manifest.version} was trained on other features")
    if manifest.sklearn_version != sklearn.__version__:
        # joblib pickles are bound to the scikit-learn version: a silent mismatch can mis-score
        raise ModelIntegrityError(
            f"model {manifest.model_name}/{manifest.version} needs scikit-learn {manifest.sklearn_version}, "
            f"runtime has {sklearn.__version__}"
        )
    estimator = joblib.load(io.BytesIO(blob))  # hash verified above
    return TrainedModel(estimator=estimator, manifest=manifest)
