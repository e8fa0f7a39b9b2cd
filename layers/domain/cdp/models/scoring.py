"""Score one shard of profiles with a promoted model and write each score onto its profile."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from cdp.errors import InvalidInputError, NotFoundError
from cdp.models.artifact import ModelName, Prediction, TrainedModel
from cdp.models.labels import PersonHistory
from cdp.models.ports import ModelStore
from cdp.observability import logger
from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import ProfileAnnotator, ProfileReader, TimelineEntry
from cdp.shared.commands import action_discriminator

BATCH_SIZE = 1000  # rows per predict_proba call: vectorized, yet bounded memory


class ScoreRunRequest(BaseModel):
    """Input of the score state machine (it fans out one ScoreShardRequest per shard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: ModelName
    total_shards: int = Field(ge=1, le=1000)


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


def _batches(
    histories: Iterator[tuple[Profile, list[TimelineEntry]]], size: int
) -> Iterator[list[tuple[Profile, list[TimelineEntry]]]]:
    while batch := list(islice(histories, size)):
        yield batch


def score_shard(
    request: ScoreShardRequest,
    model: TrainedModel,
    reader: ProfileReader,
    annotator: ProfileAnnotator,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> ScoreShardResult:
    """Predictions as of `now` for every profile of the shard, one model call and one `put_scores` per batch."""
    scored = 0
    version = model.manifest.version
    for batch in _batches(reader.scan_with_timelines(request.shard, request.total_shards), batch_size):
        people = [PersonHistory(p, [t.event for t in timeline]) for p, timeline in batch]
        predictions = model.predict_people(people, now)
        annotator.put_scores(
            request.model_name,
            [
                (person.profile, model_score(prediction, version, now))
                for person, prediction in zip(people, predictions, strict=True)
            ],
        )
        scored += len(batch)
    logger.info(
        "shard scored",
        model_name=request.model_name,
        model_version=version,
        shard=request.shard,
        total_shards=request.total_shards,
        scored=scored,
    )
    return ScoreShardResult(
        model_name=request.model_name,
        model_version=version,
        shard=request.shard,
        total_shards=request.total_shards,
        scored=scored,
    )


def model_score(prediction: Prediction, version: str, now: datetime) -> ModelScore:
    return ModelScore(
        score=prediction.score,
        model_version=version,
        scored_at=now,
        outputs=prediction.outputs,
        items=prediction.items,
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


class PromotedModels:
    """Verified models kept between warm invocations. The `latest` pointer is re-read on every call, so a promotion
    takes effect on the next shard without a cold start; the bytes are fetched and hashed once per version."""

    def __init__(self, store: ModelStore, keep: int = 4) -> None:
        self._store = store
        self._keep = keep
        self._loaded: dict[tuple[str, str], TrainedModel] = {}

    def latest(self, model_name: str) -> TrainedModel:
        pointer = self._store.latest(model_name)
        if pointer is None:
            raise NotFoundError(f"model {model_name} has no promoted version: run the train state machine first")
        key = (model_name, pointer.version)
        model = self._loaded.get(key)
        if model is None:
            model = self._store.load(model_name, pointer.version)
            if len(self._loaded) >= self._keep:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = model
        return model


def score_with_latest(
    request: ScoreShardRequest,
    models: PromotedModels,
    reader: ProfileReader,
    annotator: ProfileAnnotator,
    now: datetime,
) -> ScoreShardResult:
    return score_shard(request, models.latest(request.model_name), reader, annotator, now)


ScoringTask = Annotated[
    Annotated[ScoreShardRequest, Tag("score")] | Annotated[ScoreSummaryRequest, Tag("summarize")],
    Discriminator(action_discriminator("score")),
]
SCORING_TASK_ADAPTER: TypeAdapter[ScoreShardRequest | ScoreSummaryRequest] = TypeAdapter(ScoringTask)
"""The scoring function's input: one shard to score (`action` may be omitted) or the Map's results to total."""
