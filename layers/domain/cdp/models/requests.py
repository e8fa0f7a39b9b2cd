"""The inputs and outputs of the train function's steps (train, promote, roll back), as the state machine and the
model API send them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from cdp.ingest.events import Token, UtcDatetime
from cdp.models.kinds import Algorithm, ModelKind, ModelName
from cdp.shared.commands import action_discriminator

SeedName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_:.-]{0,127}$")]


def _seed_default() -> list[str | bool]:
    return [True]


class TrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["train"] = "train"
    model_name: ModelName
    kind: ModelKind = Field(
        default="propensity", description="what the model predicts (default: response when campaigns are named)"
    )
    campaign_id: str | None = Field(default=None, min_length=1, max_length=128, description="one campaign (response)")
    campaign_ids: list[Token] = Field(
        default_factory=list, max_length=20, description="response: pooled campaigns; uplift: randomized campaigns"
    )
    window_days: int = Field(default=30, ge=1, le=365, description="the label window (orders within N days)")
    test_fraction: float = Field(default=0.25, ge=0.1, le=0.5)
    seed: int = Field(default=42, ge=0)
    min_auc: float = Field(
        default=0.6, ge=0.0, le=1.0, description="held-out ROC AUC needed for promotion (0 promotes any: smoke runs)"
    )
    horizon: UtcDatetime | None = Field(default=None, description="data horizon; default: the latest event time")
    algorithm: Algorithm | None = Field(default=None, description="skip selection and fit this one")
    seed_tag: SeedName | None = Field(default=None, description="look-alike: the tag (or audience:<id>) of the seed")
    seed_values: list[str | bool] = Field(
        default_factory=_seed_default, max_length=20, description="look-alike: the seed tag's values that make a seed"
    )
    budget_share: float = Field(
        default=0.2, gt=0.0, le=1.0, description="uplift: the share of persons a campaign usually reaches"
    )
    holdout_days: int = Field(default=90, ge=14, le=365, description="clv, next_product: the time-split holdout")
    months: int = Field(default=12, ge=1, le=60, description="clv: months of value")
    margin: float = Field(default=1.0, gt=0.0, le=1.0, description="clv: the share of spend that is margin")
    monthly_discount: float = Field(default=0.01, ge=0.0, le=0.2, description="clv")

    @model_validator(mode="before")
    @classmethod
    def _kind_from_campaigns(cls, data: object) -> object:
        if isinstance(data, dict) and "kind" not in data and (data.get("campaign_id") or data.get("campaign_ids")):
            return {**data, "kind": "response"}
        return data

    @model_validator(mode="after")
    def _needs(self) -> TrainRequest:
        if self.campaign_id and self.campaign_id not in self.campaign_ids:
            object.__setattr__(self, "campaign_ids", [self.campaign_id, *self.campaign_ids])
        if self.kind in ("response", "uplift") and not self.campaign_ids:
            raise ValueError(f"a {self.kind} model names its campaigns (campaign_ids)")
        if self.kind == "lookalike" and not self.seed_tag:
            raise ValueError("a lookalike model names its seed (seed_tag, e.g. value_tier or audience:best_customers)")
        return self


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    kind: str
    version: str
    accepted: bool
    rejected_because: list[str]
    label: str
    metrics: dict[str, object]


class TrainBatchRequest(BaseModel):
    """Several models trained over one read of the histories (the weekly schedule's models, a demo's): each is
    evaluated and saved on its own; the train machine promotes the accepted ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["train_batch"] = "train_batch"
    models: list[TrainRequest] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _distinct(self) -> TrainBatchRequest:
        names = [m.model_name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("each model is named once in a batch")
        return self


class TrainFailure(BaseModel):
    """A model of a batch that this data cannot train (too few rows, no holdout on record): why, with where."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    kind: str
    accepted: Literal[False] = False
    error: str
    location: str | None = None


class TrainBatchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    results: list[TrainResult]
    failures: list[TrainFailure]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["promote"]
    model_name: ModelName
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class PromoteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    promoted_at: datetime
    previous_version: str | None


TrainTask = Annotated[
    Annotated[TrainRequest, Tag("train")]
    | Annotated[TrainBatchRequest, Tag("train_batch")]
    | Annotated[PromoteRequest, Tag("promote")],
    Discriminator(action_discriminator("train")),
]
TRAIN_TASK_ADAPTER: TypeAdapter[TrainRequest | TrainBatchRequest | PromoteRequest] = TypeAdapter(TrainTask)
"""The train function's input: a TrainRequest (`action` may be omitted), a TrainBatchRequest or a PromoteRequest."""
