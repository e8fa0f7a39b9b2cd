"""The names every model module shares: what a model predicts (its kind), its algorithm, its name, its versions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

ModelKind = Literal["response", "propensity", "churn", "uplift", "lookalike", "clv", "next_product"]
"""response: order within N days of a campaign's delivery (pooled over campaigns); propensity: order within N days;
churn: no order within N days (customers); uplift: the order chance a message adds (randomized campaigns);
lookalike: resemblance to a seed audience; clv: purchases, spend and lifetime value; next_product: categories next."""

FEATURE_KINDS: frozenset[str] = frozenset({"response", "propensity", "churn", "uplift", "lookalike"})
"""Kinds that score the point-in-time feature vector (`cdp.models.features.FEATURE_NAMES`)."""

Algorithm = Literal["hist_gradient_boosting", "logistic_regression"]
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ModelName = Annotated[
    str,
    Field(pattern=MODEL_NAME_PATTERN, description="an S3 key segment, and the name rules read its score by"),
]
VERSION_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
"""What `cdp.models.artifact.package` names a version: the training time (UTC, to the second), then the first eight
hex digits of the model's SHA-256."""
ModelVersion = Annotated[str, Field(pattern=VERSION_PATTERN, description="e.g. 20261206T030000Z-1a2b3c4d")]
