"""Task of the score state machine: score one shard with the promoted model, or total the Map's shard results."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.app.tag_engine import tag_engine
from cdp.models.scoring import SCORING_TASK_ADAPTER, PromotedModels, ScoreSummaryRequest, score_with_latest, summarize
from cdp.models.store import S3ModelStore
from cdp.observability import logger, metrics, tracer
from cdp.settings import ModelSettings, TagSettings, get_settings
from cdp.shared.time import utc_now
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.service import ScoredPersons, TagEngine, refresh_scored


@cache
def _ports() -> tuple[DynamoTagStore, PromotedModels, TagEngine]:
    settings = get_settings(ModelSettings)
    profiles = DynamoTagStore(settings.profiles_table)  # scores on the person, then the tags that read them
    engine, _ = tag_engine(get_settings(TagSettings), store=profiles)
    return profiles, PromotedModels(S3ModelStore(settings.data_bucket)), engine


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SCORING_TASK_ADAPTER.validate_python(event)
    if isinstance(request, ScoreSummaryRequest):
        return summarize(request).model_dump(mode="json")
    profiles, models, engine = _ports()
    now = utc_now()
    scored = ScoredPersons(profiles, engine, now)  # each score written with the predictive tags that read it
    result = score_with_latest(request, models, profiles, scored, now)
    metrics.add_metric(name="ProfilesScored", unit="Count", value=result.scored)
    # persons changed since the scan got their score alone: their tags follow now; nothing reads a score: no cost
    changes = scored.changes + refresh_scored(engine, scored, now)
    metrics.add_metric(name="PredictiveTagChanges", unit="Count", value=changes)
    return result.model_dump(mode="json")
