"""The demo report's campaign section, read by a marketer: conversion with its intervals (never a bare bar), the
funnel from the audience to credited orders, ROI with its definition beside it, money in the currency."""

from __future__ import annotations

from typing import Any

from cdp.campaigns.lifecycle import receipts_by_status
from cdp.campaigns.measurement import compare
from cdp_local.report import charts, funnel_stages


def _summary() -> dict[str, Any]:
    funnel = {
        "eligible": 900,
        "excluded_contact_policy": 30,
        "selected": 300,
        "treatment": 270,
        "holdout": 30,
        "steps": {"touch1": {"sent": 250, "suppressed": {"suppressed_frequency_cap": 20}, "deferred": 0, "failed": 0}},
        "offers_redeemed": 12,
        "purchased": 40,
        "credited_orders": 44,
        "credited_revenue_minor": 880_000,
        "converted_any": 60,
    }
    run = {
        "currency": "CNY",
        "treatment": {"size": 270, "converted": 60},
        "holdout": {"size": 30, "converted": 3},
        "treatment_rate": 60 / 270,
        "holdout_rate": 0.1,
        "incremental_conversions": 33.0,
        "conversion_lift": compare(60, 270, 3, 30).model_dump(mode="json"),
        "revenue_lift": {"verdict": "too few persons to conclude"},
        "roi": 41.5,
        "roi_definition": "ROI = (incremental revenue - cost) / cost.",
        "cost_per_incremental_conversion_minor": 38,
        "attribution": {
            "orders": 44,
            "by_evidence": {"coupon": 12, "last_touch": 32},
            "credited_elsewhere": 2,
            "uncredited": 5,
        },
        "display": {
            "cost": "12.50 CNY",
            "incremental_revenue": "531.20 CNY",
            "credited_revenue": "8,800.00 CNY",
            "discounts": "240.00 CNY",
            "revenue_per_treated_person": "32.59 CNY",
            "revenue_per_holdout_person": "18.00 CNY",
        },
        "messages_by_channel": {"sms": 250},
        "funnel": funnel,
    }
    pairwise = {"all": {"precision": 0.99, "recall": 0.9}, "linkable": {"recall": 0.97}}
    return {  # what the charts read of the demo's summary (the whole report is rendered by tests/demo)
        "identity": {"pairwise": pairwise},
        "tags": {"lifecycle": {"growth": 10, "mature": 5}},
        "conversion": {"treatment_rate": run["treatment_rate"], "holdout_rate": run["holdout_rate"]},
        "model": {"held_out": {}},
        "campaign": {"summary": run, "message_status": {"sms": {"delivered": 240, "failed": 10}}},
    }


def test_the_funnel_runs_from_the_audience_to_the_coupon() -> None:
    s = _summary()
    stages = funnel_stages(s["campaign"]["summary"], receipts_by_status(s["campaign"]["message_status"]))
    assert stages == [
        ("eligible", 900),
        ("selected", 300),
        ("treated", 270),
        ("messages sent (every step)", 250),
        ("delivered", 240),
        ("bought (credited)", 40),
        ("redeemed the coupon", 12),
    ]


def test_the_report_draws_conversion_with_its_intervals_and_the_funnel() -> None:
    drawn = charts(_summary())
    assert drawn["conversion"].startswith("<svg") and "95% intervals" in drawn["conversion"]
    assert drawn["funnel"].startswith("<svg") and "credited to the campaign" in drawn["funnel"]


def test_a_holdout_with_no_buyer_still_gets_its_interval_drawn() -> None:
    s = _summary()
    s["campaign"]["summary"]["conversion_lift"] = compare(60, 270, 0, 34).model_dump(mode="json")
    assert s["campaign"]["summary"]["conversion_lift"]["control"]["low"] == 0.0
    assert "95% intervals" in charts(s)["conversion"]
