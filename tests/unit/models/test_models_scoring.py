"""Scoring shards with the in-memory profile fakes: every person once, vectorized predicts, totals that catch gaps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from cdp.errors import InvalidInputError, NotFoundError
from cdp.models.artifact import TrainedModel, unpack
from cdp.models.scoring import (
    SCORING_TASK_ADAPTER,
    PromotedModels,
    ScoreShardRequest,
    ScoreShardResult,
    ScoreSummaryRequest,
    score_shard,
    score_with_latest,
    summarize,
)
from cdp.models.training import FeatureClassifier, TrainRequest, train_model
from tests.fakes.model_histories import CAMPAIGN_ID, DELIVERED_AT, HORIZON, Synthetic
from tests.fakes.model_store import InMemoryModelStore
from tests.fakes.profiles import InMemoryProfiles

NOW = HORIZON + timedelta(days=1)
MODEL = "summer_response"


def profiles_of(data: Synthetic) -> InMemoryProfiles:
    fake = InMemoryProfiles([h.profile for h in data.histories])
    for h in data.histories:
        fake.add_events(h.profile.person_id, list(h.events))
    return fake


@pytest.fixture(scope="module")
def trained(with_signal: Synthetic) -> tuple[bytes, Any]:
    request = TrainRequest(model_name=MODEL, campaign_id=CAMPAIGN_ID, window_days=14, algorithm="logistic_regression")
    return train_model(request, with_signal.histories, HORIZON)


class CountingEstimator:
    """Wraps a fitted estimator and records the batch size of every predict_proba call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        self.calls.append(rows.shape[0])
        return self.inner.predict_proba(rows)  # type: ignore[no-any-return]


def test_shards_score_every_person_once_with_batched_predicts(
    with_signal: Synthetic, trained: tuple[bytes, Any]
) -> None:
    # Given 600 profiles with timelines and a trained model wrapped to count predict calls
    blob, manifest = trained
    profiles = profiles_of(with_signal)
    classifier = unpack(blob, manifest).estimator
    assert isinstance(classifier, FeatureClassifier)
    counting = CountingEstimator(classifier.estimator)
    model = TrainedModel(estimator=FeatureClassifier(counting), manifest=manifest)
    # When both shards of 2 are scored with batches of 128, as of the campaign's send time (what the model predicts)
    results = [
        score_shard(
            ScoreShardRequest(model_names=[MODEL], shard=s, total_shards=2),
            {MODEL: model},
            profiles,
            profiles,
            DELIVERED_AT,
            128,
        )
        for s in (0, 1)
    ]
    # Then every person got exactly one score, written by as few predict calls as the batch size allows
    assert sum(r.scored for r in results) == 600
    assert all(r.model_versions == {MODEL: manifest.version} for r in results)
    assert counting.calls == [128, 128, 44] * 2
    scores = {pid: p.scores[MODEL] for pid, p in profiles.profiles.items()}
    assert len(scores) == 600
    assert all(0.0 <= s.score <= 1.0 and s.scored_at == DELIVERED_AT for s in scores.values())
    # And the scores rank the hidden engagement: the most engaged third outscores the least engaged third
    ranked = sorted(with_signal.engagement, key=with_signal.engagement.__getitem__)
    low = np.mean([scores[p].score for p in ranked[:200]])
    high = np.mean([scores[p].score for p in ranked[-200:]])
    assert high > low + 0.2


def test_empty_shard_scores_nothing(trained: tuple[bytes, Any]) -> None:
    blob, manifest = trained
    result = score_shard(
        ScoreShardRequest(model_names=["m"], shard=0, total_shards=1),
        {"m": unpack(blob, manifest)},
        InMemoryProfiles(),
        InMemoryProfiles(),
        NOW,
    )
    assert result.scored == 0


def test_promoted_models_follow_the_pointer_and_cache_bytes(
    with_signal: Synthetic, trained: tuple[bytes, Any], model_store: InMemoryModelStore
) -> None:
    # Given a store with no promoted version / Then scoring fails clearly
    models = PromotedModels(model_store)
    profiles = profiles_of(with_signal)
    request = ScoreShardRequest(model_names=[MODEL], shard=0, total_shards=50)
    with pytest.raises(NotFoundError, match="no promoted version"):
        score_with_latest(request, models, profiles, profiles, NOW)
    # When a version is promoted and two shards are scored
    blob, manifest = trained
    model_store.save(blob, manifest)
    model_store.promote(manifest.model_name, manifest.version, NOW)
    loads_before = model_store.loads
    for shard in (0, 1):
        score_with_latest(request.model_copy(update={"shard": shard}), models, profiles, profiles, NOW)
    # Then the bytes were loaded and verified once, not per shard
    assert model_store.loads == loads_before + 1


def test_summary_totals_and_catches_missing_or_repeated_shards() -> None:
    def result(shard: int, scored: int, version: str = "v1") -> ScoreShardResult:
        return ScoreShardResult(model_versions={"m": version}, shard=shard, total_shards=3, scored=scored)

    # Given results of all three shards / Then the totals add up
    total = summarize(
        ScoreSummaryRequest(
            action="summarize",
            model_names=["m"],
            total_shards=3,
            results=[result(0, 5), result(2, 1), result(1, 4, "v2")],
        )
    )
    assert (total.scored, total.model_versions) == (10, {"m": ["v1", "v2"]})
    # Given a missing or a repeated shard / Then the run fails instead of reporting a partial total
    for results in ([result(0, 5), result(1, 4)], [result(0, 5), result(1, 4), result(1, 4)]):
        with pytest.raises(InvalidInputError, match="one result per shard"):
            summarize(ScoreSummaryRequest(action="summarize", model_names=["m"], total_shards=3, results=results))


def test_scoring_task_input_parses_by_action() -> None:
    assert isinstance(
        SCORING_TASK_ADAPTER.validate_python({"model_names": ["m"], "shard": 0, "total_shards": 2}), ScoreShardRequest
    )
    summary = SCORING_TASK_ADAPTER.validate_python(
        {"action": "summarize", "model_names": ["m"], "total_shards": 1, "results": []}
    )
    assert isinstance(summary, ScoreSummaryRequest)
    with pytest.raises(ValueError, match="outside"):
        SCORING_TASK_ADAPTER.validate_python({"model_names": ["m"], "shard": 2, "total_shards": 2})
    with pytest.raises(ValueError, match="once"):
        SCORING_TASK_ADAPTER.validate_python({"model_names": ["m", "m"], "shard": 0, "total_shards": 2})
