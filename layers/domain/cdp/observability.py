"""One logger, tracer and metrics object for the whole product (service name from POWERTOOLS_SERVICE_NAME).

Every log line goes through `MaskingFormatter`: PII is masked before it is written (see cdp.masking).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from cdp.masking import mask
from cdp.topology import METRICS_NAMESPACE

# fields Powertools itself fills: never PII, left as they are (cheaper, and ids stay greppable)
_SYSTEM_KEYS = frozenset(
    {
        "level",
        "location",
        "timestamp",
        "service",
        "sampling_rate",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "correlation_id",
    }
)


class MaskingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        return super().serialize({k: v if k in _SYSTEM_KEYS else mask(v, k) for k, v in log.items()})


logger = Logger(logger_formatter=MaskingFormatter())
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)
