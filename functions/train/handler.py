"""Task of the train state machine: train + evaluate + save a version (`action` "train"), several over one read of the
histories ("train_batch"), or promote one ("promote")."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.models.store import S3ModelStore
from cdp.models.training import (
    TRAIN_TASK_ADAPTER,
    PromoteRequest,
    TrainBatchRequest,
    promote,
    train_and_save,
    train_batch_and_save,
)
from cdp.observability import logger, tracer
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.settings import ModelSettings, get_settings
from cdp.shared.time import utc_now


@cache
def _ports() -> tuple[DynamoProfileStore, S3ModelStore]:
    settings = get_settings(ModelSettings)
    return DynamoProfileStore(settings.profiles_table), S3ModelStore(settings.data_bucket)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = TRAIN_TASK_ADAPTER.validate_python(event)
    profiles, models = _ports()
    if isinstance(request, PromoteRequest):
        return promote(request, models, utc_now()).model_dump(mode="json")
    if isinstance(request, TrainBatchRequest):
        return train_batch_and_save(request, profiles, models, utc_now()).model_dump(mode="json")
    return train_and_save(request, profiles, models, utc_now()).model_dump(mode="json")
