"""`cdp bench --suite profile-lookup`: latency of the 360-degree profile lookups, in-process.

Persons are loaded through the local runtime's real pipeline (HTTP API -> ingest -> bus -> SQS -> identity_merge ->
tags); loading is not timed. Then `GET /v1/profiles/{person_id}` and `GET /v1/profiles/by-identifier/phone/{value}`
are timed by calling the `profile_api` handler in-process with the API Gateway 2.0 event the runtime builds: the
figures include the handler, authentication, the view building and moto's emulation of every DynamoDB call (a
person of 3 identifiers costs ~8 reads: profile, 3 timeline queries, messages, lineage, edits; by identifier adds the
identifier lookup), but not moto's emulation of Lambda Invoke. On AWS the DynamoDB round trips are network-bound
(single-digit ms each) instead.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from cdp import topology
from cdp_local.bench import Metric, batches

Progress = Callable[[int, int], None]
BRAND = "demo-brand"
STORES = ("sh01", "bj02", None)  # None: online


def person_events(i: int) -> list[dict[str, Any]]:
    """Three events of one synthetic person: identify (phone, e-mail, device), an order, points."""
    phone = {"type": "phone", "value": f"+86139{i:08d}"}
    email = {"type": "email", "value": f"bench{i}@example.cn"}
    device = {"type": "device_id", "value": f"bench-dev-{i}"}
    store = STORES[i % len(STORES)]
    common = {"source": "pos" if store else "app", "brand_id": BRAND, "store_id": store}
    total = 1_000 + (i % 50) * 100
    return [
        {
            **common,
            "event_id": f"bench-{i}-1",
            "event_type": "identify",
            "occurred_at": "2026-03-01T10:00:00+08:00",
            "identifiers": [phone, email, device],
            "properties": {"name": f"Bench {i}", "city": "Shanghai", "member_level": "silver"},
        },
        {
            **common,
            "event_id": f"bench-{i}-2",
            "event_type": "order_placed",
            "occurred_at": "2026-03-02T10:00:00+08:00",
            "identifiers": [phone],
            "properties": {
                "order_id": f"BO-{i}",
                "lines": [{"sku": "CAKE", "category": "cake", "quantity": 1, "unit_price_minor": total}],
                "total_minor": total,
                "currency": "CNY",
                "fulfilment": "offline" if store else "online",
            },
        },
        {
            **common,
            "event_id": f"bench-{i}-3",
            "event_type": "points_changed",
            "occurred_at": "2026-03-02T10:00:01+08:00",
            "identifiers": [phone],
            "properties": {"delta": total // 100, "program": "app", "reason": "purchase"},
        },
    ]


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "p99": round(cuts[98], 2),
        "mean": round(statistics.fmean(samples_ms), 2),
    }


def profile_lookup_benchmark(
    persons: int = 2_000, lookups: int = 500, seed: int = 11, progress: Progress | None = None
) -> dict[str, Metric]:
    """Load `persons` through the pipeline, then time `lookups` lookups of each kind (after a warm-up)."""
    from cdp_local.runtime import LocalLambdaContext, LocalRuntime, apigw

    events = [e for i in range(persons) for e in person_events(i)]
    spec = topology.FUNCTIONS_BY_KEY["profile_api"]
    with LocalRuntime(state_machines=()) as rt:
        headers = {"content-type": "application/json", "x-api-key": rt.api_key}
        load_started = time.perf_counter()
        done = 0
        for chunk in batches(events, 100):
            response = rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), headers)
            if response.status != 202:
                raise RuntimeError(f"loading persons failed: {response.status} {response.body[:300]!r}")
            rt.drain()
            done += len(chunk)
            if progress:
                progress(done, len(events))
        load_s = time.perf_counter() - load_started

        handler = rt.router.resolve(spec)
        admin = {"x-api-key": rt.admin_key}

        def call(path: str, query: str = "") -> dict[str, Any]:
            matched = apigw.match_route("GET", path)
            assert matched is not None, path
            route, params = matched
            event = apigw.build_event(route, params, "GET", path, query, b"", admin)
            result: dict[str, Any] = handler(event, LocalLambdaContext(spec))
            if result.get("statusCode") != 200:
                raise RuntimeError(f"GET {path}?{query}: {result.get('statusCode')} {str(result.get('body'))[:300]}")
            return result

        rng = random.Random(seed)
        picked = [rng.randrange(persons) for _ in range(lookups)]
        ids: dict[int, str] = {}
        for i in dict.fromkeys(picked):  # warm-up (cold start, keyring) and the ids to look up; not timed
            body = json.loads(call(f"/v1/profiles/by-identifier/phone/%2B86139{i:08d}", f"brand_id={BRAND}")["body"])
            ids[i] = body["person_id"]
        by_identifier_ms: list[float] = []
        by_id_ms: list[float] = []
        for i in picked:
            t0 = time.perf_counter()
            call(f"/v1/profiles/by-identifier/phone/%2B86139{i:08d}", f"brand_id={BRAND}")
            t1 = time.perf_counter()
            call(f"/v1/profiles/{ids[i]}")
            t2 = time.perf_counter()
            by_identifier_ms.append((t1 - t0) * 1000)
            by_id_ms.append((t2 - t1) * 1000)
    unit = "ms (in-process, moto included)"
    out: dict[str, Metric] = {
        "profile_lookup.persons": {"value": persons, "unit": "persons"},
        "profile_lookup.events_loaded": {"value": len(events), "unit": "events"},
        "profile_lookup.load_seconds": {"value": round(load_s, 1), "unit": "s (pipeline, not part of the lookup)"},
        "profile_lookup.lookups": {"value": lookups, "unit": "lookups of each kind"},
    }
    for name, samples in (("by_id", by_id_ms), ("by_identifier", by_identifier_ms)):
        for stat, value in _percentiles(samples).items():
            out[f"profile_lookup.{name}_ms.{stat}"] = {"value": value, "unit": unit}
    return out
