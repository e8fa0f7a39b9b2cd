"""A trained model as bytes plus a manifest, and the integrity checks done before those bytes are unpickled.

The SHA-256 in the manifest guards against truncated or swapped objects, not against an attacker who can write
both files: the models prefix must stay writable by the train function only (see the CDK construct).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import joblib
import numpy as np
import sklearn
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from cdp.errors import ModelIntegrityError
from cdp.models.evaluation import HeldOutMetrics
from cdp.models.features import FEATURE_NAMES
from cdp.models.labels import LabelDefinition

Algorithm = Literal["hist_gradient_boosting", "logistic_regression"]
ModelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="an S3 key segment")]


class TrainingSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    algorithm: Algorithm
    candidates_cv_auc: dict[str, float] = Field(description="mean cross-validated AUC of each candidate (train split)")
    train_rows: int
    train_positives: int
    excluded_persons: int
    held_out: HeldOutMetrics


class ModelManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    feature_names: list[str]
    sklearn_version: str
    trained_at: datetime
    label: LabelDefinition
    metrics: TrainingSummary
    accepted: bool


class LatestPointer(BaseModel):
    """`models/{name}/latest.json`: the promoted version that scoring loads."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    sha256: str
    promoted_at: datetime


@dataclass(frozen=True)
class TrainedModel:
    estimator: Any  # a fitted scikit-learn classifier with predict_proba
    manifest: ModelManifest

    def predict(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of the positive class for each row (columns in FEATURE_NAMES order)."""
        if rows.shape[0] == 0:
            return np.zeros(0)
        with threadpool_limits(limits=1):  # Map runs shards side by side: no nested OpenMP pools
            return np.asarray(self.estimator.predict_proba(rows)[:, 1], dtype=np.float64)


def sha256_hex(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def package(
    estimator: Any,
    *,
    model_name: str,
    trained_at: datetime,
    label: LabelDefinition,
    metrics: TrainingSummary,
    accepted: bool,
) -> tuple[bytes, ModelManifest]:
    """Serialize a fitted estimator and describe it; the version is the training time plus a hash prefix."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    blob = buffer.getvalue()
    digest = sha256_hex(blob)
    manifest = ModelManifest(
        model_name=model_name,
        version=f"{trained_at:%Y%m%dT%H%M%SZ}-{digest[:8]}",
        sha256=digest,
        size_bytes=len(blob),
        feature_names=list(FEATURE_NAMES),
        sklearn_version=sklearn.__version__,
        trained_at=trained_at,
        label=label,
        metrics=metrics,
        accepted=accepted,
    )
    return blob, manifest


def unpack(blob: bytes, manifest: ModelManifest) -> TrainedModel:
    """Verify the bytes and the runtime against the manifest, then load; raises ModelIntegrityError on any mismatch."""
    actual = sha256_hex(blob)
    if actual != manifest.sha256:
        raise ModelIntegrityError(
            f"model {manifest.model_name}/{manifest.version}: sha256 {actual} does not match manifest {manifest.sha256}"
        )
    if tuple(manifest.feature_names) != FEATURE_NAMES:
        raise ModelIntegrityError(f"model {manifest.model_name}/{manifest.version} was trained on other features")
    if manifest.sklearn_version != sklearn.__version__:
        # joblib pickles are bound to the scikit-learn version: a silent mismatch can mis-score
        raise ModelIntegrityError(
            f"model {manifest.model_name}/{manifest.version} needs scikit-learn {manifest.sklearn_version}, "
            f"runtime has {sklearn.__version__}"
        )
    estimator = joblib.load(io.BytesIO(blob))  # hash verified above
    return TrainedModel(estimator=estimator, manifest=manifest)
