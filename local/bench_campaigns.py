"""`cdp bench --suite campaigns`: what filing each selected person's group on their timeline (`campaign_assigned`,
what uplift models learn from) adds to a campaign run, per 1M persons selected, at AWS list prices.

Persons with SMS consent are posted through ingest first (not billed). Then the real campaign function's select step
is invoked as the campaign machine invokes it; its PutEvents entries (the assignment events, packed) and the drain
that follows (identity and tags filing each assignment on its person's timeline) are what is billed. The rest of the
select step (its Scan, audience.json, the batches) is not priced here: the emulator's fast Scan bypasses the counter's
read sizing (`cdp bench --suite models` bills a Scan from the table's items); the run's sends are priced by
`cdp bench --suite channels`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from cdp_local.aws_costs import ApiCallCounter, OpUsage, merge_usage, usage_totals, usage_usd
from cdp_local.bench import Metric, batches, metered_runtime

BRAND = "demo-brand"
CAMPAIGN = "bench_assign"
HOLDOUT = 0.2


def _consent(phone: str) -> dict[str, Any]:
    return {
        "event_id": f"bench-consent-{phone}",
        "event_type": "consent_changed",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": datetime.now(UTC).isoformat(),
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": {"channel": "sms", "granted": True, "purpose": "marketing"},
    }


def _select(persons: int) -> dict[str, Any]:
    request = {
        "campaign_id": CAMPAIGN,
        "brand_id": BRAND,
        "run_id": f"{CAMPAIGN}-1",
        "audience": {"require_consent_channel": "sms"},
        "touch1": {"channel": "sms", "template": {"body": "A cake for the weekend? Reply TD to opt out"}},
        "budget": {"amount_minor": 5 * persons, "currency": "CNY", "cost_per_message_minor": {"sms": 5}},
        "holdout_fraction": HOLDOUT,
        "batch_size": 500,
    }
    return {"action": "select", "request": request}


def _per_1m(usage: dict[str, OpUsage], persons: int) -> float:
    return round(usage_usd(usage) * 1_000_000 / max(persons, 1), 2)


def campaigns_benchmark(persons: int = 1000) -> dict[str, Metric]:
    from cdp import topology

    counter = ApiCallCounter()
    with metered_runtime(counter) as (rt, _):
        headers = {"content-type": "application/json", "x-api-key": rt.api_key}
        for chunk in batches([_consent(f"1374{i:07d}") for i in range(persons)], 100):
            rt.http("POST", "/v1/events", json.dumps({"batch": chunk}).encode(), headers)
            rt.drain()
        counter.reset()
        selected = rt.invoke(topology.CAMPAIGN.key, _select(persons))
        selection = counter.settled()
        counter.reset()
        rt.drain()  # identity and tags file each assignment on its person's timeline
        filing = counter.settled()
    counts = selected["selection"]["counts"]
    chosen = counts["treatment"] + counts["holdout"]
    put_events = {op: u for op, u in selection.items() if op.startswith("events.")}
    filed = merge_usage(filing, put_events)
    totals = usage_totals(filed)
    out: dict[str, Metric] = {
        "campaigns.persons_selected": {"value": chosen, "unit": f"persons ({counts['holdout']} held out)"},
        "campaigns.assignments_cost_per_1m_persons_usd": {
            "value": _per_1m(filed, chosen),
            "unit": "USD (campaign_assigned on the bus, filed on each timeline through identity and tags)",
        },
        "campaigns.assignments_wru_per_person": {
            "value": round(totals.get("dynamodb_wru", 0.0) / max(chosen, 1), 2),
            "unit": "wru",
        },
        "campaigns.assignments_bus_entries_per_1k_persons": {
            "value": round(sum(u.calls for u in put_events.values()) * 1000 / max(chosen, 1), 2),
            "unit": "PutEvents calls per 1,000 persons (each entry packs many events)",
        },
    }
    by_service: defaultdict[str, float] = defaultdict(float)
    for op, op_usage in filed.items():
        by_service[op.split(".", 1)[0]] += op_usage.usd()
    for service, service_usd in sorted(by_service.items(), key=lambda item: -item[1]):
        out[f"campaigns.assignments_cost_per_1m_persons.{service}.usd"] = {
            "value": round(service_usd * 1_000_000 / max(chosen, 1), 3),
            "unit": "USD",
        }
    return out
