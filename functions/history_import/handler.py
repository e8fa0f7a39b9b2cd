"""Task of the history import state machine: {"action": "plan" | "persons" | "identifiers" | "finish" | "fail", ...}.

Typed errors reach Step Functions as their class name: RetryableError and its subclasses are retried by the ASL;
BadFileError (a file that cannot be imported as a whole) goes straight to the failure path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from cdp.app.history_import import HistoryCommand, HistoryPorts, run_history_command
from cdp.app.tag_engine import tag_rules
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.imports.aws import DynamoProgressStore, S3ImportFiles
from cdp.imports.service import phone_regions
from cdp.observability import logger, metrics, tracer
from cdp.settings import HistoryImportSettings, get_settings
from cdp.shared.time import utc_now
from cdp.tags.dynamodb import DynamoTagStore

_COMMAND: TypeAdapter[Any] = TypeAdapter(HistoryCommand)


@cache
def _ports() -> HistoryPorts:
    s = get_settings(HistoryImportSettings)
    return HistoryPorts(
        files=S3ImportFiles(s.data_bucket),
        progress=DynamoProgressStore(s.ledger_table),
        persons=DynamoIdentityStore(s.profiles_table),
        tag_history=DynamoTagStore(s.profiles_table),
        tag_rules=tag_rules(s.data_bucket),
        region_of=phone_regions(s.default_phone_region),
        bucket=s.data_bucket,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    command = _COMMAND.validate_python(event)
    logger.append_keys(action=command.action, import_id=command.import_id)
    result = run_history_command(command, _ports(), utc_now())
    if command.action == "persons":
        metrics.add_metric(name="HistoryPersonsLoaded", unit="Count", value=result["persons"])
    return result
