"""Counting AWS API calls made in-process and pricing them at public list prices (us-east-1, on-demand).

Prices used (USD, checked against the public pricing pages, Nov 2026; first pricing tier, no free tier):
- API Gateway HTTP API: $1.00 per million requests
- Lambda (x86_64): $0.20 per million requests + $0.0000166667 per GB-second
- DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units
  (transactional writes cost 2 WRU per item, strongly consistent reads 1 RRU per 4 KB)
- EventBridge: $1.00 per million custom events put on a bus
- SQS standard: $0.40 per million requests (every 64 KB chunk; rule deliveries to a queue count as a SendMessage)
- S3 Standard: $0.005 per 1,000 PUT/LIST, $0.0004 per 1,000 GET
- Secrets Manager: $0.05 per 10,000 API calls
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

PRICE_PER_MILLION = {
    "http_api_requests": 1.00,
    "lambda_requests": 0.20,
    "dynamodb_wru": 0.625,
    "dynamodb_rru": 0.125,
    "eventbridge_events": 1.00,
    "sqs_requests": 0.40,
    "s3_put": 5.00,
    "s3_get": 0.40,
    "secretsmanager_calls": 5.00,
}
LAMBDA_GB_SECOND = 0.0000166667

_WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem"}
_READ_OPS = {"GetItem", "Query", "Scan"}


@dataclass
class ApiCallCounter:
    """Counts SDK calls by (service, operation) and the billing units they consume."""

    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    _sessions: list[boto3.session.Session] = field(default_factory=list)

    def install(self, *sessions: boto3.session.Session) -> None:
        """Hook sessions (default: boto3's default session, made now if missing): every client made from them
        afterwards reports its calls here. moto resets boto3's default session when a mock starts, so install
        after the mock has started."""
        if not sessions:
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            sessions = (boto3.DEFAULT_SESSION,)
        for session in sessions:
            session.events.register("before-parameter-build", self._on_call)
            self._sessions.append(session)

    def uninstall(self) -> None:
        for session in self._sessions:
            session.events.unregister("before-parameter-build", self._on_call)
        self._sessions.clear()

    def reset(self) -> None:
        self.calls.clear()
        self.units.clear()

    def _on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        op = model.name
        self.calls[f"{service}.{op}"] += 1
        self.units.update(billing_units(service, op, params))


def billing_units(service: str, op: str, params: dict[str, Any]) -> Counter[str]:
    units: Counter[str] = Counter()
    if service == "dynamodb":
        if op in _WRITE_OPS:
            units["dynamodb_wru"] += 1
        elif op in _READ_OPS:
            units["dynamodb_rru"] += 1
        elif op == "TransactWriteItems":
            units["dynamodb_wru"] += 2 * len(params.get("TransactItems", []))
        elif op == "BatchGetItem":
            units["dynamodb_rru"] += sum(len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values())
        elif op == "BatchWriteItem":
            units["dynamodb_wru"] += sum(len(v) for v in params.get("RequestItems", {}).values())
    elif service == "events" and op == "PutEvents":
        units["eventbridge_events"] += len(params.get("Entries", []))
    elif service == "sqs":
        units["sqs_requests"] += 1
    elif service == "s3":
        units["s3_get" if op.startswith(("Get", "Head")) else "s3_put"] += 1
    elif service == "secretsmanager":
        units["secretsmanager_calls"] += 1
    elif service == "lambda" and op == "Invoke":
        units["lambda_requests"] += 1
    return units


def cost_usd(units: Counter[str], gb_seconds: float = 0.0) -> dict[str, float]:
    out = {name: units.get(name, 0) * price / 1_000_000 for name, price in PRICE_PER_MILLION.items()}
    out["lambda_gb_seconds"] = gb_seconds * LAMBDA_GB_SECOND
    return out
