"""Scheduled (hourly): refresh the tags of every person whose windowed tag or lifecycle stage is due to change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from cdp.observability import logger, metrics, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import TagSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.time import to_utc, utc_now
from cdp.tags.service import refresh_tags


class SweepRequest(BaseModel):
    as_of: str | None = Field(default=None, description="ISO time to evaluate at (default: now); for backfills")


class SweepResult(BaseModel):
    refreshed: int
    changed: int


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SweepRequest.model_validate(event or {})
    now = to_utc(datetime.fromisoformat(request.as_of)) if request.as_of else utc_now()
    settings = get_settings(TagSettings)
    store = DynamoProfileStore(settings.profiles_table)
    publisher = EventBridgePublisher(settings.event_bus_name)
    refreshed = changed = 0
    for person_id in list(store.due_for_tag_refresh(now)):
        refreshed += 1
        changed += bool(refresh_tags(person_id, store, store, publisher, now))
    metrics.add_metric(name="TagsRefreshed", unit="Count", value=refreshed)
    return SweepResult(refreshed=refreshed, changed=changed).model_dump()
