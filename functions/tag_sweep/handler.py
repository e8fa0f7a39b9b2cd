"""Scheduled: hourly, refresh every person whose windowed tag, threshold or audience is due to change; nightly with
{"full": true}, every person's tags including the batch-freshness ones (shard/total_shards split it for a Map)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.app.tag_engine import tag_engine
from cdp.observability import logger, metrics, tracer
from cdp.settings import TagSettings, get_settings
from cdp.shared.time import to_utc, utc_now
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.service import TagEngine, sweep


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: datetime | None = Field(default=None, description="ISO time to evaluate at (default: now); for backfills")
    full: bool = Field(default=False, description="every person, batch-freshness tags too (the nightly refresh)")
    shard: int = Field(default=0, ge=0)
    total_shards: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _shard_in_range(self) -> SweepRequest:
        if self.shard >= self.total_shards:
            raise ValueError(f"shard {self.shard} is not below total_shards {self.total_shards}")
        return self


class SweepResult(BaseModel):
    full: bool
    refreshed: int
    changed: int
    changes: int
    failed: int


@cache
def _ports() -> tuple[TagEngine, DynamoTagStore]:
    return tag_engine(get_settings(TagSettings))


def _failed(person_id: str, exc: Exception) -> None:
    logger.warning("tag refresh failed; the next sweep retries", person_id=person_id, error=str(exc))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SweepRequest.model_validate(event or {})
    now = to_utc(request.as_of) if request.as_of else utc_now()
    engine, store = _ports()
    report = sweep(
        engine,
        store,
        store,
        now,
        full=request.full,
        shard=request.shard,
        total_shards=request.total_shards,
        on_error=_failed,
    )
    metrics.add_metric(name="TagsRefreshed", unit="Count", value=report.refreshed)
    if report.failed:
        metrics.add_metric(name="TagRefreshFailures", unit="Count", value=report.failed)
    return SweepResult(
        full=request.full,
        refreshed=report.refreshed,
        changed=report.changed,
        changes=report.changes,
        failed=report.failed,
    ).model_dump()
