"""`cdp bench`: events/s through the local pipeline and the AWS cost per 1M events from counted API calls.

Every figure goes to bench-output/results.json as {"metric name": {"value": number, "unit": "..."}}; later
benchmarks add their own metrics to the same file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cdp import topology
from cdp_local.aws_costs import ApiCallCounter, cost_usd

Metric = dict[str, float | str]
Progress = Callable[[int, int], None]


def record(results: dict[str, Metric], path: Path) -> None:
    """Merge figures into the results file (other benchmarks' figures are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    existing.update(results)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def batches(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pipeline_benchmark(
    events: list[dict[str, Any]], batch_size: int = 100, progress: Progress | None = None
) -> dict[str, Metric]:
    """Post `events` through the HTTP API, drain identity and tags, and price what it took."""
    from cdp_local.runtime import LocalRuntime
    from cdp_local.runtime.core import _session as runtime_session

    counter = ApiCallCounter()
    counter.install(runtime_session())  # the runtime's own clients (Lambda invoke, SQS polling), made on entry
    try:
        with LocalRuntime() as rt:
            counter.install()  # after moto started: the handlers make their clients on first use
            counter.reset()  # provisioning is not a per-event cost
            headers = {"content-type": "application/json", "x-api-key": rt.api_key}
            requests = accepted = 0
            ingest_s = drain_s = 0.0
            deliveries = 0
            done = 0
            for chunk in batches(events, batch_size):
                t0 = time.perf_counter()
                response = rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), headers)
                t1 = time.perf_counter()
                report = rt.drain()
                t2 = time.perf_counter()
                requests += 1
                accepted += json.loads(response.body).get("accepted", 0)
                ingest_s += t1 - t0
                drain_s += t2 - t1
                deliveries += sum(q.received for q in report.by_queue.values())
                done += len(chunk)
                if progress:
                    progress(done, len(events))
            calls = Counter(counter.calls)
            units = Counter(counter.units)
    finally:
        counter.uninstall()
    units["http_api_requests"] += requests
    units["sqs_requests"] += deliveries  # EventBridge -> SQS target deliveries (SendMessage on AWS)
    memory_gb = {f.key: f.memory_mb / 1024 for f in topology.FUNCTIONS}
    gb_seconds = ingest_s * memory_gb["ingest"] + drain_s * memory_gb["identity_merge"]
    costs = cost_usd(units, gb_seconds)
    per_million = 1_000_000 / max(accepted, 1)
    total = sum(costs.values()) * per_million
    out: dict[str, Metric] = {
        "pipeline.events": {"value": len(events), "unit": "events"},
        "pipeline.accepted": {"value": accepted, "unit": "events"},
        "pipeline.events_per_s": {"value": round(accepted / (ingest_s + drain_s), 1), "unit": "events/s"},
        "pipeline.ingest_events_per_s": {"value": round(accepted / ingest_s, 1), "unit": "events/s"},
        "pipeline.identity_and_tags_events_per_s": {"value": round(accepted / drain_s, 1), "unit": "events/s"},
        "pipeline.aws_api_calls_per_event": {
            "value": round(sum(calls.values()) / max(accepted, 1), 2),
            "unit": "calls",
        },
        "pipeline.cost_per_1m_events_usd": {"value": round(total, 2), "unit": "USD"},
    }
    for name, usd in sorted(costs.items()):
        out[f"pipeline.cost_per_1m_events_usd.{name}"] = {"value": round(usd * per_million, 4), "unit": "USD"}
    for name, n in sorted(calls.items()):
        out[f"pipeline.calls_per_event.{name}"] = {"value": round(n / max(accepted, 1), 3), "unit": "calls"}
    return out
