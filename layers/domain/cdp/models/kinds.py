"""The names every model module shares: what a model predicts (its kind), its algorithm, its name."""

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
ModelName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="an S3 key segment, and the name rules read its score by"),
]
