"""`cdp bench --suite ingest`: accepted events per second per core through the real ingest Lambda handler
in-process, and AWS API calls per accepted event, without emulated AWS latency.

The handler runs unchanged (API Gateway 2.0 event -> Powertools resolver -> authentication -> raw archive -> mapping
-> validation -> dedupe claims -> EventBridge publish -> claim confirmation) with the real boto3 adapters; botocore's
`before-call` hook answers each call with an empty success instead of sending it (serialization and parameter
validation still run), and counts it. CPU time of this process is the per-core measure.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3

from cdp import topology
from cdp_local.runtime import apigw
from cdp_local.runtime.environment import (
    LOCAL_SOURCES,
    REGION,
    local_environment,
    patched_environ,
    seeded_api_keys,
)
from cdp_local.runtime.lambdas import LocalLambdaContext

Metric = dict[str, float | str]
API_KEY = "bench-key"
WRITE_KEY = "bench-write-key"


class CallCounter:
    """Answers every AWS call with a minimal success (parsed shape) and counts it by service.operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        name = f"{model.service_model.service_name}.{model.name}"
        self.calls[name] += 1
        return _FakeHttp(), self._answer(model.name, params)

    @staticmethod
    def _answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "PutEvents":
            entries = json.loads(params["body"])["Entries"]
            return {"FailedEntryCount": 0, "Entries": [{"EventId": uuid.uuid4().hex} for _ in entries]}
        if operation == "BatchWriteItem":
            return {"UnprocessedItems": {}}
        if operation == "GetSecretValue":
            secret_id = json.loads(params["body"])["SecretId"]
            if secret_id == topology.SOURCES_SECRET_LOCAL_NAME:
                return {
                    "SecretString": json.dumps({"write_keys": {WRITE_KEY: {"brand_id": "demo-brand"}}, **LOCAL_SOURCES})
                }
            return {"SecretString": json.dumps({"keys": seeded_api_keys(API_KEY, "bench-admin")})}
        return {}


class _FakeHttp:
    status_code = 200
    headers: dict[str, str] = {}


@contextmanager
def offline_aws(counter: CallCounter) -> Iterator[None]:
    """Every boto3 client made inside answers from `counter` (the handler's adapters make theirs lazily)."""
    env = {**local_environment("ERROR"), "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true"}
    with patched_environ(env):
        boto3.setup_default_session(region_name=REGION)
        assert boto3.DEFAULT_SESSION is not None
        hook = cast(Callable[..., None], counter)  # botocore types hooks as returning None; before-call may answer
        boto3.DEFAULT_SESSION.events.register("before-call", hook)
        try:
            yield
        finally:
            boto3.DEFAULT_SESSION.events.unregister("before-call", hook)
            boto3.DEFAULT_SESSION = None


def _canonical_batch(n: int, start: int, now: datetime) -> bytes:
    events = []
    for i in range(start, start + n):
        phone = f"1390000{i % 10000:04d}"
        when = (now - timedelta(minutes=i % 5000)).isoformat()
        if i % 3 == 0:
            events.append(
                {
                    "event_id": f"bench-{i}",
                    "event_type": "order_placed",
                    "source": "pos",
                    "brand_id": "demo-brand",
                    "store_id": "sh01",
                    "occurred_at": when,
                    "identifiers": [{"type": "phone", "value": phone}, {"type": "member_card", "value": f"MC{i}"}],
                    "properties": {
                        "order_id": f"o-{i}",
                        "currency": "CNY",
                        "total_minor": 2980,
                        "lines": [{"sku": "CAKE-1", "category": "cake", "quantity": 1, "unit_price_minor": 2980}],
                    },
                }
            )
        else:
            events.append(
                {
                    "event_id": f"bench-{i}",
                    "event_type": "page_view",
                    "source": "web",
                    "brand_id": "demo-brand",
                    "occurred_at": when,
                    "identifiers": [
                        {"type": "device_id", "value": f"dev-{i}"},
                        {"type": "email", "value": f"u{i}@example.cn"},
                    ],
                    "properties": {"url": "https://shop.example.cn/cakes", "title": "Cakes"},
                }
            )
    return json.dumps({"batch": events}).encode()


def _segment_batch(n: int, start: int, now: datetime) -> bytes:
    calls = []
    for i in range(start, start + n):
        when = (now - timedelta(minutes=i % 5000)).isoformat()
        if i % 2 == 0:
            calls.append(
                {
                    "type": "track",
                    "event": "Product Added",
                    "messageId": f"seg-{i}",
                    "userId": f"u-{i}",
                    "properties": {"sku": "CAKE-1", "price": 29.8, "quantity": 1, "currency": "CNY"},
                    "timestamp": when,
                }
            )
        else:
            calls.append(
                {
                    "type": "identify",
                    "messageId": f"seg-{i}",
                    "userId": f"u-{i}",
                    "anonymousId": f"a-{i}",
                    "traits": {"email": f"s{i}@example.cn", "name": "Bench"},
                    "timestamp": when,
                }
            )
    return json.dumps({"batch": calls, "context": {"library": {"name": "analytics.js", "version": "2.11.1"}}}).encode()


def _run(handler: Callable[[dict[str, Any], Any], Any], path: str, headers: dict[str, str], bodies: list[bytes]) -> int:
    matched = apigw.match_route("POST", path)
    assert matched is not None, path
    route, params = matched
    accepted = 0
    from cdp.observability import metrics

    for body in bodies:
        event = apigw.build_event(route, params, "POST", path, "", body, headers)
        response = handler(event, LocalLambdaContext(topology.INGEST))
        metrics.clear_metrics()  # what publishing does on Lambda; with metrics disabled Powertools keeps them
        status = int(response["statusCode"])
        if status >= 300:
            raise RuntimeError(f"bench request failed: {status} {response.get('body', '')[:300]}")
        accepted += int(json.loads(response["body"])["accepted"])
    return accepted


def ingest_benchmark(events: int = 20_000, batch: int = 100) -> dict[str, Metric]:
    counter = CallCounter()
    now = datetime.now(tz=UTC)
    results: dict[str, Metric] = {}
    with offline_aws(counter):
        from cdp.settings import get_settings
        from functions.ingest import handler

        get_settings.cache_clear()
        handler.dependencies.cache_clear()
        basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        cases = {
            "canonical": ("/v1/events", {"content-type": "application/json", "x-api-key": API_KEY}, _canonical_batch),
            "segment": ("/v1/batch", {"content-type": "application/json", "authorization": basic}, _segment_batch),
        }
        _run(handler.lambda_handler, "/v1/events", cases["canonical"][1], [_canonical_batch(batch, 10**8, now)])  # warm
        for name, (path, headers, make) in cases.items():
            bodies = [make(batch, start, now) for start in range(0, events, batch)]
            counter.calls.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            accepted = _run(handler.lambda_handler, path, headers, bodies)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            calls = sum(counter.calls.values())
            results[f"ingest.{name}.events_per_cpu_second"] = {"value": round(accepted / cpu), "unit": "events/s/core"}
            results[f"ingest.{name}.events_per_second_wall"] = {"value": round(accepted / wall), "unit": "events/s"}
            results[f"ingest.{name}.aws_calls_per_event"] = {"value": round(calls / accepted, 3), "unit": "calls/event"}
            for call, n in sorted(counter.calls.items()):
                results[f"ingest.{name}.calls_per_event.{call}"] = {
                    "value": round(n / accepted, 3),
                    "unit": "calls/event",
                }
        handler.dependencies.cache_clear()
        get_settings.cache_clear()
    results["ingest.batch_size"] = {"value": batch, "unit": "events/request"}
    results["ingest.target_events_per_cpu_second"] = {"value": 2000, "unit": "events/s/core"}
    return results
