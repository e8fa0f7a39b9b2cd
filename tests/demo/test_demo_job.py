"""`cdp demo` end to end on a small brand: every state machine succeeds and the summary holds every figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from cdp_local.demo_job import run_demo


def test_demo_end_to_end(tmp_path: Path) -> None:
    # One test for one run: pytest-xdist would run a shared fixture once per worker (the demo is the longest test).
    console = Console(quiet=True)
    with Progress(console=console, disable=True) as progress:
        # min_auc 0: this checks the pipeline, not the model (tests/unit/models hold the model to a known signal)
        summary = run_demo(customers=300, seed=5, output=tmp_path, progress=progress, console=console, min_auc=0.0)
    demo = (summary, tmp_path)
    check_every_state_machine_succeeds_and_files_are_written(demo)
    check_summary_holds_identity_ingest_model_and_campaign_figures(demo)
    check_tag_families_batch_agreement_and_audiences(demo)
    check_the_journeys_ran_and_the_caps_stopped_some_messages(demo)
    check_coupons_were_issued_redeemed_and_expired_within_their_pool_and_points_earned(demo)
    check_every_channel_delivered_and_its_receipts_moved_the_messages(demo)
    check_the_report_shows_cohorts_from_the_warehouse_export(demo)


def check_every_state_machine_succeeds_and_files_are_written(demo: tuple[dict[str, Any], Path]) -> None:
    summary, output = demo
    assert [e["machine"] for e in summary["executions"]] == ["history-import", "train", "score", "campaign"]
    assert {e["status"] for e in summary["executions"]} == {"SUCCEEDED"}
    assert json.loads((output / "summary.json").read_text())["headline"] == summary["headline"]
    html = (output / "report.html").read_text()
    assert "OneID" in html and "<svg" in html and "Campaign with holdout" in html and "Triggered journeys" in html
    assert "<code>cart_recovery</code> per step" in html


def check_summary_holds_identity_ingest_model_and_campaign_figures(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    ingest = summary["ingest"]
    # malformed copies are rejected, re-sent batches are duplicates, nothing dead-lettered
    assert ingest["rejected"] == ingest["malformed_sent"] > 0
    assert ingest["duplicates"] > 0 and ingest["dead_lettered"] == 0
    # the past arrived as one history import (every line accounted for), the last days live
    history = summary["history_import"]
    assert history["counts"]["accepted"] + ingest["accepted"] == summary["brand"]["events"]
    assert history["counts"]["rejected"] == 0 and history["persons"] > 0 and history["tag_history_entries"] > 0
    # the brand's channels fed the live days through their connectors, each re-sending one request that counted once
    connectors = summary["connectors"]
    assert {"segment", "wechat_mp", "wechat_oa", "pos", "tmall", "jd"} <= set(connectors)
    assert all(c["accepted"] > 0 and c["duplicates"] > 0 for c in connectors.values()), connectors
    assert sum(c["accepted"] for c in connectors.values()) == ingest["accepted"]
    assert connectors["events"]["rejected"] == ingest["rejected"] and summary["routed_to_events"]
    identity = summary["identity"]
    assert identity["pairwise"]["all"]["precision"] >= 0.99
    assert identity["pairwise"]["linkable"]["recall"] >= 0.9
    # the offline bulk resolver builds exactly the persons the online path built from the same events
    assert identity["bulk_vs_online"]["agree"], identity["bulk_vs_online"]
    assert identity["profile_lookup_ms"]["samples"] > 0
    held_out = summary["model"]["held_out"]
    assert 0.0 <= held_out["roc_auc"] <= 1.0 and held_out["rows"] > 0
    # every kind of model was trained and reported against its baseline; the promoted ones were scored in one pass
    # (a small brand may lack the rows for some: they are reported with why, not trained)
    names = {m["model_name"] for m in summary["models"]} | set(summary["models_not_trained"])
    assert names == {"response", "sms_uplift", "churn", "clv", "next_product", "lookalike_gold"}
    assert all(summary["models_not_trained"].values())
    assert all(m["baseline"] and m["held_out_rows"] > 0 for m in summary["models"])
    assert "response" in summary["models_scored"]
    # the campaign's ranking was decided on held-out randomized persons, and judged by the world's truth
    targeting = summary["campaign"]["targeting"]
    assert targeting["used"] in ("response", "uplift") and targeting["reason"]
    truth = targeting["truth"]
    assert truth["persons_each"] > 0 and truth["verdict"]
    if any(m["model_name"] == "sms_uplift" for m in summary["models"] if m["accepted"]):
        assert len(truth["difference_95"]) == 2
    assert set(summary["tags"]["lifecycle"]) <= {"introduction", "growth", "mature", "dormant", "churned"}
    campaign = summary["campaign"]["summary"]
    assert campaign["treatment"]["size"] > 0 and campaign["holdout"]["size"] > 0
    # and each selected person's group is on their timeline (campaign_assigned): the next uplift model's rows
    filed = summary["campaign"]["assignments_filed"]
    assert (filed["treatment"], filed["holdout"]) == (campaign["treatment"]["size"], campaign["holdout"]["size"])
    assert summary["messages_by_channel"].get("sms", 0) > 0
    assert summary["conversion"]["treatment_rate"] is not None


def check_tag_families_batch_agreement_and_audiences(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    tags = summary["tags"]
    # every built-in family has values on the brand's persons
    for name in ("lifecycle", "rfm_segment", "spend_tier", "top_category", "favourite_store", "repurchase_cycle_days"):
        assert tags.get(name), name
    assert "True" in tags["purchased_last_7d"] or "True" in tags["frequent_buyer_30d"] or tags["lifecycle"]
    stage = summary["tags_and_audiences"]
    batch = stage["batch_vs_real_time"]
    # the batch SQL evaluator gives every stored real-time value again
    assert batch["values_compared"] == batch["persons"] * batch["tags"] > 0
    assert batch["values_agreeing"] == batch["values_compared"], batch["disagreements_by_tag"]
    dynamic, static = stage["dynamic_audience"], stage["static_audience"]
    assert dynamic["members"] > 0 and dynamic["entered_events"] >= dynamic["members"]
    assert 0 < static["snapshot_members"] <= dynamic["members"]
    # the campaign selected from the static snapshot, which reads the dynamic audience
    manifest = summary["campaign"]["audience"]
    assert manifest["source"]["audience_id"] == "winter_cake_sms"
    assert manifest["source"]["snapshot_id"] == static["snapshot_id"]
    assert manifest["counts"]["eligible"] <= static["snapshot_members"]


def check_the_journeys_ran_and_the_caps_stopped_some_messages(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    scenes = summary["journeys"]
    journeys = scenes["journeys"]
    assert set(journeys) == {"cart_recovery", "demo_birthday_cake", "demo_cold_snap"}
    cart = journeys["cart_recovery"]
    # every shopper entered; the buyers of the cart's cake converted (and went on to the thank-you path)
    assert sum(cart["entered"].values()) == scenes["cart_shoppers"] > 0
    assert 0 < cart["converted"]["treatment"] + cart["converted"]["holdout"] <= scenes["cart_buyers"]
    assert cart["messages"]["sent"] > 0
    # the cold snap swept Beijing's customers; the birthday sweep found the coming week's birthdays
    assert sum(journeys["demo_cold_snap"]["entered"].values()) > 0
    assert scenes["sweeps"]["shards"] > 0 and scenes["sweeps"]["closed"] >= 1
    # the brand's caps (2 SMS in 7 days) met the winter-cake SMS and stopped some journey messages
    capped = sum(j["messages"].get("suppressed_frequency_cap", 0) for j in journeys.values())
    assert capped > 0, journeys
    # and each journey's funnel per step adds up to its messages (every tally of this run names its step)
    for j in journeys.values():
        steps = j["steps"]
        assert sum(s["sent"] for s in steps) == j["messages"].get("sent", 0)
        assert sum(s["suppressed"].get("suppressed_frequency_cap", 0) for s in steps) == j["messages"].get(
            "suppressed_frequency_cap", 0
        )
        assert steps[0]["reached"] + (steps[0]["reached_holdout"] or 0) <= sum(j["entered"].values())


def check_coupons_were_issued_redeemed_and_expired_within_their_pool_and_points_earned(
    demo: tuple[dict[str, Any], Path],
) -> None:
    summary, output = demo
    offers, loyalty = summary["campaign"]["offers"], summary["campaign"]["loyalty"]
    touch1 = summary["campaign"]["summary"]["messages"]["touch1"]["sent"]
    # one coupon per recipient of the first touch (the follow-up repeats its code), each used or expired a week on
    assert offers["issued"] == touch1 > 0
    assert offers["redeemed"] > 0 and offers["expired"] > 0
    assert offers["redeemed"] + offers["expired"] == offers["issued"] and offers["still_valid"] == 0
    assert offers["expired_by_the_tick"] == offers["expired"]
    # codes came back on the world's orders (which channels carried them is drawn per order: at 300 customers the
    # till and the mini-program may have none; their connectors' redemption is covered in tests/e2e)
    by_source = offers["orders_with_a_code_by_source"]
    assert sum(by_source.values()) > 0 and set(by_source) <= {"pos", "mini_program", "app", "web"}, offers
    # the pool: what was redeemed is spent, what expired went back; nothing stays reserved
    pool = offers["pool"]
    assert pool["reserved_minor"] == 0 and pool["committed_minor"] == offers["offer_cost_minor"] > 0
    assert pool["committed_minor"] + pool["available_minor"] == pool["total_minor"]
    # one ROI, defined beside it, and the funnel from the audience to credited revenue
    conversion = summary["conversion"]
    assert conversion["roi_definition"].startswith("ROI = ") and conversion["funnel"]["treatment"] > 0
    funnel = conversion["funnel"]
    assert funnel["purchased"] <= funnel["converted_any"] <= funnel["treatment"]
    assert conversion["attribution"]["orders"] == funnel["credited_orders"]
    assert conversion["money"]["cost"].endswith(" CNY")
    report = (output / "report.html").read_text(encoding="utf-8")
    first_sentence = conversion["roi_definition"].split(". ")[0]  # (the rest holds an apostrophe, escaped in HTML)
    assert first_sentence in report and "with 95% intervals" in report
    # the club programme's rules earned points on the live orders, and some members reached a higher level
    assert loyalty["members"] > 0 and loyalty["points_earned"] > 0
    assert set(loyalty["members_by_level"]) - {"basic"}, loyalty


def check_every_channel_delivered_and_its_receipts_moved_the_messages(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    statuses: dict[str, dict[str, int]] = {}
    for part in (summary["campaign"]["message_status"], summary["journeys"]["message_status"]):
        for channel, by_status in part.items():
            for status, n in by_status.items():
                statuses.setdefault(channel, {})[status] = statuses.get(channel, {}).get(status, 0) + n
    # every channel sent through its provider's protocol (the loopback fakes, moto's SES and SNS, the inbox)
    assert set(statuses) == {"sms", "email", "wechat", "push", "inapp", "webhook"}, statuses
    # and every provider's receipts moved its messages past `sent`: SMS reports, SES events, WeChat's job-finish
    # pushes, the app's push receipts, in-app reads (a webhook's 2xx is its only answer: it stays `sent`)
    for channel in ("sms", "email", "wechat", "push", "inapp"):
        assert set(statuses[channel]) & {"delivered", "opened", "clicked", "failed"}, (channel, statuses)
    assert statuses["push"].get("opened", 0) > 0 and statuses["inapp"].get("opened", 0) > 0, statuses


def check_the_report_shows_cohorts_from_the_warehouse_export(demo: tuple[dict[str, Any], Path]) -> None:
    summary, output = demo
    analytics = summary["analytics"]
    # the export wrote every event the brand has (the history, the live days, the campaign's and journeys' own)
    assert analytics["exported_rows"]["events"] >= summary["brand"]["events"]
    cohorts = analytics["cohorts"]
    # each cohort's month 0 is the whole cohort, and no later month has more buyers than the cohort holds
    firsts = [r for r in cohorts if r["month_offset"] == 0]
    assert firsts and all(r["customers"] == r["cohort_size"] and r["share"] == 1.0 for r in firsts)
    assert all(0 <= r["customers"] <= r["observed"] <= r["cohort_size"] for r in cohorts)
    # the repeat curve falls as k grows; the demo's campaign reached persons and some bought after
    shares = [r["share"] for r in analytics["repeat"]]
    assert shares == sorted(shares, reverse=True) and shares[0] == 1.0
    campaign_id = summary["campaign"]["summary"]["campaign_id"]
    (row,) = [r for r in analytics["campaigns"] if r["key"] == campaign_id]
    assert row["reached"] > 0 and row["converted"] > 0
    html = (output / "report.html").read_text(encoding="utf-8")
    assert "Cohort retention" in html and "Repeat purchases" in html and f"<code>{campaign_id}</code>" in html
