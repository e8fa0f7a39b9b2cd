"""Every model kind end to end on one synthetic bakery brand whose truth is known (`tests.fakes.retail_world`):
trained through `train_model`, judged on held-out data, accepted or rejected for the right reasons, round-tripped
through `unpack`, scored shard by shard onto profiles, and checked against what the world really holds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from cdp.errors import InvalidInputError
from cdp.models import uplift_training
from cdp.models.artifact import ModelManifest, TrainedModel, unpack
from cdp.models.labels import LabelMode, PersonHistory
from cdp.models.scoring import ScoreShardRequest, score_shard
from cdp.models.summaries import ClvSummary, LookalikeSummary, NextProductSummary, TrainingSummary, UpliftSummary
from cdp.models.training import PromoteRequest, TrainRequest, build_labels, promote, train_and_save, train_model
from cdp.profile.models import ModelScore
from tests.fakes.model_store import InMemoryModelStore
from tests.fakes.profiles import InMemoryProfiles
from tests.fakes.retail_world import (
    CATEGORIES,
    HORIZON,
    RESPONSE_WINDOW_DAYS,
    SPRING,
    VALENTINE,
    VALUE_TIER,
    XMAS,
    RetailWorld,
    retail_world,
    shuffle_campaign_outcomes,
)

NOW = HORIZON  # scoring runs at the data horizon: the truth's "now"
CAMPAIGNS = [XMAS.campaign_id, VALENTINE.campaign_id]


@dataclass(frozen=True)
class Trained:
    blob: bytes
    manifest: ModelManifest
    model: TrainedModel  # unpacked from the bytes, as scoring loads it


@pytest.fixture(scope="module")
def world() -> RetailWorld:
    return retail_world()


def train(world: RetailWorld, **fields: object) -> Trained:
    request = TrainRequest.model_validate({"horizon": HORIZON, **fields})
    blob, manifest = train_model(request, world.histories, NOW)
    model = unpack(blob, manifest)
    assert model.manifest == manifest and manifest.kind == request.kind
    return Trained(blob, manifest, model)


def profiles_of(histories: list[PersonHistory]) -> InMemoryProfiles:
    profiles = InMemoryProfiles([h.profile for h in histories])
    for h in histories:
        profiles.add_events(h.profile.person_id, list(h.events))
    return profiles


def score_all(world: RetailWorld, trained: Trained) -> dict[str, ModelScore]:
    """Both shards of two scored with the unpacked model; every person's score as written on their profile."""
    profiles = profiles_of(world.histories)
    name = trained.manifest.model_name
    results = [
        score_shard(
            ScoreShardRequest(model_names=[name], shard=s, total_shards=2),
            {name: trained.model},
            profiles,
            profiles,
            NOW,
        )
        for s in (0, 1)
    ]
    assert sum(r.scored for r in results) == len(world.histories)
    assert all(r.model_versions == {name: trained.manifest.version} for r in results)
    scores = {pid: p.scores[name] for pid, p in profiles.profiles.items()}
    assert len(scores) == len(world.histories)
    assert all(s.model_version == trained.manifest.version and s.scored_at == NOW for s in scores.values())
    return scores


def delivered(world: RetailWorld, campaign_id: str) -> int:
    return sum(
        any(
            e.event_type == "message_delivered"
            and e.properties.campaign_id == campaign_id
            and e.properties.status == "delivered"
            for e in h.events
        )
        for h in world.histories
    )


def mean(values: list[float]) -> float:
    return float(np.mean(values))


# ---- the world --------------------------------------------------------------------------------------------------


def test_the_world_holds_what_the_tests_rely_on(world: RetailWorld) -> None:
    truth = list(world.truth.values())
    n = len(truth)
    assert n == 1500
    assert 0.25 < sum(t.persuadable for t in truth) / n < 0.35
    customers = [t for t in truth if t.customer]
    assert 0.3 < sum(not t.alive for t in customers) / len(customers) < 0.7  # many have silently stopped buying
    # the value tier is on the profiles of the top spenders; the hidden look-alikes are untagged, recent joiners
    tagged = {h.profile.person_id for h in world.histories if VALUE_TIER in h.profile.tags}
    assert tagged == {t.person_id for t in truth if t.tagged} and len(tagged) == 120
    lookalikes = [t for t in truth if t.lookalike]
    assert len(lookalikes) >= 40
    assert all(
        t.segment == "high_value" and not t.tagged and t.joined > HORIZON - timedelta(days=100) for t in lookalikes
    )
    # randomized campaigns: about half of the assigned were held out; the spring launch held out nobody
    for campaign in (XMAS, VALENTINE):
        groups = [t.treated[campaign.campaign_id] for t in truth if campaign.campaign_id in t.treated]
        assert len(groups) > 1100 and 0.45 < sum(groups) / len(groups) < 0.55
    assert all(SPRING.campaign_id not in t.treated for t in truth)
    assert max(e.occurred_at for h in world.histories for e in h.events) <= HORIZON


# ---- response, pooled over two campaigns --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def response(world: RetailWorld) -> Trained:
    return train(world, model_name="cake_response", campaign_ids=CAMPAIGNS, window_days=RESPONSE_WINDOW_DAYS)


def test_pooled_response_trains_on_the_earlier_campaign_and_is_tested_on_the_later(
    world: RetailWorld, response: Trained
) -> None:
    # Given two cake campaigns / When a response model is trained on both
    manifest = response.manifest
    metrics = manifest.metrics
    assert isinstance(metrics, TrainingSummary)
    # Then it is a time split: the Christmas rows train it, the Valentine's rows (all of them, none seen) test it
    assert metrics.evaluation == "time split: trained on campaigns xmas_cakes, tested on the latest (valentine_cakes)"
    assert metrics.train_rows == delivered(world, XMAS.campaign_id)
    assert metrics.held_out.rows == delivered(world, VALENTINE.campaign_id)
    assert manifest.label.mode is LabelMode.CAMPAIGN_RESPONSE and manifest.label.campaign_ids == CAMPAIGNS
    # And it ranks the later campaign's buyers well, better than recency alone, so it is accepted
    assert metrics.held_out.roc_auc > 0.75
    assert metrics.baseline_auc is not None and metrics.held_out.roc_auc > metrics.baseline_auc
    assert manifest.accepted and manifest.rejected_because == []


def test_response_rows_are_taken_before_the_campaign_touched_anyone(world: RetailWorld) -> None:
    # Given campaigns that assigned their persons an hour before delivering / When response rows are built
    request = TrainRequest(model_name="cake_response", campaign_ids=CAMPAIGNS, window_days=14, horizon=HORIZON)
    labeled = build_labels(request, world.histories)
    # Then each row's features are as of the assignment (the campaign's own record is not a feature), while the label
    # still counts orders from the delivery on
    assert {(ex.group, ex.as_of) for ex in labeled.examples} == {
        (c.campaign_id, c.sent_at - timedelta(hours=1)) for c in (XMAS, VALENTINE)
    }


def test_response_scores_are_probabilities_that_favour_live_customers(world: RetailWorld, response: Trained) -> None:
    # When every person is scored now, before any new campaign picked them
    scores = score_all(world, response)
    assert all(0.0 <= s.score <= 1.0 and s.outputs == {} and s.items == [] for s in scores.values())
    # Then the scores sit near the response rate the campaigns had (not pushed to 1 by features training never saw)
    metrics = response.manifest.metrics
    assert isinstance(metrics, TrainingSummary)
    assert abs(mean([s.score for s in scores.values()]) - metrics.held_out.base_rate) < 0.1
    # And live customers are likelier to buy than those who have silently stopped
    alive = [scores[p].score for p in world.persons(lambda t: t.alive)]
    lapsed = [scores[p].score for p in world.persons(lambda t: t.customer and not t.alive)]
    assert mean(alive) > mean(lapsed) + 0.1


# ---- churn -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn(world: RetailWorld) -> Trained:
    return train(world, model_name="churn", kind="churn", window_days=30)


def test_churn_is_a_time_split_and_beats_recency(churn: Trained) -> None:
    manifest = churn.manifest
    metrics = manifest.metrics
    assert isinstance(metrics, TrainingSummary)
    earlier, latest = HORIZON - timedelta(days=60), HORIZON - timedelta(days=30)
    assert metrics.evaluation.startswith(
        f"time split: trained on rows as of {earlier:%Y-%m-%d}, tested on rows as of {latest:%Y-%m-%d}"
    )
    assert manifest.label.mode is LabelMode.CHURN and manifest.label.cutoff == latest
    assert metrics.held_out.roc_auc > 0.75
    assert metrics.baseline_auc is not None and metrics.held_out.roc_auc > metrics.baseline_auc
    assert manifest.accepted


def test_truly_lapsed_customers_score_higher_churn(world: RetailWorld, churn: Trained) -> None:
    scores = score_all(world, churn)
    lapsed = [scores[p].score for p in world.persons(lambda t: t.customer and not t.alive)]
    alive = [scores[p].score for p in world.persons(lambda t: t.alive)]
    assert mean(lapsed) > mean(alive) + 0.15
    assert roc_auc_score([1] * len(lapsed) + [0] * len(alive), lapsed + alive) > 0.7


# ---- uplift ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uplift(world: RetailWorld) -> Trained:
    return train(world, model_name="cake_uplift", kind="uplift", campaign_ids=CAMPAIGNS, window_days=14)


def test_uplift_has_a_positive_held_out_qini_and_a_comparison_with_response_ranking(
    world: RetailWorld, uplift: Trained
) -> None:
    manifest = uplift.manifest
    metrics = manifest.metrics
    assert isinstance(metrics, UpliftSummary)
    held_out = metrics.held_out
    # Then the held-out scores are of randomized persons of both campaigns (however the trainer holds them out)
    assigned = sum(len(t.treated) for t in world.truth.values())
    assert metrics.train_rows <= assigned and held_out.rows <= assigned
    assert held_out.treated_rows + held_out.control_rows == held_out.rows > 500
    # And the message really adds orders there, the model targets them better than random, and says how it compares
    assert held_out.ate > 0.05
    assert held_out.qini_coefficient > 0
    comparison = held_out.comparison
    assert comparison.budget_share == 0.2 and comparison.preferred in ("uplift", "response")
    assert math.isfinite(comparison.response_qini) and comparison.uplift_qini == pytest.approx(
        held_out.qini_coefficient
    )
    assert [s.share for s in comparison.shares] == [0.1, 0.2, 0.3, 0.5]
    assert manifest.accepted and manifest.outputs == ["treated", "control"]


def test_uplift_scores_follow_the_true_uplift(world: RetailWorld, uplift: Trained) -> None:
    scores = score_all(world, uplift)
    ids = sorted(scores)
    score = np.array([scores[p].score for p in ids])
    treated = np.array([scores[p].outputs["treated"] for p in ids])
    control = np.array([scores[p].outputs["control"] for p in ids])
    true_uplift = np.array([world.truth[p].uplift for p in ids])
    assert np.allclose(control, np.clip(treated - score, 0.0, 1.0))
    assert spearmanr(score, true_uplift).statistic > 0.3
    # And targeting the top 20% by uplift reaches more true uplift than targeting by the chance to buy when treated
    top = len(ids) // 5
    by_uplift = true_uplift[np.argsort(-score, kind="stable")[:top]].mean()
    by_response = true_uplift[np.argsort(-treated, kind="stable")[:top]].mean()
    assert by_uplift > by_response


def test_a_person_in_both_campaigns_is_never_on_both_sides_of_the_cross_fit(
    world: RetailWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the uplift trainer's folds observed as they split (persons assigned in both campaigns have two rows)
    seen: list[tuple[set[str], set[str]]] = []

    class Observed(uplift_training.StratifiedGroupKFold):
        def split(self, x: Any, y: Any = None, groups: Any = None) -> Any:
            for fit, held in super().split(x, y, groups):
                seen.append((set(groups[fit]), set(groups[held])))
                yield fit, held

    monkeypatch.setattr(uplift_training, "StratifiedGroupKFold", Observed)
    # When an uplift model is trained on both campaigns
    train(world, model_name="cake_uplift", kind="uplift", campaign_ids=CAMPAIGNS, window_days=14)
    # Then no person trains the learner that scores them
    assert seen and all(fit.isdisjoint(held) for fit, held in seen)
    assert sum(len(held) for _, held in seen) == len(set().union(*(held for _, held in seen)))


def test_uplift_of_a_campaign_without_holdout_is_refused(world: RetailWorld) -> None:
    with pytest.raises(InvalidInputError, match="no randomized holdout") as raised:
        train(world, model_name="spring_uplift", kind="uplift", campaign_ids=[SPRING.campaign_id], window_days=14)
    assert raised.value.location == "campaign_ids" and "0 held out" in raised.value.message


# ---- look-alike --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lookalike(world: RetailWorld) -> Trained:
    return train(world, model_name="high_value_lookalike", kind="lookalike", seed_tag=VALUE_TIER, seed_values=["high"])


def test_lookalike_finds_the_untagged_look_alikes(world: RetailWorld, lookalike: Trained) -> None:
    manifest = lookalike.manifest
    metrics = manifest.metrics
    assert isinstance(metrics, LookalikeSummary)
    assert metrics.held_out.seed_rows == 120 and manifest.label.seed == "value_tier in high"
    assert metrics.held_out.roc_auc_seed_vs_unlabeled > 0.9 and metrics.held_out.spy_lift_top_20 > 2
    assert manifest.accepted
    scores = score_all(world, lookalike)
    assert all(0.0 <= s.score <= 1.0 and s.outputs == {} for s in scores.values())
    untagged = world.persons(lambda t: not t.tagged)
    truth = [world.truth[p].lookalike for p in untagged]
    assert roc_auc_score(truth, [scores[p].score for p in untagged]) > 0.7


def test_lookalike_without_seed_tag_is_refused() -> None:
    with pytest.raises(ValidationError, match="seed_tag"):
        TrainRequest(model_name="lookalike", kind="lookalike")


# ---- lifetime value ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clv(world: RetailWorld) -> Trained:
    return train(world, model_name="clv", kind="clv", margin=0.4)


def test_clv_fits_sensible_parameters_and_beats_the_past_rate(clv: Trained) -> None:
    metrics = clv.manifest.metrics
    assert isinstance(metrics, ClvSummary)
    params = {**metrics.bgnbd, **metrics.gamma_gamma}
    assert set(params) == {"r", "alpha", "a", "b", "p", "q", "gamma"}
    assert all(math.isfinite(v) and v > 0 for v in params.values())
    holdout = metrics.holdout
    assert holdout.holdout_days == 90 and holdout.mae < holdout.baseline_mae
    assert clv.manifest.accepted and clv.manifest.outputs == ["p_alive", "purchases_90d", "spend"]


def test_clv_scores_customers_and_knows_who_is_alive(world: RetailWorld, clv: Trained) -> None:
    scores = score_all(world, clv)
    # Then persons who never ordered have no value and no outputs
    never = world.persons(lambda t: not t.customer)
    assert never and all(scores[p].score == 0.0 and scores[p].outputs == {} for p in never)
    # And customers carry the three outputs rules read as clv.<output>
    customers = world.persons(lambda t: t.customer)
    assert all(
        set(scores[p].flat("clv")) == {"clv", "clv.p_alive", "clv.purchases_90d", "clv.spend"} for p in customers
    )
    alive = [scores[p].outputs["p_alive"] for p in world.persons(lambda t: t.alive)]
    lapsed = [scores[p].outputs["p_alive"] for p in world.persons(lambda t: t.customer and not t.alive)]
    assert mean(lapsed) < mean(alive) - 0.15
    # And the purchases it expects in the next 90 days (never in the data) match what the world goes on to do
    expected = np.array([scores[p].outputs["purchases_90d"] for p in customers])
    actual = np.array([world.truth[p].future_purchases for p in customers])
    assert np.corrcoef(expected, actual)[0, 1] > 0.5
    assert 0.75 < expected.sum() / actual.sum() < 1.25


# ---- next best product -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def next_product(world: RetailWorld) -> Trained:
    return train(world, model_name="next_product", kind="next_product")


def test_next_product_beats_most_popular_and_lists_three_categories(world: RetailWorld, next_product: Trained) -> None:
    metrics = next_product.manifest.metrics
    assert isinstance(metrics, NextProductSummary)
    held_out = metrics.held_out
    # Then out of time (fitted before the last 90 days, judged on them) it hits more persons than most-popular
    assert held_out.horizon_days == 90 and held_out.persons_evaluated > 300
    assert held_out.hit_rate > held_out.baseline_hit_rate
    assert held_out.precision_at_k > held_out.baseline_precision_at_k
    assert next_product.manifest.accepted
    scores = score_all(world, next_product)
    assert all(len(s.items) == 3 and len(set(s.items)) == 3 for s in scores.values())
    assert all(set(s.items) <= set(CATEGORIES) and 0.0 <= s.score <= 1.0 for s in scores.values())
    # And persons who never ordered get the most popular categories, the rest their own: their hidden favourite
    never = world.persons(lambda t: not t.customer)
    popular = scores[never[0]].items
    assert "bread" in popular and all(scores[p].items == popular for p in never)
    customers = [world.truth[p] for p in world.persons(lambda t: t.customer)]
    favourite_listed = mean([float(t.favorite in scores[t.person_id].items) for t in customers])
    favourite_popular = mean([float(t.favorite in popular) for t in customers])
    assert favourite_listed > 0.6 and favourite_listed > 2 * favourite_popular


# ---- retrains against the promoted version -----------------------------------------------------------------------


def test_retrains_are_judged_against_the_promoted_version_on_rows_it_never_saw(
    world: RetailWorld, model_store: InMemoryModelStore
) -> None:
    # Given a response model trained just before Valentine's day (on the Christmas campaign alone), and promoted
    fields: dict[str, object] = {"model_name": "cake_response", "campaign_ids": CAMPAIGNS, "window_days": 14}
    before = VALENTINE.sent_at - timedelta(hours=2)
    first = train_and_save(
        TrainRequest.model_validate({**fields, "horizon": before}),
        profiles_of(world.until(before)),
        model_store,
        before,
    )
    assert first.accepted and str(first.metrics["evaluation"]).startswith("person split")
    promote(PromoteRequest(action="promote", model_name="cake_response", version=first.version), model_store, before)

    # When it is retrained after Valentine's day on what really happened
    request = TrainRequest.model_validate({**fields, "horizon": HORIZON})
    fair = train_and_save(request, profiles_of(world.histories), model_store, NOW)
    # Then both versions are scored on the Valentine's rows (all after the promoted version's data), and it holds up
    metrics = model_store.manifest("cake_response", fair.version).metrics
    assert isinstance(metrics, TrainingSummary) and metrics.champion is not None
    assert metrics.champion.version == first.version
    assert f"({delivered(world, VALENTINE.campaign_id)} rows)" in metrics.champion.metric
    assert metrics.champion.new_value == pytest.approx(metrics.held_out.roc_auc)
    assert metrics.champion.beaten and fair.accepted

    # When it is retrained instead where the Christmas outcomes (its training labels) were shuffled among the
    # recipients, with no bar of its own (min_auc 0), so only the promoted version can stand in its way
    shuffled = shuffle_campaign_outcomes(world.histories, XMAS.campaign_id, 14, seed=5)
    later = NOW + timedelta(hours=1)
    worse = train_and_save(request.model_copy(update={"min_auc": 0.0}), profiles_of(shuffled), model_store, later)
    # Then it is saved but rejected: the promoted version ranks the same Valentine's rows far better
    metrics = model_store.manifest("cake_response", worse.version).metrics
    assert isinstance(metrics, TrainingSummary) and metrics.champion is not None
    assert metrics.champion.version == first.version and not metrics.champion.beaten
    assert metrics.champion.value > metrics.held_out.roc_auc + 0.15
    assert worse.rejected_because == [
        f"held-out AUC {metrics.held_out.roc_auc:.3f} is below the promoted version's {metrics.champion.value:.3f} "
        "(on the held-out rows after its data)"
    ]
    with pytest.raises(InvalidInputError, match="not accepted"):
        promote(PromoteRequest(action="promote", model_name="cake_response", version=worse.version), model_store, later)

    # When the fair version is promoted and the model is retrained on the very same data
    promote(PromoteRequest(action="promote", model_name="cake_response", version=fair.version), model_store, later)
    again = train_and_save(request, profiles_of(world.histories), model_store, later + timedelta(hours=1))
    # Then it is not judged against a version refitted on its held-out rows (that one would look better than it is)
    metrics = model_store.manifest("cake_response", again.version).metrics
    assert isinstance(metrics, TrainingSummary) and metrics.champion is None
    assert again.accepted
