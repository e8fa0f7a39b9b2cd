"""Where the registry keeps a model in S3 (no scikit-learn here: readers of manifests import this alone)."""

from __future__ import annotations

from cdp import topology


def _version_prefix(model_name: str, version: str) -> str:
    return f"{topology.MODELS_PREFIX}{model_name}/{version}/"


def model_key(model_name: str, version: str) -> str:
    return _version_prefix(model_name, version) + "model.joblib"


def manifest_key(model_name: str, version: str) -> str:
    return _version_prefix(model_name, version) + "manifest.json"


def latest_key(model_name: str) -> str:
    return f"{topology.MODELS_PREFIX}{model_name}/latest.json"
