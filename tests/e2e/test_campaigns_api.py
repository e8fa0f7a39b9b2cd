"""Campaigns as data end to end: `cdp campaign` (the CLI, over HTTP against a LocalApiServer) validates, defines,
starts and schedules a campaign; its runs execute on the campaign state machine with the real handlers; the local
clock fires next Monday's occurrence today; the brand's stop switch skips one; and every route refuses bad input
with a 4xx that names what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import APPROVER_API_KEY, STORE_API_KEY

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "campaigns" / "winter_cake_sms.yaml"
CAMPAIGN = "e2e_weekly_sms"


@pytest.fixture(scope="module")
def server(runtime: LocalRuntime) -> Iterator[LocalApiServer]:
    # Given five customers of demo-brand who opted in to marketing SMS
    events: list[dict[str, Any]] = []
    for i in range(5):
        phone = {"type": "phone", "value": f"1376600{i:04d}"}
        base = {"source": "app", "brand_id": "demo-brand", "identifiers": [phone]}
        events.append(
            {
                **base,
                "event_id": f"camp-e2e-id-{i}",
                "event_type": "identify",
                "occurred_at": "2026-11-01T10:00:00+08:00",
                "properties": {"name": f"Camp {i}"},
            }
        )
        events.append(
            {
                **base,
                "event_id": f"camp-e2e-consent-{i}",
                "event_type": "consent_changed",
                "occurred_at": "2026-11-01T10:01:00+08:00",
                "properties": {"channel": "sms", "granted": True, "purpose": "marketing"},
            }
        )
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    response = runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers)
    assert response.status == 202, response.body
    assert runtime.drain().dead_lettered == 0
    with LocalApiServer(runtime, port=0) as served:
        yield served


def _cdp(server: LocalApiServer, *args: str, key: str | None = None) -> Any:
    extra = ["--api-key", key] if key else []
    return CliRunner().invoke(app, [*args, "--url", server.url, *extra], catch_exceptions=False)


def _json(server: LocalApiServer, *args: str, key: str | None = None) -> Any:
    result = _cdp(server, *args, "--json", key=key)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _definition(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw.update({"campaign_id": CAMPAIGN, "audience": {}, "holdout": 0.2, **changes})
    return raw


def _file(tmp_path: Path, raw: dict[str, Any], name: str = "campaign.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return str(path)


def _execution(runtime: LocalRuntime, run_id: str) -> str:
    return f"{runtime.state_machine_arns['campaign'].replace(':stateMachine:', ':execution:')}:{run_id}"


def _described(runtime: LocalRuntime, run_id: str) -> dict[str, Any]:
    """Why a run did not reach its wait: its status, and its error and cause when it failed."""
    found = runtime.client("stepfunctions").describe_execution(executionArn=_execution(runtime, run_id))
    return {k: found.get(k) for k in ("status", "error", "cause", "output")}


def test_define_start_schedule_and_stop_switch_through_the_cli(
    runtime: LocalRuntime, server: LocalApiServer, tmp_path: Path
) -> None:
    # Given a definition with a template name the send step does not give and a wait of -1 days
    bad = _definition()
    bad["steps"][0]["send"]["template"]["body"] = "Hi {{ first_name }}"
    bad["steps"][1]["wait"]["days"] = -1
    refused = _cdp(server, "campaign", "define", _file(tmp_path, bad, "bad.yaml"))
    # Then it is refused with the field path of the problem pydantic finds, and nothing is stored
    assert refused.exit_code == 1 and "steps[1].wait.days" in refused.output, refused.output
    bad["steps"][1]["wait"]["days"] = 3
    refused = _cdp(server, "campaign", "validate", _file(tmp_path, bad, "bad.yaml"))
    assert refused.exit_code == 1 and "steps[0].send.template.body" in refused.output and "first_name" in refused.output

    # And a budget naming a pool the brand does not have is refused with its field
    nowhere = _definition(budget={**_definition()["budget"], "pool_id": "no-such-pool"})
    refused = _cdp(server, "campaign", "define", _file(tmp_path, nowhere, "nowhere.yaml"))
    assert refused.exit_code == 1 and "budget.pool_id" in refused.output and "no budget pool" in refused.output

    # When the right one, paying its messages from a message pool of 1,000.00, is validated and defined
    assert _cdp(server, "budget", "define", "e2e-weekly-sms", "--total", "100000", "--form", "message").exit_code == 0
    good = _file(tmp_path, _definition(budget={**_definition()["budget"], "pool_id": "e2e-weekly-sms"}))
    checked = _cdp(server, "campaign", "validate", good)
    assert checked.exit_code == 0 and "valid" in checked.output and "4,000 first sends" in checked.output
    view = _json(server, "campaign", "define", good)
    assert (view["state"]["status"], view["version"]["version"], view["needs_approval"]) == ("draft", 1, False)

    # And run dry first: today's selection and cost, nothing sent
    dry = _json(server, "campaign", "dry-run", CAMPAIGN)
    assert dry["eligible"] >= 5 and dry["treatment"] + dry["holdout"] == dry["selected"]
    assert dry["first_send_cost_minor"] == dry["treatment"] * 5 and len(dry["sends_by_day"]) == 2  # two Mondays
    assert "first sends by day" in _cdp(server, "campaign", "dry-run", CAMPAIGN).output

    # And started by hand: the run executes on the state machine with the real handlers
    started = _json(server, "campaign", "start", CAMPAIGN)
    run_id = started["run"]["run_id"]
    started_at = datetime.fromisoformat(started["run"]["at"].replace("Z", "+00:00"))
    # the 3 days before the reminder
    assert runtime.wait_state_entered(_execution(runtime, run_id), timeout=120), _described(runtime, run_id)
    # (the local clock moves past them: a tick fired 3 days and a minute later ends the wait, as time would have)
    _json(server, "campaign", "tick", "--at", (started_at + timedelta(days=3, minutes=1)).isoformat())
    status, output = runtime.wait_execution(_execution(runtime, run_id), timeout=120)
    assert status == "SUCCEEDED", output
    run = _json(server, "campaign", "run", CAMPAIGN, run_id)
    assert run["status"] == "SUCCEEDED" and run["summary"]["campaign_id"] == CAMPAIGN
    assert run["summary"]["treatment"]["size"] + run["summary"]["holdout"]["size"] >= 5  # at least our five
    touch1 = run["summary"]["messages"]["touch1"]
    # every treated person was sent the SMS, unless the brand's cap (2 SMS in 7 days) had been reached by earlier tests
    assert touch1["sent"] + touch1["suppressed_frequency_cap"] == run["summary"]["treatment"]["size"]
    assert touch1["sent"] >= 1
    # And the pool paid what the messages cost (5 fen an SMS, the reminders too), nothing left reserved for the run
    sent = touch1["sent"] + run["summary"]["messages"]["touch2"]["sent"]
    pools = runtime.http("GET", "/v1/budgets?brand_id=demo-brand", b"", {"x-api-key": runtime.admin_key})
    (balance,) = [p for p in json.loads(pools.body)["pools"] if p["pool"]["pool_id"] == "e2e-weekly-sms"]
    assert (balance["committed_minor"], balance["reserved_minor"]) == (5 * sent, 0), balance
    assert balance["available_minor"] == 100_000 - 5 * sent
    # And its results: the funnel from the audience to the orders credited to it, intervals, ROI with its definition
    found = _json(server, "campaign", "results", CAMPAIGN)
    assert found["kind"] == "run" and found["run"]["run"]["run_id"] == run_id
    funnel = found["run"]["summary"]["funnel"]
    assert funnel["treatment"] == run["summary"]["treatment"]["size"] and funnel["steps"]["touch1"]["sent"] >= 1
    assert found["receipts"].get("sent", 0) + found["receipts"].get("delivered", 0) >= 1
    assert found["run"]["summary"]["roi_definition"].startswith("ROI = ")
    assert found["run"]["summary"]["display"]["cost"] == f"{5 * sent / 100:,.2f} CNY"
    shown = _cdp(server, "campaign", "results", CAMPAIGN, "--run", run_id).output
    assert "funnel" in shown and "touch1 sent" in shown and "ROI = (incremental revenue - cost) / cost" in shown
    assert _cdp(server, "campaign", "results", CAMPAIGN, "--run", "../x").exit_code != 0
    # When scheduled, and the local clock fires next Monday's occurrence (10:00 in Shanghai) today
    scheduled = _json(server, "campaign", "activate", CAMPAIGN)
    monday = datetime.fromisoformat(scheduled["state"]["next_run_at"].replace("Z", "+00:00"))
    assert (monday.hour, monday.minute, monday.weekday()) == (2, 0, 0)  # 10:00 in Shanghai is 02:00 UTC
    early = _json(server, "campaign", "tick", "--at", (monday - timedelta(minutes=1)).isoformat())
    fired = _json(server, "campaign", "tick", "--at", monday.isoformat())
    (scheduled_run,) = fired["result"]["started"]
    # its wait is entered before the next tick: a tick at `monday` ends every wait due by then (early in the week the
    # run's 3 days are up before next Monday), so a tick racing the run's selection could let it skip its wait
    waiting = runtime.wait_state_entered(_execution(runtime, scheduled_run), timeout=120)
    assert waiting, _described(runtime, scheduled_run)
    again = _json(server, "campaign", "tick", "--at", monday.isoformat())
    # Then it started once, named by its occurrence
    assert early["result"]["started"] == [] and again["result"]["started"] == []
    assert scheduled_run == f"{CAMPAIGN}-v1-{monday:%Y%m%dT%H%M}Z"
    _json(server, "campaign", "tick", "--at", (monday + timedelta(days=3, minutes=1)).isoformat())
    assert runtime.wait_execution(_execution(runtime, scheduled_run), timeout=120)[0] == "SUCCEEDED"

    # When the brand's stop switch is turned on (by a key holding campaigns:approve) over the following Monday
    switched = _json(server, "campaign", "switch", "on", "--reason", "e2e price error", key=APPROVER_API_KEY)
    assert switched["stopped"] is True
    skipped = _json(server, "campaign", "tick", "--at", (monday + timedelta(days=7)).isoformat())
    _json(server, "campaign", "switch", "off", key=APPROVER_API_KEY)
    # Then that occurrence is skipped with the reason, and the runs list shows all three
    assert skipped["result"]["started"] == [] and "stop switch" in skipped["result"]["skipped"][0]["reason"]
    runs = _json(server, "campaign", "runs", CAMPAIGN)["runs"]
    assert [(r["run"]["trigger"], r["status"] or r["run"]["outcome"]) for r in runs] == [
        ("schedule", "skipped"),
        ("schedule", "SUCCEEDED"),
        ("manual", "SUCCEEDED"),
    ]
    listed = _cdp(server, "campaign", "list")
    assert listed.exit_code == 0 and CAMPAIGN in listed.output and "scheduled" in listed.output
    stopped = _json(server, "campaign", "stop", CAMPAIGN)
    assert stopped["state"]["status"] == "stopped"


def _call(
    runtime: LocalRuntime, method: str, path: str, body: Any = None, key: str | None = "admin"
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if key:
        headers["x-api-key"] = runtime.admin_key if key == "admin" else key
    raw = body if isinstance(body, bytes) else (json.dumps(body, default=str).encode() if body is not None else b"")
    response = runtime.http(method, path, raw, headers)
    return response.status, json.loads(response.body or b"{}")


def test_every_campaign_route_refuses_bad_input_with_a_4xx_that_says_what(runtime: LocalRuntime) -> None:
    definition = _definition(campaign_id="e2e_hostile")
    # Credentials and scopes: no key 401; a key without campaign scopes 403; another brand's key 403
    assert _call(runtime, "GET", "/v1/campaigns?brand_id=demo-brand", key=None)[0] == 401
    assert _call(runtime, "GET", "/v1/campaigns?brand_id=demo-brand", key=STORE_API_KEY)[0] == 403
    status, body = _call(runtime, "POST", "/v1/campaigns", definition, key="e2e-outlet-marketer-key")
    assert status == 403 and "demo-outlet" in body["message"]
    status, body = _call(runtime, "POST", "/v1/campaigns", definition, key=APPROVER_API_KEY)  # approves, never writes
    assert status == 403 and "campaigns:write" in body["message"]
    status, body = _call(runtime, "POST", "/v1/campaigns/switch", {"brand_id": "demo-brand", "stopped": "maybe"})
    assert status == 400 and body["field"] == "stopped"
    # Bodies: not JSON, not an object, a wrong definition (every problem with its path)
    assert _call(runtime, "POST", "/v1/campaigns", b"{not json")[0] == 400
    status, body = _call(runtime, "POST", "/v1/campaigns", [1, 2])
    assert status == 400 and body["field"] == "body"
    wrong = {**definition, "holdout": 1.5, "steps": []}
    status, body = _call(runtime, "POST", "/v1/campaigns", wrong)
    assert status == 422 and {e["field"] for e in body["errors"]} == {"holdout", "steps"}
    # Paths and queries: a brand is needed, ids are checked, unknown ones are 404
    status, body = _call(runtime, "GET", "/v1/campaigns")
    assert status == 400 and body["field"] == "brand_id"
    assert _call(runtime, "GET", "/v1/campaigns/Bad%20Id?brand_id=demo-brand")[1]["field"] == "campaign_id"
    assert _call(runtime, "GET", "/v1/campaigns/no_such_campaign?brand_id=demo-brand")[0] == 404
    assert _call(runtime, "GET", "/v1/campaigns/e2e_hostile/versions/0?brand_id=demo-brand")[1]["field"] == "version"
    assert _call(runtime, "GET", "/v1/campaigns/e2e_hostile/runs/..%2F..?brand_id=demo-brand")[1]["field"] == "run_id"
    # Status: a draft cannot pause; an approval needs a version; a version defined by the approver's own client...
    assert _call(runtime, "POST", "/v1/campaigns", definition)[0] == 201
    assert _call(runtime, "POST", "/v1/campaigns/no_such_campaign/dry-run?brand_id=demo-brand")[0] == 404
    status, body = _call(runtime, "POST", "/v1/campaigns/e2e_hostile/dry-run?brand_id=demo-brand", {"version": 0})
    assert status == 400 and body["field"] == "version"
    status, body = _call(runtime, "POST", "/v1/campaigns/e2e_hostile/pause?brand_id=demo-brand")
    assert status == 409 and "only a scheduled or live campaign pauses" in body["message"]
    status, body = _call(
        runtime, "POST", "/v1/campaigns/e2e_hostile/approve?brand_id=demo-brand", {}, key=APPROVER_API_KEY
    )
    assert status == 400 and body["field"] == "version"
    status, body = _call(runtime, "POST", "/v1/campaigns/e2e_hostile/approve?brand_id=demo-brand", {"version": 1})
    assert status == 403 and "another client" in body["message"]
    assert (
        _call(runtime, "GET", "/v1/campaigns/e2e_hostile/runs/e2e_hostile-v9-20261207T0200Z?brand_id=demo-brand")[0]
        == 404
    )
    # Results: a run id is checked, a campaign that never ran is 404, a store's key sees no brand results
    results = "/v1/campaigns/e2e_hostile/results?brand_id=demo-brand"
    assert _call(runtime, "GET", f"{results}&run_id=..%2F..")[1]["field"] == "run_id"
    status, body = _call(runtime, "GET", results)
    assert status == 404 and "has not run yet" in body["message"]
    assert _call(runtime, "GET", f"{results}&run_id=e2e_hostile-v9-20261207T0200Z")[0] == 404
    assert _call(runtime, "GET", results, key=STORE_API_KEY)[0] == 403
    assert _call(runtime, "GET", "/v1/campaigns/no_such_campaign/results?brand_id=demo-brand")[0] == 404


def test_a_campaigns_messages_are_previewed_for_one_person_through_the_api_and_the_cli(
    runtime: LocalRuntime, server: LocalApiServer
) -> None:
    # Given a campaign whose SMS prints the member's name and a link, and one of the brand's opted-in members
    raw = _definition(campaign_id="e2e_preview")
    raw["steps"][0]["send"]["template"]["body"] = (
        "{{ traits.name or 'Hello' }}, cakes are in: https://shop.demo-bakery.example.cn/winter?from=sms "
        "code {{ offer.code }}"
    )
    assert _call(runtime, "POST", "/v1/campaigns", raw)[0] == 201
    status, person = _call(runtime, "GET", "/v1/profiles/by-identifier/phone/%2B8613766000001?brand_id=demo-brand")
    assert status == 200, person
    # When it is previewed for them
    status, preview = _call(
        runtime, "POST", "/v1/campaigns/e2e_preview/preview?brand_id=demo-brand", {"person_id": person["person_id"]}
    )
    # Then each send step shows the SMS as they would get it: their name, the fixed code, the link as a short link
    assert status == 200, preview
    first = preview["steps"][0]["messages"][0]
    assert first["channel"] == "sms" and first["address"] == "+8613766000001" and first["problems"] == []
    assert first["body"].startswith("Camp 1, cakes are in:") and first["body"].endswith("code WINTER20")
    short = "http://127.0.0.1:8787/r/xxxxxxxxx"  # the 9-character code the send will store
    expected = len(first["body"]) - len("https://shop.demo-bakery.example.cn/winter?from=sms") + len(short)
    assert first["sms"] == {"encoding": "GSM-7", "characters": expected, "segments": 1, "china_segments": None}
    assert [s["step"] for s in preview["steps"]] == ["steps[0]", "steps[2]"]
    # And the CLI prints the same
    result = _cdp(server, "campaign", "preview", "e2e_preview", "--person", person["person_id"])
    assert result.exit_code == 0 and "Camp 1, cakes are in" in result.output and "1 segment" in result.output
    # A key that reads campaigns but not profiles may not see a person's address and rendered profile
    status, body = _call(
        runtime,
        "POST",
        "/v1/campaigns/e2e_preview/preview?brand_id=demo-brand",
        {"person_id": person["person_id"]},
        key=APPROVER_API_KEY,
    )
    assert status == 403 and "profiles:read" in body["message"]
    # A person of no campaign's brand, or none at all, is 404; no person id is a 400 naming the field
    assert (
        _call(runtime, "POST", "/v1/campaigns/e2e_preview/preview?brand_id=demo-brand", {"person_id": "p-0"})[0] == 404
    )
    status, body = _call(runtime, "POST", "/v1/campaigns/e2e_preview/preview?brand_id=demo-brand", {})
    assert status == 400 and body["field"] == "person_id"
