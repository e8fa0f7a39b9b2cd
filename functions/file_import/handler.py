"""Task of the file import state machine: {"action": "plan" | "chunk" | "finish" | "fail", "import_id", ...}.

Typed errors reach Step Functions as their class name (errorType): RetryableError and its subclasses are retried by
the ASL; BadFileError (a file that cannot be imported as a whole) goes straight to the failure path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from cdp.imports.aws import DynamoProgressStore, S3ImportFiles
from cdp.imports.models import ImportCommand
from cdp.imports.service import ImportPorts, phone_regions, run_command
from cdp.ingest.aws import DynamoDedupeLedger
from cdp.observability import logger, metrics, tracer
from cdp.settings import FileImportSettings, get_settings
from cdp.shared.aws import EventBridgePublisher
from cdp.shared.time import utc_now

_COMMAND: TypeAdapter[ImportCommand] = TypeAdapter(ImportCommand)


@cache
def _ports() -> ImportPorts:
    s = get_settings(FileImportSettings)
    return ImportPorts(
        files=S3ImportFiles(s.data_bucket),
        progress=DynamoProgressStore(s.ledger_table),
        ledger=DynamoDedupeLedger(s.ledger_table),
        publisher=EventBridgePublisher(s.event_bus_name),
        region_of=phone_regions(s.default_phone_region),
        bucket=s.data_bucket,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    command = _COMMAND.validate_python(event)
    logger.append_keys(action=command.action, import_id=command.import_id)
    result = run_command(command, _ports(), utc_now())
    if command.action == "chunk":
        metrics.add_metric(name="ImportRowsAccepted", unit="Count", value=result["accepted"])
        metrics.add_metric(name="ImportRowsRejected", unit="Count", value=result["rejected"])
    return result
