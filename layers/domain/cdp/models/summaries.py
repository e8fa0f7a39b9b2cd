"""What training records about a version in its manifest: per kind, the held-out evaluation, the baseline it had to
beat, and the version it was compared with. Reports and the promotion step read these, never the training rows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.models.evaluation import HeldOutMetrics
from cdp.models.kinds import Algorithm
from cdp.models.lookalike import LookalikeMetrics
from cdp.models.next_product import NextProductMetrics
from cdp.models.report import ClassifierReport
from cdp.models.uplift import UpliftMetrics


class Champion(BaseModel):
    """The promoted version, scored on the new version's held-out rows (so both numbers are comparable)."""

    model_config = ConfigDict(frozen=True)

    version: str
    metric: str
    value: float
    new_value: float
    beaten: bool


class TrainingSummary(BaseModel):
    """A classifier (response, propensity, churn, look-alike): held-out AUC, lift and calibration."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["classifier"] = "classifier"
    algorithm: Algorithm
    candidates_cv_auc: dict[str, float] = Field(description="mean cross-validated AUC of each candidate (train split)")
    train_rows: int
    train_positives: int
    excluded_persons: int
    held_out: HeldOutMetrics
    evaluation: str = Field(default="person split", description="how held-out rows were chosen")
    baseline: str | None = Field(default=None, description="the simple rule the model had to beat")
    baseline_auc: float | None = None
    champion: Champion | None = None
    report: ClassifierReport | None = Field(default=None, description="AUC interval, lift by decile, top features")


class ClvHoldout(BaseModel):
    """BG/NBD + Gamma-Gamma fitted on purchases up to the calibration end, checked on the holdout period after it."""

    model_config = ConfigDict(frozen=True)

    persons: int
    holdout_days: int
    predicted_purchases: float
    actual_purchases: int
    mae: float = Field(description="mean absolute error of each person's purchases in the holdout period")
    baseline_mae: float = Field(description="the same for 'each person keeps their past rate'")
    correlation: float | None = Field(description="Pearson, predicted vs actual purchases per person")
    top_decile_share: float = Field(description="share of holdout purchases made by the top 10% by prediction")
    predicted_spend: float | None = Field(description="Gamma-Gamma's mean spend per purchase of repeat buyers")
    actual_spend: float | None = Field(description="their actual mean spend per purchase in the holdout period")


class ClvSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["clv"] = "clv"
    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float]
    persons: int
    repeat_buyers: int
    months: int
    monthly_discount: float
    margin: float
    holdout: ClvHoldout
    champion: Champion | None = None


class UpliftSummary(BaseModel):
    """An uplift model: Qini and the comparison with response ranking on held-out randomized persons."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["uplift"] = "uplift"
    learner: str = Field(description="learner/algorithm, e.g. two_model/logistic_regression")
    candidates_cv_qini: dict[str, float] = Field(description="mean cross-validated Qini coefficient (train split)")
    train_rows: int
    train_treated: int
    excluded_persons: int
    evaluation: str = Field(default="", description="how the held-out scores were made")
    held_out: UpliftMetrics
    champion: Champion | None = None


class LookalikeSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["lookalike"] = "lookalike"
    held_out: LookalikeMetrics
    champion: Champion | None = None


class NextProductSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["next_product"] = "next_product"
    held_out: NextProductMetrics
    champion: Champion | None = None


ModelMetrics = Annotated[
    TrainingSummary | UpliftSummary | LookalikeSummary | ClvSummary | NextProductSummary,
    Field(discriminator="kind"),
]
