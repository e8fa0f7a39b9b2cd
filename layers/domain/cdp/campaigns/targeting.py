"""Budget-aware targeting: who a limited budget should reach.

Ranking by response probability spends the budget on people who would have bought anyway. A campaign can instead
rank by expected incremental profit, from an uplift model's score u (the order chance the message adds) and its
`treated` output p (the order chance with the message):

    profit = u x margin - message cost - offer cost x p

(the offer is paid by every treated buyer who uses it, caused or not), and reach the persons with the highest
positive profit the budget pays for. Which ranking a campaign uses is decided by evidence, never by assumption:
`auto` reads the uplift model's held-out comparison on randomized persons (`cdp.models.uplift.compare_rankings`) at
the share of the eligible persons the budget reaches, and falls back to response ranking when uplift is not clearly
better or no comparison is on record. Both rankings' expected incremental conversions and profit are reported side
by side (the dry run and the run's audience manifest).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.errors import NotFoundError
from cdp.models.keys import manifest_key
from cdp.shared.ports import ObjectStore

if TYPE_CHECKING:
    from cdp.campaigns.models import Member

Ranking = Literal["response", "uplift", "auto"]
Used = Literal["response", "uplift"]


class Targeting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ranking: Ranking = Field(
        default="response",
        description="response: by the score model; uplift: by expected incremental profit; auto: as the uplift "
        "model's held-out comparison decides at this campaign's reach",
    )
    uplift_model: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    margin_minor: int = Field(default=0, ge=0, description="the margin one incremental order earns (minor units)")
    offer_cost_minor: int = Field(
        default=0, ge=0, description="what the offer costs the brand when a treated buyer uses it (minor units)"
    )

    @model_validator(mode="after")
    def _uplift_needs(self) -> Targeting:
        if self.ranking != "response" and (self.uplift_model is None or self.margin_minor <= 0):
            raise ValueError(f"ranking {self.ranking} needs uplift_model and a margin_minor above 0")
        return self


class RankingValidation(BaseModel):
    """What the uplift model's held-out randomized persons say at one targeting share."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    model_version: str
    share: float = Field(description="the evaluated share nearest to the campaign's reach")
    preferred: Used
    verdict: str


class RankingOutcome(BaseModel):
    """One ranking's pick under the budget, valued by the uplift model (expectations, not measurements)."""

    model_config = ConfigDict(frozen=True)

    ranking: Used
    persons: int
    expected_incremental_conversions: float
    expected_incremental_profit_minor: float
    without_uplift_score: int = Field(description="picked persons the uplift model has not scored (valued at 0)")


class TargetingReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    requested: Ranking
    used: Used
    reason: str
    reach_share: float = Field(description="share of the eligible persons the budget reaches")
    validation: RankingValidation | None = None
    response: RankingOutcome
    uplift: RankingOutcome


class ValidationSource(Protocol):
    def validation(self, model_name: str, version: str, share: float) -> RankingValidation | None:
        """The held-out comparison of that version at the share nearest to `share` (None: none on record)."""
        ...


def expected_profit(member: Member, targeting: Targeting, message_cost: int) -> float | None:
    """uplift x margin - message cost - offer cost x P(order | treated); None without an uplift score."""
    if member.uplift is None:
        return None
    buys = member.p_treated if member.p_treated is not None else max(member.uplift, 0.0)
    return member.uplift * targeting.margin_minor - message_cost - targeting.offer_cost_minor * buys


def _outcome(ranking: Used, picked: Sequence[Member], targeting: Targeting, message_cost: int) -> RankingOutcome:
    profits = [expected_profit(m, targeting, message_cost) for m in picked]
    return RankingOutcome(
        ranking=ranking,
        persons=len(picked),
        expected_incremental_conversions=round(sum(m.uplift or 0.0 for m in picked), 3),
        expected_incremental_profit_minor=round(sum(-message_cost if p is None else p for p in profits), 1),
        without_uplift_score=sum(1 for p in profits if p is None),
    )


def choose(
    pool: Sequence[Member],
    capacity: int,
    targeting: Targeting,
    message_cost: int,
    response_key: Callable[[Member], Any],
    uplift_version: str | None,
    validations: ValidationSource | None,
) -> tuple[list[Member], TargetingReport]:
    """The persons to reach and why: the response pick (top `capacity` by `response_key`) or the uplift pick (the
    highest positive expected profits, at most `capacity`), as the targeting asks or the evidence decides."""
    response_pick = sorted(pool, key=response_key)[:capacity]
    valued = [(expected_profit(m, targeting, message_cost), m) for m in pool]
    positive = sorted(((p, m) for p, m in valued if p is not None and p > 0), key=lambda pm: (-pm[0], pm[1].person_id))
    uplift_pick = [m for _, m in positive[:capacity]]
    share = min(1.0, capacity / len(pool)) if pool else 0.0
    validation = None
    used: Used
    if targeting.ranking == "response":
        used, reason = "response", "the campaign ranks by response"
    elif uplift_version is None:  # ranking on nothing would send to nobody: say so and rank by response
        used, reason = "response", f"nobody eligible has a {targeting.uplift_model} score: ranking by response"
    elif targeting.ranking == "uplift":
        used, reason = "uplift", "the campaign ranks by expected incremental profit (set in its definition)"
    else:
        model = targeting.uplift_model or ""
        validation = validations.validation(model, uplift_version, share) if validations is not None else None
        if validation is None:
            used = "response"
            reason = f"no held-out comparison on record for {model} {uplift_version}: ranking by response"
        else:
            used, reason = validation.preferred, validation.verdict
    report = TargetingReport(
        requested=targeting.ranking,
        used=used,
        reason=reason,
        reach_share=share,
        validation=validation,
        response=_outcome("response", response_pick, targeting, message_cost),
        uplift=_outcome("uplift", uplift_pick, targeting, message_cost),
    )
    return (uplift_pick if used == "uplift" else response_pick), report


def common_version(versions: Sequence[str]) -> str | None:
    """The version most persons were scored by (a promotion mid-run leaves a few on the previous one)."""
    return Counter(versions).most_common(1)[0][0] if versions else None


# ---- the uplift model's held-out comparison, read from its manifest (no scikit-learn needed) ---------------------


class _Decision(BaseModel):
    share: float
    preferred: Used
    verdict: str


class _Comparison(BaseModel):
    shares: list[_Decision]


class _HeldOut(BaseModel):
    comparison: _Comparison


class _Metrics(BaseModel):
    kind: str
    held_out: _HeldOut | None = None


class _Manifest(BaseModel):
    metrics: _Metrics


class ManifestValidations:
    """`ValidationSource` over the model registry's manifests (`models/{name}/{version}/manifest.json`)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._cache: dict[tuple[str, str], list[_Decision] | None] = {}

    def _decisions(self, model_name: str, version: str) -> list[_Decision] | None:
        key = (model_name, version)
        if key not in self._cache:
            try:
                raw = json.loads(self._store.get_bytes(manifest_key(model_name, version)))
                manifest = _Manifest.model_validate(raw)
            except (NotFoundError, ValueError):  # no such version, or not JSON of a manifest (ValidationError too)
                self._cache[key] = None
            else:
                held_out = manifest.metrics.held_out if manifest.metrics.kind == "uplift" else None
                self._cache[key] = held_out.comparison.shares if held_out else None
        return self._cache[key]

    def validation(self, model_name: str, version: str, share: float) -> RankingValidation | None:
        decisions = self._decisions(model_name, version)
        if not decisions:
            return None
        nearest = min(decisions, key=lambda d: (abs(d.share - share), d.share))
        return RankingValidation(
            model_name=model_name,
            model_version=version,
            share=nearest.share,
            preferred=nearest.preferred,
            verdict=nearest.verdict,
        )
