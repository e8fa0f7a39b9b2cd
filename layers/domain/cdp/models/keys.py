"""Where the registry keeps a model in S3 (no scikit-learn here: readers of manifests import this alone)."""

from __future__ import annotations

from cdp import topology

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest.json"


def _version_prefix(model_name: str, version: str) -> str:
    return f"{topology.MODELS_PREFIX}{model_name}/{version}/"


def model_key(model_name: str, version: str) -> str:
    return _version_prefix(model_name, version) + MODEL_FILE


def manifest_key(model_name: str, version: str) -> str:
    return _version_prefix(model_name, version) + MANIFEST_FILE


def latest_key(model_name: str) -> str:
    return f"{topology.MODELS_PREFIX}{model_name}/{LATEST_FILE}"
