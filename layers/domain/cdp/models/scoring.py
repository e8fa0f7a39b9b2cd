"""Score one shard of profiles with the promoted versions of one or more models; each person's scores are written
together, with the tags that read them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from cdp.errors import InvalidInputError, NotFoundError
from cdp.models.artifact import ModelName, Prediction, TrainedModel
from cdp.models.labels import PersonHistory
from cdp.models.ports import ModelStore
from cdp.observability import logger
from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import ProfileAnnotator, ProfileReader, TimelineEntry
from cdp.shared.commands import action_discriminator

BATCH_SIZE = 1000  # rows per predict_proba call: vectorized, yet bounded memory


ModelNames = Annotated[list[ModelName], Field(min_length=1, max_length=10)]


def _distinct(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("each model is named once")
    return names


class ScoreRunRequest(BaseModel):
    """Input of the score state machine (it fans out one ScoreShardRequest per shard): the models scored in one
    pass over the profiles, each person's scores written together."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_names: ModelNames
    total_shards: int = Field(ge=1, le=1000)

    _names = field_validator("model_names")(_distinct)


class ScoreShardRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["score"] = "score"
    model_names: ModelNames
    shard: int = Field(ge=0)
    total_shards: int = Field(ge=1, le=1000)

    _names = field_validator("model_names")(_distinct)

    @model_validator(mode="after")
    def _shard_in_range(self) -> ScoreShardRequest:
        if self.shard >= self.total_shards:
            raise ValueError(f"shard {self.shard} is outside 0..{self.total_shards - 1}")
        return self


class ScoreShardResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_versions: dict[str, str] = Field(description="model -> the version that scored this shard")
    shard: int
    total_shards: int
    scored: int


class ScoreSummaryRequest(BaseModel):
    """The last step of the score state machine: the Map's results, one per shard."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["summarize"]
    model_names: ModelNames
    total_shards: int = Field(ge=1, le=1000)
    results: list[ScoreShardResult]


class ScoreSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_versions: dict[str, list[str]] = Field(description="model -> the versions that scored (one, unless promoted)")
    total_shards: int
    scored: int


def _batches(
    histories: Iterator[tuple[Profile, list[TimelineEntry]]], size: int
) -> Iterator[list[tuple[Profile, list[TimelineEntry]]]]:
    while batch := list(islice(histories, size)):
        yield batch


def score_shard(
    request: ScoreShardRequest,
    models: Mapping[str, TrainedModel],
    reader: ProfileReader,
    annotator: ProfileAnnotator,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> ScoreShardResult:
    """Predictions as of `now` for every profile of the shard: one call per model and batch, then one `put_scores`
    per batch that writes each person's scores of every model together."""
    scored = 0
    chosen = {name: models[name] for name in request.model_names}
    versions = {name: model.manifest.version for name, model in chosen.items()}
    for batch in _batches(reader.scan_with_timelines(request.shard, request.total_shards), batch_size):
        score_people(batch, chosen, annotator, now)
        scored += len(batch)
    logger.info(
        "shard scored",
        model_versions=versions,
        shard=request.shard,
        total_shards=request.total_shards,
        scored=scored,
    )
    return ScoreShardResult(
        model_versions=versions, shard=request.shard, total_shards=request.total_shards, scored=scored
    )


def score_people(
    people: Sequence[tuple[Profile, Sequence[TimelineEntry]]],
    models: Mapping[str, TrainedModel],
    annotator: ProfileAnnotator | None,
    now: datetime,
) -> list[dict[str, ModelScore]]:
    """Each person's score by every model as of `now` (one predict call per model), then one `put_scores` that writes
    each person's scores of every model together (`annotator`: with the predictive tags that read them, when it is
    a `cdp.tags.service.ScoredPersons`); no annotator: predicted only, nothing written. The nightly shards and the
    model API's one person on demand both score through here."""
    histories = [PersonHistory(profile, [t.event for t in timeline]) for profile, timeline in people]
    by_person: list[dict[str, ModelScore]] = [{} for _ in histories]
    for name, model in models.items():
        for scores, prediction in zip(by_person, model.predict_people(histories, now), strict=True):
            scores[name] = model_score(prediction, model.manifest.version, now)
    if annotator is not None and histories:
        annotator.put_scores([(h.profile, scores) for h, scores in zip(histories, by_person, strict=True)])
    return by_person


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
        model_versions={
            name: sorted({r.model_versions[name] for r in request.results if name in r.model_versions})
            for name in request.model_names
        },
        total_shards=request.total_shards,
        scored=sum(r.scored for r in request.results),
    )


class PromotedModels:
    """Verified models kept between warm invocations. The `latest` pointer is re-read on every call, so a promotion
    takes effect on the next shard without a cold start; the bytes are fetched and hashed once per version."""

    def __init__(self, store: ModelStore, keep: int = 10) -> None:
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
    return score_shard(request, {name: models.latest(name) for name in request.model_names}, reader, annotator, now)


ScoringTask = Annotated[
    Annotated[ScoreShardRequest, Tag("score")] | Annotated[ScoreSummaryRequest, Tag("summarize")],
    Discriminator(action_discriminator("score")),
]
SCORING_TASK_ADAPTER: TypeAdapter[ScoreShardRequest | ScoreSummaryRequest] = TypeAdapter(ScoringTask)
"""The scoring function's input: one shard to score (`action` may be omitted) or the Map's results to total."""
