"""Score one shard of profiles with a promoted model and write each score onto its profile."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.errors import InvalidInputError
from cdp.models.artifact import ModelName, TrainedModel
from cdp.models.features import FEATURE_NAMES, feature_vector, features_as_of
from cdp.observability import logger
from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import ProfileAnnotator, ProfileReader

BATCH_SIZE = 1000  # rows per predict_proba call: vectorized, yet bounded memory


class ScoreShardRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["score"] = "score"
    model_name: ModelName
    shard: int = Field(ge=0)
    total_shards: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _shard_in_range(self) -> ScoreShardRequest:
        if self.shard >= self.total_shards:
            raise ValueError(f"shard {self.shard} is outside 0..{self.total_shards - 1}")
        return self


class ScoreShardResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    model_version: str
    shard: int
    total_shards: int
    scored: int


class ScoreSummaryRequest(BaseModel):
    """The last step of the score state machine: the Map's results, one per shard."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["summarize"]
    model_name: ModelName
    total_shards: int = Field(ge=1, le=1000)
    results: list[ScoreShardResult]


class ScoreSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    model_versions: list[str]
    total_shards: int
    scored: int


def _batches(profiles: Iterator[Profile], size: int) -> Iterator[list[Profile]]:
    while batch := list(islice(profiles, size)):
        yield batch


def score_shard(
    request: ScoreShardRequest,
    model: TrainedModel,
    reader: ProfileReader,
    annotator: ProfileAnnotator,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> ScoreShardResult:
    """Features as of `now` for every profile of the shard, one predict call per batch, one score write per person."""
    scored = 0
    for batch in _batches(reader.scan_shard(request.shard, request.total_shards), batch_size):
        rows = np.asarray(
            [feature_vector(features_as_of(p, [t.event for t in reader.timeline(p)], now)) for p in batch],
            dtype=np.float64,
        ).reshape(len(batch), len(FEATURE_NAMES))
        probabilities = np.clip(model.predict(rows), 0.0, 1.0)
        for profile, probability in zip(batch, probabilities, strict=True):
            score = ModelScore(score=float(probability), model_version=model.manifest.version, scored_at=now)
            annotator.put_score(profile.person_id, request.model_name, score)
        scored += len(batch)
    logger.info(
        "shard scored",
        model_name=request.model_name,
        model_version=model.manifest.version,
        shard=request.shard,
        total_shards=request.total_shards,
        scored=scored,
    )
    return ScoreShardResult(
        model_name=request.model_name,
        model_version=model.manifest.version,
        shard=request.shard,
        total_shards=request.total_shards,
        scored=scored,
    )


def summarize(request: ScoreSummaryRequest) -> ScoreSummary:
    """Totals over the shards; fails when a shard is missing or repeated (a silent gap would leave stale scores)."""
    reported = sorted(r.shard for r in request.results)
    if reported != list(range(request.total_shards)):
        raise InvalidInputError(
            f"expected one result per shard 0..{request.total_shards - 1}, got shards {reported}", location="results"
        )
    return ScoreSummary(
        model_name=request.model_name,
        model_versions=sorted({r.model_version for r in request.results}),
        total_shards=request.total_shards,
        scored=sum(r.scored for r in request.results),
    )
