"""The demo's customer analytics, through the product's own path: the nightly warehouse export run now (profiles,
tags and events as Parquet in the bucket), then the analytics API's reports over it (DuckDB over the exported files
locally, Athena over the same files on AWS): cohort retention by first-order month, the repeat-purchase curve, and
what each campaign's messages were followed by (acquired, activated, retained, converted, lost)."""

from __future__ import annotations

from typing import Any

from cdp_local.cli_export import run_export
from cdp_local.demo.api import call_api
from cdp_local.runtime import LocalRuntime

COHORT_MONTHS = 6  # months after the first order the retention table shows


def customer_analytics(rt: LocalRuntime, brand_id: str) -> dict[str, Any]:
    export = run_export(rt, brand_id)
    reports = {
        "cohorts": f"cohorts?by=month&max_offset={COHORT_MONTHS}",
        "repeat": "repeat?max_orders=5",
        "campaigns": "channels?by=campaign",
    }
    out: dict[str, Any] = {"exported_rows": {name: table["rows"] for name, table in export["tables"].items()}}
    for name, query in reports.items():
        answer = call_api(rt, "GET", f"/v1/analytics/{query}&brand_id={brand_id}")
        out[name] = answer["rows"]
        out["period"] = answer["period"]
    return out
