"""One line per model version for people: the metric it is judged by, its held-out value, the baseline it had to
beat, the bar, and whether it passed (what the README's results table, the demo and `cdp model` print)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cdp.models.artifact import ModelManifest
from cdp.models.summaries import ClvSummary, LookalikeSummary, NextProductSummary, TrainingSummary, UpliftSummary


class ModelHeadline(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    kind: str
    version: str
    metric: str
    value: float
    interval: tuple[float, float] | None = Field(default=None, description="95%, where the metric has one")
    baseline: str
    baseline_value: float | None
    bar: str
    accepted: bool
    held_out_rows: int
    notes: list[str] = Field(default_factory=list, description="why it was rejected, and warnings about the data")


def headline(manifest: ModelManifest, min_auc: float | None = None) -> ModelHeadline:
    m = manifest.metrics
    base = {
        "model_name": manifest.model_name,
        "kind": manifest.kind,
        "version": manifest.version,
        "accepted": manifest.accepted,
    }
    notes = list(manifest.rejected_because)
    if isinstance(m, TrainingSummary):
        report = m.report
        notes += report.warnings if report else []
        return ModelHeadline(
            **base,
            metric="held-out ROC AUC",
            value=m.held_out.roc_auc,
            interval=(report.auc_low, report.auc_high) if report else None,
            baseline=m.baseline or "none",
            baseline_value=m.baseline_auc,
            bar=f"AUC >= {min_auc:.2f}, above the baseline" if min_auc is not None else "above the baseline",
            held_out_rows=m.held_out.rows,
            notes=notes,
        )
    if isinstance(m, UpliftSummary):
        u = m.held_out
        decision = next((d for d in u.comparison.shares if d.share == u.comparison.budget_share), None)
        if decision is not None:
            notes.append(decision.verdict)
        return ModelHeadline(
            **base,
            metric="held-out Qini coefficient (incremental conversions per person, vs random)",
            value=u.qini_coefficient,
            baseline="response ranking (the same persons' P(order | treated))",
            baseline_value=u.comparison.response_qini,
            bar="Qini > 0; ranking used only where it beats response at the campaign's reach",
            held_out_rows=u.rows,
            notes=notes,
        )
    if isinstance(m, LookalikeSummary):
        lk = m.held_out
        notes += lk.warnings
        return ModelHeadline(
            **base,
            metric="lift of held-back seed members in the top 20%",
            value=lk.spy_lift_top_20,
            baseline="a random pick",
            baseline_value=1.0,
            bar="lift > 1 and seed-vs-unlabeled AUC at the bar",
            held_out_rows=lk.held_out_rows,
            notes=notes,
        )
    if isinstance(m, ClvSummary):
        cv = m.holdout
        return ModelHeadline(
            **base,
            metric=f"mean absolute error of purchases per person in the {cv.holdout_days}-day holdout",
            value=cv.mae,
            baseline="each person keeps their past purchase rate",
            baseline_value=cv.baseline_mae,
            bar="error below the baseline's",
            held_out_rows=cv.persons,
            notes=notes,
        )
    assert isinstance(m, NextProductSummary)
    nb = m.held_out
    notes += nb.warnings
    return ModelHeadline(
        **base,
        metric=f"hit rate@{nb.k} on later purchases",
        value=nb.hit_rate,
        interval=nb.hit_rate_interval,
        baseline="the most popular categories for everyone",
        baseline_value=nb.baseline_hit_rate,
        bar="above the baseline",
        held_out_rows=nb.persons_evaluated,
        notes=notes,
    )
