"""`cdp bench --suite journeys`: what a triggered journey costs per entry and per send, at AWS list prices.

The same events are posted twice through the whole local pipeline (ingest, identity, tags, the journey function,
the tick, the send function), for two sets of new customers: first with the journey paused (the baseline: what the
events cost anyway), then live, with the schedule's tick moved over its waits. The difference is the journey's: its
places, timers and memberships, its send orders on the bus and the send queue, and the send function's work (ledger,
contact history, message records). The local outbox's S3 PUT per message stands in for the channel provider's API
call and is left out (the message's own price is the campaign's cost per message). The trigger-to-send latency is
measured in-process for a journey whose first step is a send. Last, one daily sweep of a date journey over the whole
profiles table: its cost per 1M profiles (a Scan bills every item it reads, so it grows with each person's items).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp_local import cost_model
from cdp_local.aws_costs import ApiCallCounter, OpUsage, usage_totals, usage_usd
from cdp_local.bench import Metric, batches, metered_runtime

BRAND = "demo-brand"
JOURNEY = "bench_cart"
INSTANT = "bench_instant"
SWEPT = "bench_birthday"


def _definition(campaign_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "brand_id": BRAND,
        "name": campaign_id,
        "trigger": {"event": "add_to_cart"},
        "exit_on": ["order_placed"],
        "steps": steps,
        "budget": {"amount_minor": 4_000, "currency": "CNY", "cost_per_message_minor": {"sms": 1}},
        "holdout": 0.1,
    }


def _event(kind: str, phone: str, n: int, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"bench-{kind}-{phone}-{n}",
        "event_type": kind,
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": datetime.now(UTC).isoformat(),
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": properties,
    }


def _cart(phone: str) -> dict[str, Any]:
    return _event("add_to_cart", phone, 1, sku="CAKE-1", quantity=1, unit_price_minor=8800, currency="CNY")


def _minus(after: dict[str, OpUsage], before: dict[str, OpUsage]) -> dict[str, OpUsage]:
    out: dict[str, OpUsage] = {}
    for op in after.keys() | before.keys():
        a, b = after.get(op, OpUsage()), before.get(op, OpUsage())
        units = defaultdict(float, {k: a.units.get(k, 0.0) - b.units.get(k, 0.0) for k in a.units.keys() | b.units})
        out[op] = OpUsage(a.calls - b.calls, units)
    return out


def journey_benchmark(entries: int = 400, latency_samples: int = 30) -> dict[str, Metric]:
    from cdp import topology

    counter = ApiCallCounter()
    with metered_runtime(counter) as (rt, _):
        admin = {"content-type": "application/json", "x-api-key": rt.admin_key}
        ingest = {"content-type": "application/json", "x-api-key": rt.api_key}

        def api(method: str, path: str, body: Any = None) -> Any:
            raw = json.dumps(body).encode() if body is not None else b""
            response = rt.http(method, path, raw, admin)
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {response.body[:300]!r}")
            return json.loads(response.body)

        def post(events: list[dict[str, Any]]) -> None:
            for chunk in batches(events, 100):
                rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), ingest)
                rt.drain()

        steps: list[dict[str, Any]] = [
            {"wait": {"hours": 1}},
            {"send": {"channel": "sms", "template": {"body": "Your cart is waiting"}}},
            {"wait": {"days": 1}},
            {"send": {"channel": "sms", "template": {"body": "Still thinking it over?"}}},
        ]
        api("POST", "/v1/campaigns", _definition(JOURNEY, steps))
        api("POST", f"/v1/campaigns/{JOURNEY}/activate?brand_id={BRAND}")
        api("POST", f"/v1/campaigns/{JOURNEY}/pause?brand_id={BRAND}")
        base = [f"1371{i:07d}" for i in range(entries)]
        live = [f"1372{i:07d}" for i in range(entries)]
        consent = {"channel": "sms", "granted": True, "purpose": "marketing"}
        post([_event("consent_changed", p, 0, **consent) for p in base + live])

        counter.reset()
        post([_cart(p) for p in base])  # the journey paused: what these events cost anyway
        baseline = counter.settled()
        counter.reset()
        api("POST", f"/v1/campaigns/{JOURNEY}/resume?brand_id={BRAND}")
        started = datetime.now(UTC)
        post([_cart(p) for p in live])
        for later in (timedelta(hours=1, minutes=1), timedelta(days=1, hours=2)):
            rt.fire_schedule(topology.CAMPAIGN_TICK.local_name, started + later)
            rt.drain()
        with_journey = counter.settled()
        counter.reset()
        results = api("GET", f"/v1/campaigns/{JOURNEY}/journey?brand_id={BRAND}")

        # trigger to send: a journey whose first step is the send, one event at a time
        api("POST", f"/v1/campaigns/{JOURNEY}/stop?brand_id={BRAND}")
        api("POST", "/v1/campaigns", _definition(INSTANT, steps[1:2]))
        api("POST", f"/v1/campaigns/{INSTANT}/activate?brand_id={BRAND}")
        latencies = []
        for i in range(latency_samples):
            phone = f"1373{i:07d}"
            post([_event("consent_changed", phone, 0, **consent)])
            t0 = time.perf_counter()
            rt.http("POST", "/v1/events", json.dumps(_cart(phone)).encode(), ingest)
            rt.drain()
            latencies.append((time.perf_counter() - t0) * 1000)

        # a date journey's daily sweep: one tick scanning the whole profiles table (every person's items)
        birthday = _definition(SWEPT, steps[1:2])
        birthday["trigger"] = {"date": {"of": "birthday", "days_before": 7, "at": "00:00"}}
        api("POST", "/v1/campaigns", birthday)
        api("POST", f"/v1/campaigns/{SWEPT}/activate?brand_id={BRAND}")
        counter.reset()
        swept = rt.fire_schedule(topology.CAMPAIGN_TICK.local_name, datetime.now(UTC)).result["sweeps"]
        rt.drain()
        sweep_usage = counter.settled()
        persons = 2 * entries + latency_samples  # each bench phone is one person
        table_bytes = _table_bytes(rt.client("dynamodb"), topology.PROFILES_TABLE.local_name)

    usage = _minus(with_journey, baseline)
    entered = sum(results["entered"].values())
    sends = results["spent_minor"]  # one minor unit per SMS
    outbox = usage.get("s3.PutObject")
    if outbox is not None:  # the local outbox's PUT per message stands in for the provider's API call
        outbox.calls -= sends
        outbox.units["s3_put"] = max(0.0, outbox.units.get("s3_put", 0.0) - sends)
    totals = usage_totals(usage)
    usd = usage_usd(usage)
    calls = sum(u.calls for u in usage.values())
    ordered = sorted(latencies)
    out: dict[str, Metric] = {
        "journeys.entries": {"value": entered, "unit": "persons"},
        "journeys.sends": {"value": sends, "unit": "messages"},
        "journeys.cost_per_1m_entries_usd": {"value": round(usd * 1_000_000 / max(entered, 1), 2), "unit": "USD"},
        "journeys.cost_per_1m_sends_usd": {"value": round(usd * 1_000_000 / max(sends, 1), 2), "unit": "USD"},
        "journeys.aws_calls_per_entry": {"value": round(calls / max(entered, 1), 2), "unit": "calls"},
        "journeys.billed_wru_per_entry": {
            "value": round(totals.get("dynamodb_wru", 0.0) / max(entered, 1), 2),
            "unit": "wru",
        },
        "journeys.trigger_to_send_ms_p50": {"value": round(statistics.median(ordered), 1), "unit": "ms (in-process)"},
        "journeys.trigger_to_send_ms_p95": {
            "value": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
            "unit": "ms (in-process)",
        },
    }
    # A Scan bills every item it reads before the filter, per 4 KB, halved when eventually consistent: billed here
    # from the table's stored size (the emulator's filter hook does not see a segmented Scan's reads)
    scanned = cost_model.read_units(table_bytes, False)
    scan_usd = sum(cost_model.cost_usd({"dynamodb_rru": scanned}).values())
    fixed_usd = sum(u.usd() for op, u in sweep_usage.items() if op != "dynamodb.Scan")  # the tick, calls per shard
    out["journeys.sweep_table_kb_per_profile"] = {"value": round(table_bytes / 1024 / max(persons, 1), 2), "unit": "KB"}
    out["journeys.sweep_fixed_cost_usd"] = {"value": round(fixed_usd, 6), "unit": "USD per sweep, whatever the size"}
    out["journeys.sweep_shards"] = {"value": swept["shards"], "unit": "shards"}
    out["journeys.sweep_cost_per_1m_profiles_usd"] = {
        "value": round(scan_usd * 1_000_000 / max(persons, 1), 3),
        "unit": "USD per daily sweep (the Scan)",
    }
    out["journeys.sweep_rru_per_profile"] = {"value": round(scanned / max(persons, 1), 2), "unit": "rru"}
    by_service: defaultdict[str, float] = defaultdict(float)
    for op, op_usage in usage.items():
        by_service[op.split(".", 1)[0]] += op_usage.usd()
    for service, service_usd in sorted(by_service.items(), key=lambda item: -item[1]):
        out[f"journeys.cost_per_1m_entries.{service}.usd"] = {
            "value": round(service_usd * 1_000_000 / max(entered, 1), 3),
            "unit": "USD",
        }
    return out


def _table_bytes(db: Any, table: str) -> int:
    """The stored size of every item of a table (what a full Scan reads and bills)."""
    total = 0
    for page in db.get_paginator("scan").paginate(TableName=table):
        total += sum(cost_model.item_size(item) for item in page.get("Items", []))
    return total
