"""Scheduled nightly with `{}` (every brand, from each one's watermark); by hand `{"brand_id": ..., "since":
"YYYY-MM-DD"}`: profiles, tags and events as Parquet under warehouse/ (see `cdp.warehouse.service`).

A failed run raises (the schedule's retries, then its failure queue): nothing is half-moved, since each partition's
new files are uploaded before the old ones go and the watermark moves last; a re-run rewrites the same days.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cdp.observability import logger, metrics, tracer
from cdp.org import load_org
from cdp.settings import WarehouseExportSettings, get_settings
from cdp.shared.time import utc_now
from cdp.warehouse.aws import DynamoWarehouseSource, S3WarehouseObjects
from cdp.warehouse.parquet import DuckDbTableWriter
from cdp.warehouse.service import ExportRequest, export_warehouse

DUCKDB_MEMORY_SHARE = 0.6  # of the function's memory: the rest is Python (the scan's items) and the SDK


@cache
def _ports() -> tuple[DynamoWarehouseSource, S3WarehouseObjects]:
    s = get_settings(WarehouseExportSettings)
    return DynamoWarehouseSource(s.profiles_table), S3WarehouseObjects(s.data_bucket)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ExportRequest.model_validate(event or {})
    source, objects = _ports()
    objects.requests.clear()
    with tempfile.TemporaryDirectory(prefix="warehouse-") as work:
        memory = int(context.memory_limit_in_mb * DUCKDB_MEMORY_SHARE)
        with DuckDbTableWriter(Path(work), memory_limit_mb=memory) as writer:
            report = export_warehouse(request, source, objects, writer, load_org(), utc_now(), Path(work))
    for name, table in report.tables.items():
        metrics.add_metric(name=f"Warehouse{name.capitalize()}Rows", unit="Count", value=table.rows)
    return report.model_dump(mode="json")
