"""The AWS bill of a workload, computed the way AWS meters it (us-east-1, on-demand list prices, no free tier).

Pure functions and tables only: what is metered (`PRICES`), how sizes are measured (DynamoDB items, EventBridge
entries, SQS payloads), how request units are rounded, and how a Lambda invocation's billed duration is modelled
(`CALL_LATENCY_MS`). `cdp_local.aws_costs` observes the calls a run makes and feeds them through these rules.

Metering rules (AWS documentation, read 2026-12):
- DynamoDB on-demand (developerguide/read-write-operations.html): a write is 1 WRU per 1 KB of item size rounded up
  per item; PutItem, UpdateItem and a failed conditional write bill the larger of the item before and after, DeleteItem
  the deleted item, each at least 1 WRU; BatchWriteItem bills each item so; TransactWriteItems 2x per item. A read is
  1 RRU per 4 KB per item (GetItem, BatchGetItem), half for eventually consistent reads, 2x in TransactGetItems;
  Query and Scan sum the sizes of all items read (before any filter or projection) and round the sum up to 4 KB; a
  read that finds nothing still bills the minimum. Item size: attribute names + values (developerguide/
  CapacityUnitCalculations.html): strings UTF-8 bytes, numbers (significant digits / 2) + 1, binary bytes, null and
  booleans 1 byte, lists and maps 3 bytes + 1 byte per element + their elements (a map element counts its name).
- EventBridge (eventbridge/pricing, userguide/eb-putevent-size.html): each PutEvents entry is billed per started
  64 KB; entry size = Time 14 bytes if given + Source + DetailType + Detail + Resources (UTF-8 bytes).
- SQS (sqs/pricing): every 64 KB chunk of a request's payload is one request; a batch counts its whole payload.
- API Gateway HTTP API (api-gateway/pricing): requests metered in 512 KB increments.
- Lambda (lambda/pricing): $0.20 per 1M requests + GB-s of billed duration (rounded up to 1 ms) x configured memory.
- CloudWatch Logs (cloudwatch/pricing): $0.50 per GB ingested; a log event counts its UTF-8 bytes + 26 bytes
  (the PutLogEvents size rule, logs/APIReference/API_PutLogEvents.html).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

KB = 1024
PRICES_CHECKED = "2026-11 (list prices as published on the pages cited; first tier, no free tier)"


@dataclass(frozen=True)
class Price:
    key: str
    page: str  # the pricing page: https://aws.amazon.com/<page>/pricing/ (DynamoDB: .../dynamodb/pricing/on-demand/)
    usd_per_million: float  # USD per million billed units
    unit: str  # what one billed unit is
    short: str  # the unit in metric names

    @property
    def source(self) -> str:
        service, _, sub = self.page.partition("/")
        return f"https://aws.amazon.com/{service}/pricing/" + (f"{sub}/" if sub else "")


# One table: every price the bench uses, with its page (https://aws.amazon.com/<page>/pricing/). us-east-1,
# on-demand, x86_64, first tier, no free tier; checked 2026-11.
# fmt: off
PRICES: dict[str, Price] = {p.key: p for p in (
    #     key                        page                  USD / 1M  billed unit                      short
    Price("dynamodb_wru",              "dynamodb/on-demand",     0.625, "write request unit (1 KB)",     "wru"),
    Price("dynamodb_rru",              "dynamodb/on-demand",     0.125, "read request unit (4 KB strong)", "rru"),
    Price("eventbridge_events",        "eventbridge",             1.00, "event entry, per 64 KB chunk",  "events"),
    Price("sqs_requests",              "sqs",                     0.40, "request, per 64 KB chunk",      "requests"),
    Price("lambda_requests",           "lambda",                  0.20, "invocation",                    "requests"),
    Price("lambda_gb_seconds",         "lambda",               16.6667, "GB-second, x86_64, per 1 ms",   "gb_seconds"),
    Price("http_api_requests",         "api-gateway",             1.00, "HTTP API request, per 512 KB",  "requests"),
    Price("s3_put",                    "s3",                      5.00, "PUT, COPY, POST or LIST request", "requests"),
    Price("s3_get",                    "s3",                      0.40, "GET, HEAD and other requests",  "requests"),
    Price("cloudwatch_logs_gb",        "cloudwatch",         500_000.0, "GB ingested (standard)",        "gb"),
    Price("stepfunctions_transitions", "step-functions",          25.0, "state transition (standard)",   "transitions"),
    Price("secretsmanager_calls",      "secrets-manager",         5.00, "API call",                      "api_calls"),
    # $5 per TB scanned, rounded up to the MB per query (10 MB minimum): per 1M MB = 5 * 10^6 / 2^20
    Price("athena_mb_scanned",         "athena",              4.76837, "MB scanned (10 MB min per query)", "mb"),
)}
# fmt: on
# kept for callers of the first cost model
PRICE_PER_MILLION = {key: p.usd_per_million for key, p in PRICES.items()}
LAMBDA_GB_SECOND = PRICES["lambda_gb_seconds"].usd_per_million / 1_000_000

# Lambda's duration model. On AWS an invocation lasts its own CPU work plus the round trips of its AWS calls;
# locally the calls are emulated by moto in-process (milliseconds of Python each), so the bench measures the
# handler's CPU time with every AWS call's span removed and adds, per call, the latency below: typical same-region
# p50 round trips from inside Lambda (modelled assumptions, not measurements).
CALL_LATENCY_MS: dict[str, float] = {
    "dynamodb.GetItem": 5.0,
    "dynamodb.PutItem": 5.0,
    "dynamodb.UpdateItem": 5.0,
    "dynamodb.DeleteItem": 5.0,
    "dynamodb.Query": 6.0,
    "dynamodb.Scan": 10.0,
    "dynamodb.BatchGetItem": 8.0,
    "dynamodb.BatchWriteItem": 10.0,
    "dynamodb.TransactGetItems": 10.0,
    "dynamodb.TransactWriteItems": 15.0,
    "events.PutEvents": 10.0,
    "sqs.SendMessage": 8.0,
    "sqs.SendMessageBatch": 10.0,
    "s3.PutObject": 25.0,
    "s3.GetObject": 15.0,
    "s3.HeadObject": 10.0,
    "s3.ListObjectsV2": 20.0,
    "secretsmanager.GetSecretValue": 15.0,
    "lambda.Invoke": 15.0,  # plus the callee's own duration when synchronous
    "*": 10.0,  # any other call
}
RUNTIME_OVERHEAD_MS = 1.0  # per invocation: the runtime API's next-event and response round trips
LAMBDA_FULL_VCPU_MB = (
    1769  # Lambda gives 1 vCPU at 1,769 MB and CPU in proportion below (lambda/dg/configuration-memory)
)
LOCAL_CORE_PER_LAMBDA_VCPU = 1.0  # assumption: one core here does the work of one Lambda vCPU
# START, END and REPORT lines Lambda writes per invocation (REPORT with an X-Ray trace id: tracing is active)
LAMBDA_PLATFORM_LOG_EVENTS = 3
LAMBDA_PLATFORM_LOG_BYTES = 60 + 52 + 230
CLOUDWATCH_EVENT_OVERHEAD_BYTES = 26


def call_latency_ms(service: str, op: str) -> float:
    return CALL_LATENCY_MS.get(f"{service}.{op}", CALL_LATENCY_MS["*"])


def chunks(size_bytes: int, chunk_bytes: int) -> int:
    """Started chunks, at least one (an empty request is still a request)."""
    return max(1, math.ceil(size_bytes / chunk_bytes))


# ---- DynamoDB ------------------------------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number: (significant digits / 2) + 1, rounded up; one more for a negative number."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return len(text)
    if value.is_zero():
        return 1
    digits = value.normalize().as_tuple().digits  # leading and trailing zeros dropped
    return math.ceil(len(digits) / 2) + 1 + (1 if value.is_signed() else 0)


def _binary_size(value: Any) -> int:
    # boto3's low-level client hands bytes; moto keeps base64 text
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value)) if value else 0


def attribute_value_size(value: Any) -> int:
    """Bytes of one AttributeValue: DynamoDB-JSON ({"S": ...}, {"M": {...}}) or an object with `type` and `value`
    (moto's stored form, sized in place: converting a large item to JSON first would copy it)."""
    kind, inner = next(iter(value.items())) if isinstance(value, dict) else (value.type, value.value)
    if kind == "S":
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(_binary_size(b) for b in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + attribute_value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_value_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item: every attribute's name plus its value. A missing item is 0 bytes."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def write_units(size_before: int, size_after: int) -> int:
    """WRU of one item write: the larger of the item before and after, per started KB, at least 1."""
    return chunks(max(size_before, size_after), KB)


def read_units(size_bytes: int, consistent: bool) -> float:
    """RRU of one item read (or of a Query/Scan page's summed size): per started 4 KB, half when eventual."""
    units = chunks(size_bytes, 4 * KB)
    return float(units) if consistent else units / 2


# ---- EventBridge, SQS, HTTP API ------------------------------------------------------------------------------------


def _utf8(text: Any) -> int:
    return len(str(text).encode("utf-8")) if text is not None else 0


def put_events_entry_size(entry: dict[str, Any]) -> int:
    size = 14 if entry.get("Time") is not None else 0
    size += _utf8(entry.get("Source")) + _utf8(entry.get("DetailType")) + _utf8(entry.get("Detail"))
    return size + sum(_utf8(r) for r in entry.get("Resources") or [])


def eventbridge_units(entries: list[dict[str, Any]]) -> int:
    """Billed events of a PutEvents call: each entry per started 64 KB."""
    return sum(chunks(put_events_entry_size(e), 64 * KB) for e in entries)


def sqs_message_size(body: Any, attributes: dict[str, Any] | None = None) -> int:
    """Payload of one message: body + each message attribute's name, type and value."""
    size = _utf8(body) if not isinstance(body, bytes | bytearray) else len(body)
    for name, attr in (attributes or {}).items():
        size += _utf8(name) + _utf8(attr.get("DataType"))
        size += _utf8(attr.get("StringValue"))
        if attr.get("BinaryValue") is not None:
            size += _binary_size(attr["BinaryValue"])
    return size


def sqs_requests(payload_bytes: int) -> int:
    return chunks(payload_bytes, 64 * KB)


def http_api_units(request_bytes: int) -> int:
    return chunks(request_bytes, 512 * KB)


def http_request_units(path: str, body: bytes, headers: Mapping[str, str], method: str = "POST") -> int:
    """The billed requests of one HTTP API call: its request line and headers count with the body towards the 512 KB
    metering increment."""
    size = len(body) + len(f"{method} {path} HTTP/1.1\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items())
    return http_api_units(size)


# ---- Lambda --------------------------------------------------------------------------------------------------------


def lambda_cpu_scale(memory_mb: int) -> float:
    """How much longer CPU work takes on a function with less than a full vCPU."""
    return max(1.0, LAMBDA_FULL_VCPU_MB / memory_mb) * LOCAL_CORE_PER_LAMBDA_VCPU


def lambda_modelled_ms(cpu_ms: float, latency_ms: float, memory_mb: int) -> float:
    return cpu_ms * lambda_cpu_scale(memory_mb) + latency_ms + RUNTIME_OVERHEAD_MS


def lambda_billed_ms(duration_ms: float) -> int:
    """Lambda bills duration rounded up to the next millisecond (at least 1 ms)."""
    return max(1, math.ceil(duration_ms - 1e-9))


def lambda_gb_seconds(billed_ms: float, memory_mb: int) -> float:
    return billed_ms / 1000 * memory_mb / 1024


def log_units_gb(log_events: int, log_bytes: int) -> float:
    """GB ingested by CloudWatch Logs for `log_events` lines totalling `log_bytes` UTF-8 bytes."""
    return (log_bytes + CLOUDWATCH_EVENT_OVERHEAD_BYTES * log_events) / 1024**3


def cost_usd(units: dict[str, float]) -> dict[str, float]:
    """Dollars per price key for billed units (price keys of `PRICES`)."""
    return {key: units.get(key, 0.0) * p.usd_per_million / 1_000_000 for key, p in PRICES.items()}
